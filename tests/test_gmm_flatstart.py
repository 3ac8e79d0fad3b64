"""Energy-guided flat start: loud-frame detection, pause placement, silence chosen in long pauses."""

from __future__ import annotations

import numpy as np

from acoustic_kd.gmm.align import align, compile_graphs
from acoustic_kd.gmm.flatstart import loud_frames, vad_alignment
from acoustic_kd.gmm.graph import compile_graph, equal_alignment
from acoustic_kd.gmm.train import AlignConfig, train_mono
from acoustic_kd.hmm import HmmModel
from acoustic_kd.lang import Lang, LangConfig, make_topology

PHONES = ["<eps>", "SIL", "A", "B", "C"]
LEX = {"X": [["A", "B"]], "Y": [["C"]]}
MEANS = {"SIL": [-3, 0, 0, 0], "A": [3, 2, 0, 0], "B": [3, 0, 2, 0], "C": [3, 0, 0, 2]}


def _lang() -> tuple[Lang, HmmModel]:
    topo = make_topology(PHONES[1:], LangConfig())
    lang = Lang(PHONES, ["<eps>", "X", "Y"], LEX, topo, sil_prob=0.5)
    return lang, HmmModel.monophone(PHONES, topo)


def test_loud_frames_finds_runs_and_drops_clicks():
    e = np.zeros(100)
    e[20:40] = 10
    e[60:80] = 8
    e[50] = 10                      # a one-frame click is not speech
    m = loud_frames(e)
    assert m[20:40].all() and m[60:80].all()
    assert not m[:20].any() and not m[40:60].any() and not m[80:].any()
    assert not loud_frames(np.ones(50)).any()       # no dynamic range: nothing is loud


def test_vad_alignment_puts_pause_at_the_junction():
    lang, hmm = _lang()
    g = compile_graph(hmm, lang, ["X", "Y"])
    loud = np.zeros(120, dtype=bool)
    loud[15:45] = True              # X
    loud[80:100] = True             # Y after a 35-frame pause
    path = vad_alignment(g, 120, loud, min_pause=20)
    assert len(path) == 120 and np.all(np.diff(path) >= 0)
    word = g.word[path]
    assert (word[:15] == -1).all() and (word[100:] == -1).all()      # edge silences
    assert (word[45:80] == -1).all()                                  # the pause is silence
    assert (word[15:45] == 0).all() and (word[80:100] == 1).all()
    # a short dip is not a pause; no loud frame at all -> the plain flat start
    dip = loud.copy()
    dip[45:80] = True
    dip[50:60] = False
    assert (g.word[vad_alignment(g, 120, dip, min_pause=20)][15:100] >= 0).all()
    np.testing.assert_array_equal(vad_alignment(g, 120, np.zeros(120, bool)),
                                  equal_alignment(g, 120))


def _utterance(rng, words: list[str], pause_after: int | None) -> np.ndarray:
    """Features [T, 4] (dim 0 = energy): edge silences, phones of 6-12 frames, optional pause."""
    segs = [("SIL", int(rng.integers(15, 30)))]
    for i, w in enumerate(words):
        segs += [(p, int(rng.integers(6, 13))) for p in LEX[w][0]]
        if i == pause_after:
            segs.append(("SIL", int(rng.integers(35, 50))))
    segs.append(("SIL", int(rng.integers(15, 30))))
    x = np.concatenate([np.tile(MEANS[p], (n, 1)) for p, n in segs]).astype(np.float64)
    return (x + rng.normal(0, 0.5, x.shape)).astype(np.float32)


def test_silence_is_chosen_in_a_long_pause():
    """Words with a long pause between them: after training from the energy-guided flat start, the
    alignment puts (optional inter-word) silence over the pause instead of stretching a phone."""
    rng = np.random.default_rng(0)
    lang, _ = _lang()
    feats, texts, pauses = {}, {}, {}
    for i in range(40):
        words = [str(w) for w in rng.choice(["X", "Y"], size=int(rng.integers(2, 4)))]
        after = int(rng.integers(0, len(words) - 1))
        u = f"u{i:02d}"
        feats[u], texts[u] = _utterance(rng, words, after), " ".join(words)
        pauses[u] = after
    cfg = AlignConfig(mono_iters=6, mono_gauss=40, mono_realign_iters=[1, 2, 3, 4])
    hmm, gmm, _, _ = train_mono(feats, texts, lang, cfg)
    graphs, _ = compile_graphs(hmm, lang, texts, sorted(feats))
    res = align(hmm, gmm, feats, graphs)
    sil_between = 0
    for u, path in res.states.items():
        segs = res.word_times(u)
        w = pauses[u]
        gap = segs[w + 1][1] - segs[w][2]      # seconds of silence after the pause's word
        sil_between += gap >= 0.3
    assert sil_between >= 0.9 * len(res.states), sil_between
