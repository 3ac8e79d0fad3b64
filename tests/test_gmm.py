"""GMM-HMM training and forced alignment: GMM maths, Viterbi, EM, trees, alignment outputs."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from acoustic_kd.ali import check_lengths, read_alignments
from acoustic_kd.errors import ConfigError
from acoustic_kd.gmm.align import align, compile_graphs, viterbi_batch
from acoustic_kd.gmm.diag_gmm import DiagGmm
from acoustic_kd.gmm.feats import add_deltas, dct_matrix, gmm_features
from acoustic_kd.gmm.graph import compile_graph, equal_alignment
from acoustic_kd.gmm.run import write_result
from acoustic_kd.gmm.train import AlignConfig, train_mono, train_tri
from acoustic_kd.hmm import HmmModel
from acoustic_kd.lang import Lang, LangConfig, load_lexicon, make_topology

DIGITS = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()


def test_gmm_loglikes_match_direct_formula(rng):
    c, d, p = 9, 4, 3
    g = DiagGmm(rng.normal(size=(c, d)), rng.uniform(0.5, 2, (c, d)), np.log(np.full(c, 1 / 3)),
                np.repeat(np.arange(p), 3), p)
    x = rng.normal(size=(6, d)).astype(np.float32)
    ll = g.loglikes(x, np.array([2, 0]))
    for j, pdf in enumerate([2, 0]):
        comps = np.nonzero(g.comp_pdf == pdf)[0]
        dens = sum(np.exp(g.log_weights[k]) * np.prod(np.exp(-0.5 * (x - g.means[k]) ** 2 / g.vars[k])
                   / np.sqrt(2 * np.pi * g.vars[k]), axis=1) for k in comps)
        np.testing.assert_allclose(ll[:, j], np.log(dens), rtol=1e-4)


def test_gmm_em_and_split_raise_likelihood(rng):
    x = np.concatenate([rng.normal(-3, 1, (400, 2)), rng.normal(3, 1, (400, 2))])
    pdf = np.zeros(len(x), dtype=np.int64)
    n, s1, s2 = np.array([len(x)]), x.sum(0)[None], (x * x).sum(0)[None]
    g = DiagGmm.from_stats(n.astype(float), s1, s2, np.full(2, 1e-3), x.mean(0), x.var(0))
    floor = np.full(2, 1e-3)
    lls = []
    for it in range(6):
        st = g.accumulate(x, pdf)
        lls.append(st.avg_loglike)
        g.update(st, floor)
        if it == 0:
            g.split(2, np.array([len(x)]))
            assert g.num_gauss == 2
    assert all(b >= a - 1e-9 for a, b in zip(lls[1:], lls[2:])) and lls[-1] > lls[0] + 0.5
    assert sorted(np.round(g.means[:, 0])) == [-3, 3]


def test_features_shapes_and_deltas():
    ramp = np.arange(10, dtype=np.float64)[:, None] * np.ones((1, 2))
    d = add_deltas(ramp)
    assert d.shape == (10, 6)
    np.testing.assert_allclose(d[3:7, 2:4], 1.0)   # slope of a ramp
    np.testing.assert_allclose(d[4:6, 4:6], 0.0)   # its curvature
    m = dct_matrix(40, 13)
    np.testing.assert_allclose(m.T @ m, np.eye(13), atol=1e-12)
    f = gmm_features({"a": np.random.default_rng(0).normal(size=(20, 40))})
    assert f["a"].shape == (20, 39) and f["a"].dtype == np.float32
    np.testing.assert_allclose(f["a"][:, :13].mean(0), 0, atol=1e-5)


def test_narrow_deltas():
    x = np.random.default_rng(1).normal(size=(12, 3))
    d = add_deltas(x, order=1, window=1)
    np.testing.assert_allclose(d[1:-1, 3:], (x[2:] - x[:-2]) / 2)   # central difference
    assert not np.allclose(add_deltas(x, 1, 2)[2:-2, 3:], d[2:-2, 3:])
    f = gmm_features({"a": x @ np.ones((3, 40))}, num_ceps=13, delta_order=1, delta_window=1)
    assert f["a"].shape == (12, 26)
    assert gmm_features({"a": x @ np.ones((3, 40))}, delta_order=0)["a"].shape == (12, 13)
    with pytest.raises(ConfigError, match="delta_window"):
        gmm_features({"a": x}, delta_window=0)


# ------------------------------------------------------------------ Viterbi vs brute force
def _toy_lang() -> tuple[Lang, HmmModel]:
    phones = ["<eps>", "SIL", "A", "B"]
    topo = make_topology(phones[1:], LangConfig(phone_states=2, sil_states=1, self_loop_prob=0.6))
    lang = Lang(phones, ["<eps>", "X", "Y"], {"X": [["A", "B"], ["B"]], "Y": [["A"]]}, topo,
                sil_prob=0.3)
    return lang, HmmModel.monophone(phones, topo)


def _brute_force(g, em, hmm) -> float:
    loop, arcs, final = g.weights(hmm)
    succ = {i: [] for i in range(g.num_states)}
    for j in range(g.num_states):
        for i, w in zip(g.pred[j], arcs[j]):
            if np.isfinite(w):
                succ[i].append((j, w))
    best = -np.inf

    def walk(s, t, score):
        nonlocal best
        if t == len(em) - 1:
            best = max(best, score + final[s])
            return
        walk(s, t + 1, score + loop[s] + em[t + 1, s])
        for j, w in succ[s]:
            walk(j, t + 1, score + w + em[t + 1, j])

    for s in np.nonzero(np.isfinite(g.init))[0]:
        walk(s, 0, g.init[s] + em[0, s])
    return best


def test_viterbi_matches_brute_force(rng):
    lang, hmm = _toy_lang()
    graphs = [compile_graph(hmm, lang, ["X", "Y"]), compile_graph(hmm, lang, ["Y"])]
    assert graphs[0].min_frames == 2 + 2 and graphs[1].min_frames == 2
    ems = [rng.normal(size=(8, graphs[0].num_states)), rng.normal(size=(5, graphs[1].num_states))]
    out = viterbi_batch(graphs, ems, beam=np.inf, hmm=hmm)
    for g, em, (path, score) in zip(graphs, ems, out):
        assert math.isclose(score, _brute_force(g, em, hmm), rel_tol=1e-9)
        assert len(path) == len(em)
    eq = equal_alignment(graphs[0], 9)
    assert len(eq) == 9 and np.all(np.diff(eq) >= 0)
    assert equal_alignment(graphs[0], 3) is None


# ------------------------------------------------------------------ generated speech
@pytest.fixture(scope="module")
def words_small(tmp_path_factory):
    """One-digit utterances of many generated voices (synth_digits, 8 kHz, seeded): 160 train,
    60 held out (test voices, unseen in training), GMM features; mono and tri trained on train."""
    from acoustic_kd.data import read_wav_entry
    from acoustic_kd.corpora.synth_digits import prepare_synth_digits
    from acoustic_kd.features import FbankConfig, compute_fbank
    from acoustic_kd.utils import read_table

    root = tmp_path_factory.mktemp("words")
    prepare_synth_digits(root, seed=2, num_train=160, num_dev=1, num_test=60, sample_rate=8000,
                         min_words=1, max_words=1, babble_pool=4, snr_min_db=15.0, snr_max_db=30.0)
    cfg = FbankConfig(sample_rate=8000)
    fb, texts, u2s, split = {}, {}, {}, {}
    for s in ("train", "test"):
        text = {u: w for u, w, _ in read_table(root / s / "text")}
        spk = {u: k for u, k, _ in read_table(root / s / "utt2spk")}
        for u, path, _ in read_table(root / s / "wav.scp"):
            x, sr = read_wav_entry(path)
            fb[u], texts[u], u2s[u], split[u] = compute_fbank(x, sr, cfg), text[u], spk[u], s
    feats = gmm_features(fb, sorted(fb), u2s)
    train = {u: f for u, f in feats.items() if split[u] == "train"}
    held = {u: f for u, f in feats.items() if split[u] == "test"}
    lex = load_lexicon(root / "local" / "lexicon.txt", strip=True)
    phones = ["<eps>", "SIL"] + sorted({p for ps in lex.values() for q in ps for p in q})
    lang = Lang(phones, ["<eps>"] + sorted(lex), lex, make_topology(phones[1:], LangConfig()))
    cfg = AlignConfig(mono_iters=8, mono_gauss=200, mono_realign_iters=[1, 2, 3, 4, 6],
                      tri_iters=6, tri_gauss=400, tri_realign_iters=[2, 4], tri_leaves=120,
                      tree_min_count=20, tree_min_gain=5)
    mono, mgmm, mres, mhist = train_mono(train, texts, lang, cfg)
    tri, tgmm, tres, thist = train_tri(train, lang, mono, mres, cfg)
    return dict(train=train, held=held, texts=texts, lang=lang, cfg=cfg, mono=(mono, mgmm, mres, mhist),
                tri=(tri, tgmm, tres, thist))


def test_em_loglike_rises(words_small):
    for stage in ("mono", "tri"):
        ll = [h["avg_loglike"] for h in words_small[stage][3]]
        assert all(b > a - 0.05 for a, b in zip(ll, ll[1:])), (stage, ll)
        assert ll[-1] > ll[0] + 1.0


def test_triphones_fit_training_data_and_generalise(words_small):
    """Tree-tied triphones fit their training data better than monophones, and lose little on
    held-out voices. On these 160 one-word utterances (about 15 per word) word-internal triphones
    are nearly whole-word models, so they do not beat monophones on unseen voices. Measured avg
    loglike/frame, training alignment: mono -32.81 / tri -31.46 (400 Gaussians vs 200); held out:
    mono -37.27 / tri -37.61 (tri "won" there only while the aligner let the HMM durations outweigh
    the acoustics tenfold, which degraded the monophones most)."""
    held, texts, lang = words_small["held"], words_small["texts"], words_small["lang"]
    scores = {}
    for stage in ("mono", "tri"):
        hmm, gmm = words_small[stage][:2]
        graphs, failed = compile_graphs(hmm, lang, texts, sorted(held))
        res = align(hmm, gmm, held, graphs)
        assert not failed and len(res.states) == len(held)
        scores[stage] = res.avg_loglike
    tri = words_small["tri"][0]
    assert tri.num_pdfs > words_small["mono"][0].num_pdfs
    train_ll = {st: words_small[st][2].avg_loglike for st in ("mono", "tri")}
    # catches a tree or mix-up that does not fit (the triphone stage must gain on its own data)
    assert train_ll["tri"] > train_ll["mono"] + 0.5, train_ll
    # catches a triphone model broken on unseen data (wrong pdf lookup for unseen contexts, ...)
    assert scores["tri"] > scores["mono"] - 0.5, scores


def test_alignment_outputs_and_failures(words_small, tmp_path):
    tri, gmm, _, _ = words_small["tri"]
    held, texts, lang = dict(words_small["held"]), words_small["texts"], words_small["lang"]
    short = next(u for u in sorted(held) if texts[u] == "EIGHT")
    held[short] = held[short][:4]                     # EIGHT needs >= 6 frames
    texts = {**texts, "x-oov": "ONE BANANA"}
    held["x-oov"] = held[sorted(held)[0]]
    graphs, failed = compile_graphs(tri, lang, texts, sorted(held))
    assert failed == {"x-oov": "oov:BANANA"}   # no <unk> in this lang: listed, not dropped
    del held["x-oov"]
    res = align(tri, gmm, held, graphs)
    assert res.failed == {short: "too_short(4<6)"}
    summary = write_result(res, tri, {u: len(x) for u, x in held.items()}, tmp_path / "ali")
    alis = read_alignments(tmp_path / "ali")
    check_lengths(alis, {u: len(f) for u, f in held.items()}, tolerance=0)
    assert len(alis) == len(held) - 1 and summary["failed"] == 1
    assert f"{short} too_short" in (tmp_path / "ali" / "failed.txt").read_text()
    # each alignment spells its transcript: its pdfs' phones, silence dropped and runs merged, are
    # one of the word's pronunciations (a pdf map that mislabels states, or a graph of another
    # word, breaks this for most utterances)
    sil = tri.phone_id["SIL"]
    for u, a in alis.items():
        phones = [tri.phones[p] for p in tri.pdf_to_phone[a] if p != sil]
        spelled = [p for i, p in enumerate(phones) if i == 0 or p != phones[i - 1]]
        assert spelled in lang.lexicon[texts[u]], (u, texts[u], spelled)
    # word boundaries recovered from pdf alignments (bench/bench_align.py, which measures the
    # aligners against reference timings) agree with the aligner's own word times
    bench = _bench_align()
    ref = {u: [(texts[u], s, e) for _, s, e in res.word_times(u)] for u in list(res.states)[:20]}
    errs, skipped = bench.boundary_errors(alis, tri, lang, texts, ref, 0.01)
    assert skipped == 0 and len(errs) == 2 * sum(len(r) for r in ref.values())
    assert bench.within([e for *_, e in errs], 0.02) == 1.0
    late = {u: [(w, s + 0.05, e + 0.05) for w, s, e in r] for u, r in ref.items()}
    assert bench.within([e for *_, e in bench.boundary_errors(alis, tri, lang, texts, late, 0.01)[0]],
                        0.02) == 0.0


def _bench_align():
    """bench/bench_align.py as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_align.py"
    spec = importlib.util.spec_from_file_location("bench_align", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_unseen_triphones_map_to_leaves(words_small):
    tri = words_small["tri"][0]
    speech = [p for p in tri.phones[1:] if p not in tri.context_independent]
    for p, lc, rc in itertools.product(speech[:6], speech + ["#"], speech + ["#"]):
        for s in range(tri.num_states[p]):
            k = tri.pdf(lc, p, rc, s)
            assert tri.pdf_to_phone[k] == tri.phone_id[p] and tri.pdf_to_state[k] == s


def _tiny_align_args(tmp_path, synth_corpus) -> tuple[list, list[str]]:
    """The generated corpus's training set (conftest's synth_corpus: 14 digit strings, 8 kHz) as a
    data dir with features, and a lang dir, under tmp_path -> (utterance ids, the `acoustic-kd
    align` arguments of a quick run)."""
    import shutil

    from acoustic_kd.cli import main
    from acoustic_kd.features import FbankConfig, make_features
    from acoustic_kd.utils import read_table

    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
        shutil.copy(synth_corpus / "train" / name, data / name)
    rows = [u for u, _, _ in read_table(data / "text")]
    make_features(data, FbankConfig(sample_rate=8000))
    lang, exp = tmp_path / "lang", tmp_path / "exp"
    assert main(["lang", "--data", str(data), "--lexicon", str(synth_corpus / "local" / "lexicon.txt"),
                 "--out", str(lang)]) == 0
    args = ["align", "--data", str(data), "--lang", str(lang), "--exp", str(exp), "--mono-iters", "3",
            "--tri-iters", "2", "--mono-gauss", "80", "--tri-gauss", "80", "--tri-leaves", "80",
            "--tree-min-count", "10"]
    return rows, args


def test_cli_lang_align_resume_and_import(tmp_path, synth_corpus):
    """`acoustic-kd lang` + `align` on a tiny generated data dir: exp layout, .done resume, Kaldi import."""
    import json

    from acoustic_kd.ali import read_num_pdfs
    from acoustic_kd.cli import main

    rows, args = _tiny_align_args(tmp_path, synth_corpus)
    data, exp = tmp_path / "data" / "train", tmp_path / "exp"
    assert main(args) == 0
    for stage in ("mono", "tri"):
        d = exp / stage
        for name in ("final.hmm.json", "final.gmm.npz", "log.jsonl", "summary.json", "info.json", ".done",
                     "ali_train/ali.scp", "ali_train/priors.txt", "ali_train/words.ctm"):
            assert (d / name).exists(), d / name
        hmm = HmmModel.load(d / "final.hmm.json")
        assert read_num_pdfs(d / "ali_train") == hmm.num_pdfs
        assert len(read_alignments(d / "ali_train")) == len(rows)
        assert len((d / "log.jsonl").read_text().splitlines()) == (3 if stage == "mono" else 2)
    before = (exp / "tri" / ".done").read_text()
    assert main(args) == 0 and (exp / "tri" / ".done").read_text() == before  # resumed: nothing redone
    # a finished stage aligns a new set with its final model, without retraining
    import shutil
    extra = tmp_path / "data" / "again"
    shutil.copytree(data, extra)
    gmm_mtime = (exp / "tri" / "final.gmm.npz").stat().st_mtime_ns
    assert main([*args, "--align-sets", str(extra)]) == 0
    assert (exp / "tri" / "final.gmm.npz").stat().st_mtime_ns == gmm_mtime
    again, train_ali = read_alignments(exp / "tri" / "ali_again"), read_alignments(exp / "tri" / "ali_train")
    assert again.keys() == train_ali.keys()
    assert all(len(again[u]) == len(train_ali[u]) for u in again)
    # the final model realigns (training's last alignment came from the model before it): mostly equal
    agree = np.mean(np.concatenate([again[u] == train_ali[u] for u in again]))
    assert agree > 0.9, agree
    assert "ali_again" in json.loads((exp / "tri" / "summary.json").read_text())
    txt = tmp_path / "kaldi_ali.txt"
    txt.write_text("u1 0 0 1 2\nu2 3 3\n")
    assert main(["align", "--import-kaldi", str(txt), "--num-pdfs", "4", "--out", str(tmp_path / "ext")]) == 0
    assert read_alignments(tmp_path / "ext")["u1"].tolist() == [0, 0, 1, 2]
    assert json.loads((exp / "tri" / "summary.json").read_text())["num_pdfs"] == hmm.num_pdfs


def test_boost_silence_gives_silence_more_frames(words_small):
    mono, gmm = words_small["mono"][:2]
    held, texts, lang = words_small["held"], words_small["texts"], words_small["lang"]
    graphs, _ = compile_graphs(mono, lang, texts, sorted(held)[:20])
    sil = mono.phone_id["SIL"]
    counts = []
    for boost in (1.0, 1e4):
        res = align(mono, gmm, held, graphs, boost_silence=boost)
        counts.append(sum(int((mono.pdf_to_phone[a] == sil).sum()) for a in res.pdfs().values()))
    assert counts[1] > counts[0]


def test_cli_align_front_end_options(tmp_path, synth_corpus, capsys):
    """--delta-order/--delta-window reach the features; a later --align-sets run with other options
    uses the features the stage was trained on; tri on a mono trained otherwise is refused."""
    import json
    import shutil

    from acoustic_kd.cli import main

    _, args = _tiny_align_args(tmp_path, synth_corpus)
    exp = tmp_path / "exp"
    narrow = ["--delta-order", "1", "--delta-window", "1"]
    assert main([*args, *narrow, "--pass", "mono"]) == 0
    info = json.loads((exp / "mono" / "info.json").read_text())["config"]["align"]
    assert (info["delta_order"], info["delta_window"]) == (1, 1)
    assert DiagGmm.load(exp / "mono" / "final.gmm.npz").means.shape[1] == 26
    capsys.readouterr()
    assert main([*args, "--pass", "tri"]) == 1
    err = capsys.readouterr().err
    assert "other GMM features" in err and "delta_order=1 (now 2)" in err and "--force" in err
    extra = tmp_path / "data" / "again"
    shutil.copytree(tmp_path / "data" / "train", extra)
    # (--stage: the option's older name, kept for one release)
    assert main([*args, "--stage", "mono", "--align-sets", str(extra)]) == 0   # default options
    again, train = (read_alignments(exp / "mono" / d) for d in ("ali_again", "ali_train"))
    assert np.mean(np.concatenate([again[u] == train[u] for u in again])) > 0.9
