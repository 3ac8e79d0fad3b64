"""Acoustic-scale tuning on dev only, and the decode CLI's outputs (atomic, .done, re-run)."""

from __future__ import annotations

import json

import kaldiio
import numpy as np
import pytest

from acoustic_kd.cli import main
from acoustic_kd.decode.decoder import DecodeConfig, Graph
from acoustic_kd.decode.graph import build_graph
from acoustic_kd.decode.tune import TuneConfig, grid_search, pick_best, tune_on_dev
from test_decode_fakes import FakeHmm, alignment, perfect_loglikes, unigram_arpa, write_lang

LEX = {"NO": [["N", "OW"]], "YES": [["Y", "EH", "S"]]}
PRONS = {"NO": ["N", "OW"], "YES": ["Y", "EH", "S"]}


def test_pick_best_ties_go_to_smaller_acwt_then_penalty():
    grid = [{"acwt": 0.2, "word_penalty": 0.0, "wer": 1.0}, {"acwt": 0.1, "word_penalty": 0.5, "wer": 1.0},
            {"acwt": 0.1, "word_penalty": 0.0, "wer": 1.0}, {"acwt": 0.05, "word_penalty": 0.0, "wer": 3.0},
            {"acwt": 0.1, "word_penalty": -0.5, "wer": 1.0}]
    assert pick_best(grid) == {"acwt": 0.1, "word_penalty": 0.0, "wer": 1.0}


def test_grid_search_evaluates_every_point():
    seen = []

    def evaluate(a, p):
        seen.append((a, p))
        return abs(a - 0.1) * 100 + abs(p - 0.5)

    res = grid_search(evaluate, TuneConfig(acwts=[0.2, 0.1, 0.05], word_penalties=[1.0, 0.5, 0.0]))
    assert (res.acwt, res.word_penalty, res.dev_wer) == (0.1, 0.5, 0.0)
    assert len(seen) == 9 and len(res.grid) == 9 and res.interior and res.widened == []


def _bowl(a0: float, p0: float):
    """A synthetic dev surface with its optimum at acoustic scale a0 and penalty p0."""
    seen = []

    def evaluate(a, p):
        seen.append((a, p))
        return {"wer": 10 + 40 * abs(np.log(a / a0)) + 3 * abs(p - p0), "cer": 1.0}
    return evaluate, seen


def test_grid_widens_until_the_optimum_is_interior():
    # optimum (acwt 0.5, penalty -2) lies outside the initial grid on both axes
    evaluate, seen = _bowl(0.5, -2.0)
    res = grid_search(evaluate, TuneConfig(acwts=[0.05, 0.1, 0.2], word_penalties=[0.0, 0.5, 1.0]))
    assert res.interior
    assert res.acwt == pytest.approx(0.4)                 # nearer 0.5 (in log scale) than 0.8 is
    assert res.word_penalty == pytest.approx(-2.0)
    assert res.axes["acwt"] == [0.05, 0.1, 0.2, 0.4, 0.8]
    assert res.axes["word_penalty"] == [-2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0]
    assert {(w["axis"], w["side"]) for w in res.widened} == {("acwt", "high"), ("word_penalty", "low")}
    # the whole surface is recorded, every point decoded once, extra fields kept
    assert len(res.grid) == len(set(seen)) == len(seen) == 5 * 8
    assert all(g["cer"] == 1.0 for g in res.grid)
    best = min(res.grid, key=lambda g: g["wer"])
    assert (best["acwt"], best["word_penalty"]) == (res.acwt, res.word_penalty)


def test_grid_widens_down_towards_small_scales():
    evaluate, _ = _bowl(0.02, 0.0)
    res = grid_search(evaluate, TuneConfig(acwts=[0.05, 0.1, 0.2], word_penalties=[-0.5, 0.0, 0.5]))
    assert res.interior and res.acwt == pytest.approx(0.025, rel=1e-3) and res.word_penalty == 0.0
    assert res.axes["acwt"][:2] == [pytest.approx(0.0125), pytest.approx(0.025)]


def test_edge_optimum_after_max_widen_is_reported(caplog):
    evaluate, _ = _bowl(100.0, 0.0)
    with caplog.at_level("WARNING"):
        res = grid_search(evaluate, TuneConfig(acwts=[0.1, 0.2], word_penalties=[0.0], max_widen=2))
    assert not res.interior and res.acwt == pytest.approx(0.8) and len(res.widened) == 2
    assert "still on the grid edge" in caplog.text
    res = grid_search(evaluate, TuneConfig(acwts=[0.1, 0.2], word_penalties=[0.0], max_widen=0))
    assert not res.interior and res.widened == [] and res.acwt == 0.2


def test_plateau_reaching_the_edge_stops_widening_and_picks_inside():
    # every acoustic scale >= 0.1 is equally good: one widening shows the plateau, then stop
    res = grid_search(lambda a, p: 0.0 if a >= 0.1 else 5.0,
                      TuneConfig(acwts=[0.05, 0.1, 0.2], word_penalties=[0.0]))
    assert res.interior and res.acwt == 0.1 and res.axes["acwt"] == [0.05, 0.1, 0.2, 0.4]
    # a flat surface: every direction widens once, then the interior point with the smallest scale
    res = grid_search(lambda a, p: 0.0, TuneConfig(acwts=[0.1, 0.2], word_penalties=[0.0, 1.0]))
    assert res.interior and (res.acwt, res.word_penalty) == (0.1, 0.0)
    assert res.axes == {"acwt": [0.05, 0.1, 0.2, 0.4], "word_penalty": [-1.0, 0.0, 1.0, 2.0]}
    assert len(res.widened) == 4 and len(res.grid) == 16


def test_tuning_on_cer():
    res = grid_search(lambda a, p: {"wer": abs(a - 0.1), "cer": abs(a - 0.2)},
                      TuneConfig(acwts=[0.05, 0.1, 0.2, 0.3], word_penalties=[0.0], metric="cer"))
    assert res.acwt == 0.2 and res.metric == "cer" and res.dev_cer == 0.0
    assert res.dev_wer == pytest.approx(0.1)


def test_format_surface_stars_the_chosen_point():
    from acoustic_kd.decode.tune import format_surface

    evaluate, _ = _bowl(0.1, 0.0)
    res = grid_search(evaluate, TuneConfig(acwts=[0.05, 0.1, 0.2], word_penalties=[-0.5, 0.0, 0.5]))
    text = format_surface(res.to_dict())
    assert text.count("*") == 1
    row = [line for line in text.splitlines() if line.startswith("0.1 ")][0]
    assert "10.00*" in row


def make_set(tmp_path, name, hmm, utts, rng):
    """A data dir with text + a log-posterior scp of noisy 'perfect' posteriors."""
    d = tmp_path / name
    d.mkdir(parents=True)
    text, mats = [], {}
    for utt, words in utts.items():
        phones = ["SIL"] + [p for w in words for p in PRONS[w]] + ["SIL"]
        ll = perfect_loglikes(alignment(hmm, phones, 3), hmm.num_pdfs, low=-4.0)
        ll += rng.normal(0, 0.5, ll.shape).astype(np.float32)
        mats[utt] = ll - np.logaddexp.reduce(ll, axis=1, keepdims=True)
        text.append(f"{utt} {' '.join(words)}\n")
    (d / "text").write_text("".join(text))
    with kaldiio.WriteHelper(f"ark,scp:{d / 'post.ark'},{d / 'post.scp'}") as w:
        for utt, m in mats.items():
            w[utt] = m.astype(np.float32)
    return d


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(0)
    hmm = FakeHmm(["SIL", "EH", "N", "OW", "S", "Y"])
    lang = write_lang(tmp_path / "lang", LEX, unigram_arpa(["NO", "YES"]))
    build_graph(lang, hmm, tmp_path / "graph")
    dev = make_set(tmp_path, "dev", hmm, {"d1": ["YES", "NO", "YES"], "d2": ["NO", "NO"]}, rng)
    test = make_set(tmp_path, "test", hmm, {"t1": ["NO", "YES"], "t2": ["YES"], "t3": ["NO"]}, rng)
    (tmp_path / "priors.txt").write_text("".join(f"{1 / hmm.num_pdfs}\n" for _ in range(hmm.num_pdfs)))
    return tmp_path, hmm, dev, test


def test_tune_on_dev_picks_smallest_scale_with_best_dev_wer(setup):
    tmp_path, hmm, dev, _ = setup
    g = Graph.load(tmp_path / "graph")
    table = kaldiio.load_scp(str(dev / "post.scp"))
    refs = {"d1": ["YES", "NO", "YES"], "d2": ["NO", "NO"]}
    res = tune_on_dev(g, ["d1", "d2"], refs, lambda u: table[u], np.full(hmm.num_pdfs, -np.log(hmm.num_pdfs)),
                      DecodeConfig(), TuneConfig(acwts=[1.0, 0.5, 0.001], word_penalties=[0.0]))
    wers = {p["acwt"]: p["wer"] for p in res.grid}
    assert wers[0.001] > 0.0 and wers[0.5] == wers[1.0] == 0.0   # tiny scale: the graph dominates
    assert res.acwt == 0.5


def test_decode_cli_tunes_on_dev_and_writes_outputs(setup, capsys):
    tmp_path, hmm, dev, test = setup
    out = tmp_path / "exp" / "decode" / "x_test"
    stale = out.parent / ".x_test.tmp.99999"
    stale.mkdir(parents=True)                                 # left over by a killed run
    args = ["decode", "--graph", str(tmp_path / "graph"), "--data", str(test),
            "--logpost-scp", str(test / "post.scp"), "--priors", str(tmp_path / "priors.txt"),
            "--out", str(out), "--tune-on-dev", str(dev), "--dev-logpost-scp", str(dev / "post.scp"),
            "--acwts", "0.001", "0.5", "1.0", "--word-penalties", "0.0"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("%WER 0.00 [ 0 / 4, 0 ins, 0 del, 0 sub ]")
    assert "s search" in printed and "active states per frame" in printed
    assert not stale.exists()
    assert (out / "hyp.txt").read_text() == "t1 NO YES\nt2 YES\nt3 NO\n"
    tune = json.loads((out / "tune.json").read_text())
    assert tune["dev"] == str(dev) and tune["acwt"] == 0.5 and tune["interior"]
    assert [g["acwt"] for g in tune["grid"]] == [0.001, 0.5, 1.0, 2.0]   # 1.0 ties 0.5: widened once
    assert tune["grid"][0]["del"] == 5                         # the surface keeps the error counts
    assert tune["method"] == "lattice" and tune["wall_s"] > 0
    assert [lat["acwt"] for lat in tune["lattices"]] == [0.001, 0.5, 2.0]   # each covers [a, 2a]
    summary = json.loads((out / "decode.json").read_text())
    assert summary["config"]["acwt"] == 0.5 and summary["num_utts"] == 3
    probe = summary["timing"]["search"]
    assert probe["sample_utts"] >= 1 and probe["arcs_per_frame"] > probe["states_per_frame"] > 0
    times = json.loads((out / "hyp.json").read_text())["t2"]["times"]
    assert times == [[pytest.approx(0.09), pytest.approx(0.36)]]    # 3 SIL states x 3 frames first
    for f in ("wer", "errs.txt", ".done", "info.json"):
        assert (out / f).exists()
    mtime = (out / "hyp.txt").stat().st_mtime_ns
    assert main(args) == 0                                    # done: reused, not redone
    assert (out / "hyp.txt").stat().st_mtime_ns == mtime


def test_decode_cli_refuses_to_tune_on_the_test_set(setup, capsys):
    tmp_path, _, _, test = setup
    rc = main(["decode", "--graph", str(tmp_path / "graph"), "--data", str(test),
               "--logpost-scp", str(test / "post.scp"), "--priors", str(tmp_path / "priors.txt"),
               "--out", str(tmp_path / "o"), "--tune-on-dev", str(test),
               "--dev-logpost-scp", str(test / "post.scp")])
    assert rc == 1 and "dev set" in capsys.readouterr().err


def test_pick_best_ties_prefer_the_larger_transition_scale_after_acwt():
    grid = [{"acwt": 0.1, "word_penalty": 0.0, "wer": 0.0, "transition_scale": 0.1},
            {"acwt": 0.1, "word_penalty": 0.0, "wer": 0.0, "transition_scale": 1.0},
            {"acwt": 0.05, "word_penalty": 0.0, "wer": 0.5, "transition_scale": 1.0}]
    assert pick_best(grid)["transition_scale"] == 1.0
    grid[0]["wer"] = -1.0                         # a better dev WER always wins over the tie-break
    assert pick_best(grid)["transition_scale"] == 0.1


def test_decode_cli_tunes_the_transition_scale_with_graph_variants(setup):
    """--transition-scales: a graph per scale beside --graph (from the HMM recorded by mkgraph),
    the dev grid over all three axes, and --tuned reusing the chosen graph."""
    from acoustic_kd.hmm import HmmModel

    tmp_path, _, dev, test = setup
    phones = ["<eps>", "SIL", "EH", "N", "OW", "S", "Y"]      # the FakeHmm's pdf order
    topo = {p: {"num_states": 3, "self_loop_prob": [0.6] * 3, "context_independent": p == "SIL"}
            for p in phones[1:]}
    HmmModel.monophone(phones, topo).save(tmp_path / "hmm.json")
    graph = tmp_path / "g"
    assert main(["mkgraph", "--lang", str(tmp_path / "lang"), "--model", str(tmp_path / "hmm.json"),
                 "--out", str(graph)]) == 0
    assert json.loads((graph / "graph.json").read_text())["hmm"] == str(tmp_path / "hmm.json")
    out = tmp_path / "o_test"
    common = ["--data", str(test), "--logpost-scp", str(test / "post.scp"),
              "--priors", str(tmp_path / "priors.txt")]
    assert main(["decode", "--graph", str(graph), *common, "--out", str(out), "--tune-on-dev", str(dev),
                 "--dev-logpost-scp", str(dev / "post.scp"), "--acwts", "0.5", "1.0",
                 "--word-penalties", "0.0", "--transition-scales", "0.1", "1.0"]) == 0
    tune = json.loads((out / "tune.json").read_text())
    assert {g["transition_scale"] for g in tune["grid"]} == {0.1, 1.0}
    assert all(g["wer"] == 0.0 for g in tune["grid"])          # clean dev: every point ties ...
    assert tune["axes"]["acwt"] == [0.25, 0.5, 1.0, 2.0] and len(tune["grid"]) == 8   # widened both ways
    assert tune["transition_scale"] == 1.0 and tune["acwt"] == 0.5   # ... the tie-break decides
    assert tune["interior"] and "0.5 " in (out / "tune_surface.txt").read_text()
    assert json.loads((graph / "ts1" / "graph.json").read_text())["config"]["transition_scale"] == 1.0
    assert json.loads((out / "decode.json").read_text())["graph"] == str(graph / "ts1")
    assert (out / "hyp.txt").read_text() == "t1 NO YES\nt2 YES\nt3 NO\n"
    again = tmp_path / "o_again"
    assert main(["decode", "--graph", str(graph), *common, "--out", str(again),
                 "--tuned", str(out / "tune.json")]) == 0
    assert json.loads((again / "decode.json").read_text())["graph"] == str(graph / "ts1")


def test_graph_variant_needs_the_recorded_hmm(setup):
    from acoustic_kd.decode.graph import graph_variant
    from acoustic_kd.errors import DataError

    tmp_path = setup[0]
    assert graph_variant(tmp_path / "graph", 0.1) == tmp_path / "graph"    # its own scale
    with pytest.raises(DataError, match="mkgraph --force"):
        graph_variant(tmp_path / "graph", 1.0)          # built without an HMM file: cannot rebuild


def test_redecode_tuner_stays_available_and_agrees(setup, capsys):
    tmp_path, _, dev, test = setup
    common = ["decode", "--graph", str(tmp_path / "graph"), "--data", str(test),
              "--logpost-scp", str(test / "post.scp"), "--priors", str(tmp_path / "priors.txt"),
              "--tune-on-dev", str(dev), "--dev-logpost-scp", str(dev / "post.scp"),
              "--acwts", "0.001", "0.5", "1.0", "--word-penalties", "0.0", "0.5"]
    tunes = {}
    for method in ("redecode", "lattice"):
        out = tmp_path / method
        assert main(common + ["--out", str(out), "--tune-method", method]) == 0
        tunes[method] = json.loads((out / "tune.json").read_text())
    assert tunes["redecode"]["method"] == "redecode" and tunes["redecode"]["lattices"] == []
    assert {k: tunes["redecode"][k] for k in ("acwt", "word_penalty", "dev_wer")} == \
        {k: tunes["lattice"][k] for k in ("acwt", "word_penalty", "dev_wer")}
    with pytest.raises(SystemExit):
        main(common + ["--out", str(tmp_path / "bad"), "--tune-method", "exact"])
    assert "expected one of lattice, redecode" in capsys.readouterr().err
