"""Cross-word triphone context (align.context): alignment graphs, trees, targets and decoding.

The data are generated frames whose phones are coloured by their neighbours across word
boundaries: the first state of a speech phone is shifted by its left phone, the last by its
right phone (silence included), so only cross-word trees can model the word edges.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_decode_fakes import unigram_arpa, write_lang

from acoustic_kd.ali import read_alignments
from acoustic_kd.decode.decoder import Graph, decode_utterance
from acoustic_kd.decode.graph import build_graph
from acoustic_kd.decode.score import wer
from acoustic_kd.gmm.align import align, compile_graphs, viterbi_batch
from acoustic_kd.gmm.graph import compile_graph, equal_alignment
from acoustic_kd.gmm.run import write_result
from acoustic_kd.gmm.train import AlignConfig, train_mono, train_tri
from acoustic_kd.hmm import BOUNDARY, HmmModel
from acoustic_kd.lang import Lang, LangConfig, make_topology

PHONES = ["<eps>", "SIL", "A", "B", "C", "D"]
# word edges: A, C, B start words; B, D, C end them
LEX = {"X": [["A", "B"]], "Y": [["C", "D"]], "Z": [["B", "A", "C"]], "W": [["D"], ["A", "D"]]}
DIM = 8
BASE, SHIFT, NOISE = 0.7, 2.0, 1.2   # spread of the means, of the neighbours' shifts, noise


def _lang() -> Lang:
    topo = make_topology(PHONES[1:], LangConfig(sil_states=3))
    return Lang(PHONES, ["<eps>"] + sorted(LEX), LEX, topo, sil_prob=0.4)


def _corpus(n: int, seed: int):
    """`n` utterances of 2-4 words, a pause between words with probability 0.4, silence at the
    edges -> (features {utt: [T, DIM] float32}, transcripts {utt: text})."""
    m = np.random.default_rng(123)                      # the acoustic model: the same for every set
    base = {p: m.normal(0, BASE, (3, DIM)) for p in PHONES[1:]}
    left = {p: m.normal(0, SHIFT, DIM) for p in PHONES[1:] + [BOUNDARY]}
    right = {p: m.normal(0, SHIFT, DIM) for p in PHONES[1:] + [BOUNDARY]}
    rng = np.random.default_rng(seed)
    words = sorted(LEX)
    feats, texts = {}, {}
    for i in range(n):
        ws = [words[k] for k in rng.integers(0, len(words), rng.integers(2, 5))]
        seq = ["SIL"]
        for j, w in enumerate(ws):
            prons = LEX[w]
            seq += prons[rng.integers(len(prons))]
            seq += ["SIL"] if j == len(ws) - 1 or rng.random() < 0.4 else []
        frames = []
        for k, p in enumerate(seq):
            lc = seq[k - 1] if k else BOUNDARY
            rc = seq[k + 1] if k + 1 < len(seq) else BOUNDARY
            for s in range(3):
                mean = base[p][s] + (0 if p == "SIL" else
                                     left[lc] if s == 0 else right[rc] if s == 2 else 0)
                frames.append(mean + rng.normal(0, NOISE, (int(rng.integers(2, 6)), DIM)))
        u = f"u{seed}-{i:03d}"
        feats[u], texts[u] = np.concatenate(frames).astype(np.float32), " ".join(ws)
    return feats, texts


@pytest.fixture(scope="module")
def trained():
    """Mono + tri in both conventions on 150 generated utterances; 60 held out."""
    lang = _lang()
    train, texts = _corpus(150, 1)
    held, held_texts = _corpus(60, 2)
    out = {"lang": lang, "train": train, "texts": {**texts, **held_texts}, "held": held}
    for ctx in ("word-internal", "cross-word"):
        cfg = AlignConfig(context=ctx, mono_iters=6, mono_gauss=60, mono_realign_iters=[1, 2, 3, 4],
                          tri_iters=5, tri_gauss=150, tri_realign_iters=[2, 4], tri_leaves=60,
                          tree_min_count=20, tree_min_gain=5, flat_start_vad=False)
        mono, _, mres, _ = train_mono(train, texts, lang, cfg)
        out[ctx] = (mono, *train_tri(train, lang, mono, mres, cfg))
    return out


def _runs(info: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """Phone runs of a path's (left, phone, right, state) rows: (left, phone, right, start, end)."""
    starts = [0] + [t for t in range(1, len(info)) if info[t, 3] < info[t - 1, 3] or
                    (info[t, 1] != info[t - 1, 1])]
    ends = starts[1:] + [len(info)]
    return [(*info[a, :3].tolist(), a, b) for a, b in zip(starts, ends)]


def test_cross_word_graph_paths_carry_their_neighbours(rng):
    """Every Viterbi path of a cross-word graph (random scores, every utterance shape) names on
    each phone the phones before and after it on the path (silence included, 0 at the utterance
    edges); with context-free pdfs the best score is the word-internal graph's."""
    lang = _lang()
    wi = HmmModel.monophone(PHONES, lang.topo, context="word-internal")
    cw = HmmModel.monophone(PHONES, lang.topo, context="cross-word")
    sil = cw.phone_id["SIL"]
    for words in (["X", "Y"], ["W"], ["Z", "W", "X"], ["W", "W"], []):
        g0, g1 = compile_graph(wi, lang, words), compile_graph(cw, lang, words)
        assert g1.context == "cross-word" and g1.min_frames == g0.min_frames
        for _ in range(5):
            em = rng.normal(0, 2, (40, cw.num_pdfs))
            (p0, s0), (p1, s1) = viterbi_batch([g0, g1], [em[:, g0.pdf], em[:, g1.pdf]], np.inf, cw)
            assert s1 == pytest.approx(s0)
            runs = _runs(g1.info[p1])
            for k, (lc, ph, rc, _, _) in enumerate(runs):
                if ph == sil:
                    assert (lc, rc) == (0, 0)
                    continue
                assert lc == (runs[k - 1][1] if k else 0) and rc == (runs[k + 1][1] if k + 1 < len(runs)
                                                                      else 0)
        flat = equal_alignment(g1, 60)
        assert flat is not None and all(r[1] == sil or r[0] != 0 or r[3] == 0
                                        for r in _runs(g1.info[flat]))


def test_cross_word_tree_splits_on_the_neighbouring_words(trained):
    """C starts word Y: word-internally its first state only ever sees '#', cross-word it sees the
    previous word's last phone or silence, and the tree splits on that; the cross-word model fits
    the (cross-word coloured) data better, on its own alignment and on held-out utterances."""
    wi, cw = trained["word-internal"][1], trained["cross-word"][1]
    assert (wi.context, cw.context) == ("word-internal", "cross-word")
    assert wi.trees != cw.trees
    asked = {p for n in cw.trees["C/0"] if n.get("pos") == -1 for p in n["set"]}
    assert asked & {"B", "D", "SIL"}, cw.trees["C/0"]
    assert cw.pdf("SIL", "C", "D", 0) != cw.pdf("B", "C", "D", 0)
    fit = {c: trained[c][3].avg_loglike for c in ("word-internal", "cross-word")}
    assert fit["cross-word"] > fit["word-internal"] + 0.1, fit
    held, texts, lang = trained["held"], trained["texts"], trained["lang"]
    scores = {}
    for c in ("word-internal", "cross-word"):
        _, hmm, gmm, _, _ = trained[c]
        graphs, failed = compile_graphs(hmm, lang, texts, sorted(held))
        res = align(hmm, gmm, held, graphs)
        assert not failed and not res.failed
        scores[c] = res.avg_loglike
    assert scores["cross-word"] > scores["word-internal"] + 0.1, scores


def test_cross_word_targets_are_the_contexts_pdfs(trained, tmp_path):
    """The training targets (alignment dir pdfs) of a cross-word model are, frame by frame, the
    tree's pdfs of each phone between the phones before and after it on the aligned path."""
    _, hmm, gmm, res, _ = trained["cross-word"]
    train = trained["train"]
    write_result(res, hmm, {u: len(x) for u, x in train.items()}, tmp_path / "ali")
    alis = read_alignments(tmp_path / "ali")
    assert alis.keys() == res.states.keys()
    names = [BOUNDARY] + hmm.phones[1:]
    edges = 0
    for u, ali in alis.items():
        info = res.graphs[u].info[res.states[u]]
        want = [hmm.pdf(names[lc], names[p], names[rc], s) for lc, p, rc, s in info]
        np.testing.assert_array_equal(ali, want)
        runs = _runs(info)
        for k in range(1, len(runs) - 1):
            assert (runs[k][0], runs[k][2]) in ((0, 0), (runs[k - 1][1], runs[k + 1][1]))
        edges += sum(r[0] not in (0, hmm.phone_id["SIL"]) for r in runs[1:] if r[1] == hmm.phone_id["C"])
    assert edges > 0      # some C followed another word's phone without a pause


def test_cross_word_model_decodes_through_its_graph(trained, tmp_path):
    """mkgraph follows each model's convention (H∘C∘L∘G for the cross-word one); decoding the
    held-out utterances with the GMMs' scores, the cross-word model's WER stays low and below the
    word-internal model's. Measured: 0.0 vs 4.3 %; 7.0 % for the cross-word model through a graph
    whose context transducer lets words next to silence see '#' (the training saw `SIL`)."""
    lang_dir = write_lang(tmp_path / "lang", LEX, unigram_arpa(sorted(LEX)), sil_prob=0.4)
    held, texts = trained["held"], trained["texts"]
    out = {}
    for c in ("word-internal", "cross-word"):
        _, hmm, gmm, _, _ = trained[c]
        g = Graph.load(build_graph(lang_dir, hmm, tmp_path / c).parent)
        assert g.info["config"]["context"] == c and ("CLG" in g.info["sizes"]) == (c == "cross-word")
        hyps = []
        for u in sorted(held):
            scores = 0.1 * gmm.loglikes(held[u], np.arange(hmm.num_pdfs))
            r = decode_utterance(g.fst, scores.astype(np.float32), beam=12.0, align=g.align)
            assert r.word_frames is not None
            hyps.append([g.words[w] for w in r.word_ids])
        out[c] = wer([texts[u].split() for u in sorted(held)], hyps)["wer"]
    assert out["cross-word"] <= 2.0 and out["cross-word"] < out["word-internal"], out


def test_cli_cross_word_passes_graph_and_refusals(tmp_path, synth_corpus, capsys):
    """`align --context cross-word` records the convention in every pass's model; mkgraph builds
    H∘C∘L∘G for it unasked and refuses a word-internal graph; a pass on a model of the other
    convention is refused; both with one-line errors that say what to do."""
    import json

    from test_gmm import _tiny_align_args

    from acoustic_kd.cli import main

    _, args = _tiny_align_args(tmp_path, synth_corpus)
    exp, lang = tmp_path / "exp", tmp_path / "lang"
    assert main([*args, "--context", "cross-word"]) == 0
    for p in ("mono", "tri"):
        assert HmmModel.load(exp / p / "final.hmm.json").context == "cross-word"
        assert json.loads((exp / p / "info.json").read_text())["config"]["align"]["context"] == \
            "cross-word"
    model = str(exp / "tri" / "final.hmm.json")
    assert main(["mkgraph", "--lang", str(lang), "--model", model, "--out", str(tmp_path / "g")]) == 0
    info = json.loads((tmp_path / "g" / "graph.json").read_text())
    assert info["config"]["context"] == "cross-word" and "CLG" in info["sizes"]
    capsys.readouterr()
    assert main(["mkgraph", "--lang", str(lang), "--model", model, "--out", str(tmp_path / "g2"),
                 "--context", "word-internal"]) == 1
    err = capsys.readouterr().err
    assert "trained with cross-word context but a word-internal graph" in err
    assert "--context model" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g2" / "HCLG.fst").exists()
    assert main([*args, "--pass", "tri"]) == 1            # the default context: word-internal
    err = capsys.readouterr().err
    assert "trained with align.context cross-word (now word-internal)" in err and "--pass" in err


def test_cli_cross_word_through_sat(tmp_path, synth_corpus):
    """Every pass (mono, tri, tri2 LDA+MLLT, tri3 SAT) trains cross-word, and a
    finished pass aligns another set through its cross-word graphs (tri3: its speaker-independent
    first pass re-targeted to tri3's pdfs) with the same pdfs as the training set's alignment."""
    import shutil

    from test_gmm import _tiny_align_args

    from acoustic_kd.cli import main

    rows, args = _tiny_align_args(tmp_path, synth_corpus)
    extra = tmp_path / "data" / "again"
    shutil.copytree(tmp_path / "data" / "train", extra)
    more = ["--tri2-iters", "2", "--tri2-realign-iters", "1", "--mllt-iters", "1", "--tri2-leaves",
            "90", "--tri2-gauss", "120", "--lda-dim", "20", "--tri3-iters", "2",
            "--tri3-realign-iters", "1", "--fmllr-iters", "1", "--fmllr-min-frames", "100"]
    assert main([*args, *more, "--context", "cross-word", "--through", "tri3",
                 "--align-sets", str(extra)]) == 0
    exp = tmp_path / "exp"
    for p in ("mono", "tri", "tri2", "tri3"):
        hmm = HmmModel.load(exp / p / "final.hmm.json")
        assert hmm.context == "cross-word" and not (p != "mono" and hmm.context_free)
        train, again = (read_alignments(exp / p / d) for d in ("ali_train", "ali_again"))
        assert len(train) == len(rows) and again.keys() == train.keys()
        assert np.mean(np.concatenate([again[u] == train[u] for u in train])) > 0.9, p
