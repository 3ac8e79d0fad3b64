"""Builders for the export tests: tiny HMMs, word-loop graphs, checkpoints and tone audio.

The "tone" setup is a model made to decode a known word sequence from real audio: word LOW is a
500 Hz tone, HIGH a 2000 Hz tone, silence is near-silent noise; a 1-hidden-layer MLP compares the
mean log energy of the low and high mel bins of the centre frame.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from acoustic_kd.features import FbankConfig
from acoustic_kd.hmm import HmmModel
from acoustic_kd.nnet.checkpoint import save_checkpoint
from acoustic_kd.nnet.models import ModelConfig, build_model

SR = 8000
PHONES = ["<eps>", "SIL", "L", "H"]
LEXICON = {"LOW": ["L"], "HIGH": ["H"]}
WORD_IDS = {"<eps>": 0, "LOW": 1, "HIGH": 2}
TONES = {"LOW": 500.0, "HIGH": 2000.0}


def make_hmm(path: Path, num_states: int) -> HmmModel:
    """Monophone HMM over PHONES with `num_states` states each (pdfs in phone then state order)."""
    topo = {p: {"num_states": num_states, "self_loop_prob": [0.5] * num_states,
                "context_independent": p == "SIL"} for p in PHONES[1:]}
    hmm = HmmModel.monophone(PHONES, topo)
    hmm.save(path)
    return hmm


def _chain(lines: list[str], next_state: list[int], pdfs: list[int], olabel: int) -> None:
    """Append arcs for loop -> s1 .. sN -> loop (each state: self-loop + forward, -log 0.5)."""
    c = -math.log(0.5)
    prev = 0
    for i, pdf in enumerate(pdfs):
        s = next_state[0]
        next_state[0] += 1
        lines.append(f"{prev} {s} {pdf + 1} {olabel if i == 0 else 0} {c}")
        lines.append(f"{s} {s} {pdf + 1} 0 {c}")
        prev = s
    lines.append(f"{prev} 0 0 0 {c}")


def make_graph(graph_dir: Path, hmm: HmmModel) -> Path:
    """Word loop over LEXICON with optional silence: HCLG.fst, words.txt, graph.json."""
    import kaldifst

    graph_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    nxt = [1]
    for word, phones in LEXICON.items():
        pdfs = [k for chain in hmm.word_hmm(phones) for k, _, _ in chain]
        _chain(lines, nxt, pdfs, WORD_IDS[word])
    sil = [k for k, _, _ in hmm.silence_hmm()]
    _chain(lines, nxt, sil, 0)
    lines.append("0")
    fst = kaldifst.compile("\n".join(lines) + "\n")
    fst.write(str(graph_dir / "HCLG.fst"))
    (graph_dir / "words.txt").write_text("".join(f"{w} {i}\n" for w, i in WORD_IDS.items()))
    (graph_dir / "graph.json").write_text(json.dumps({"silence_pdfs": sil, "num_pdfs": hmm.num_pdfs}))
    return graph_dir / "HCLG.fst"


def _meta(num_pdfs: int, cmvn: str, norm_vars: bool, rng: np.random.Generator) -> dict:
    return {"feature_config": FbankConfig(sample_rate=SR).to_dict(), "cmvn": cmvn,
            "norm_vars": norm_vars, "priors": rng.dirichlet(np.ones(num_pdfs) * 5).tolist(),
            "teachers": ["exp/members/m1/final.pt", "exp/members/m2/final.pt"],
            "distill": {"T": 2.0, "alpha": 0.5}, "train_data": "data/train"}


def random_checkpoint(path: Path, arch: str, num_pdfs: int, context=(4, 3)) -> torch.nn.Module:
    """A random tiny model (global CMVN with variance normalisation) saved as a checkpoint."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, hidden=48, layers=2, context=context, norm="batch",
                      tdnn_dilations=(1, 2), bottleneck=16)
    model = build_model(cfg, 40, num_pdfs).eval()
    for m in model.modules():  # non-trivial running stats so eval-mode batch norm matters
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    save_checkpoint(path, model, _meta(num_pdfs, "global", True, np.random.default_rng(1)))
    return model


def tone_checkpoint(path: Path, layout: tuple[int, ...] = (0, 1, 2)) -> torch.nn.Module:
    """MLP (pdfs SIL=0, L=1, H=2) over the centre frame's raw log-mel energies (no CMVN).

    d = mean(low bins) - mean(high bins) is about +5 for LOW, -7.5 for HIGH, -4 for noise;
    the mean log energy is about 6.6 for noise and 10 or more for tones. `layout`: the class
    (0 SIL, 1 L, 2 H) each output pdf scores, -1 for a pdf that never wins (equal priors).
    """
    cfg = ModelConfig(arch="mlp", hidden=3, layers=1, context=(1, 1))
    model = build_model(cfg, 40, len(layout)).eval()
    first, last = model.net[0], model.net[-1]
    with torch.no_grad():
        w = torch.zeros(3, 3 * 40)
        w[0, 40:60], w[0, 60:80] = 1 / 20, -1 / 20        # h0 = relu(d): LOW
        w[1] = -w[0]                                       # h1 = relu(-d - 6): HIGH
        w[2, 40:80] = -1 / 40                              # h2 = relu(8.5 - mean): silence
        first.weight.copy_(w)
        first.bias.copy_(torch.tensor([0.0, -6.0, 8.5]))
        rows = torch.tensor([[0.0, 0.0, 5.0], [2.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 0.0]])
        last.weight.copy_(rows[list(layout)])
        last.bias.copy_(torch.tensor([-20.0 if c < 0 else 0.0 for c in layout]))
    meta = _meta(len(layout), "none", False, np.random.default_rng(2))
    meta["priors"] = [1 / len(layout)] * len(layout)
    save_checkpoint(path, model, meta)
    return model


def tone_audio(words: list[str], rate: int = SR, word_s: float = 0.3, gap_s: float = 0.25,
               seed: int = 0) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Tones separated by near-silence: (samples [N] float32, [(word, start_s, end_s)])."""
    rng = np.random.default_rng(seed)
    pieces, truth, t = [], [], gap_s
    pieces.append(np.zeros(int(gap_s * rate)))
    for w in words:
        n = int(word_s * rate)
        pieces.append(0.3 * np.sin(2 * np.pi * TONES[w] * np.arange(n) / rate))
        truth.append((w, t, t + word_s))
        pieces.append(np.zeros(int(gap_s * rate)))
        t += word_s + gap_s
    x = np.concatenate(pieces) + 1e-4 * rng.standard_normal(sum(len(p) for p in pieces))
    return x.astype(np.float32), truth
