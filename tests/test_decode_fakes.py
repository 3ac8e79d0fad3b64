"""Shared fakes for the decode tests: an HmmModel-like object and a tiny lang dir writer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


class FakeHmm:
    """Implements the `HmmModel` contract used by decoding: one pdf per (phone, state).

    Self-loop probabilities are `self_loop`, or random in [0.3, 0.9] when `rng` is given.
    """

    def __init__(self, phones: list[str], states: int = 3, sil_states: int = 3,
                 self_loop: float = 0.6, rng: np.random.Generator | None = None):
        self.phones = ["<eps>"] + list(phones)
        self.table: dict[str, list[tuple[int, float, float]]] = {}
        pdf = 0
        for p in phones:
            n = sil_states if p == "SIL" else states
            chain = []
            for _ in range(n):
                sl = float(rng.uniform(0.3, 0.9)) if rng is not None else self_loop
                chain.append((pdf, math.log(sl), math.log1p(-sl)))
                pdf += 1
            self.table[p] = chain
        self.num_pdfs = pdf

    def word_hmm(self, phones: list[str]) -> list[list[tuple[int, float, float]]]:
        return [list(self.table[p]) for p in phones]

    def silence_hmm(self) -> list[tuple[int, float, float]]:
        return list(self.table["SIL"])


def write_lang(out: Path, lexicon: dict[str, list[list[str]]], arpa: str,
               sil_prob: float = 0.5) -> Path:
    """Write a minimal lang dir (the files the graph builder reads)."""
    out.mkdir(parents=True, exist_ok=True)
    phones = ["<eps>", "SIL"] + sorted({p for prons in lexicon.values() for pr in prons for p in pr}
                                       - {"SIL"})
    (out / "phones.txt").write_text("".join(f"{p} {i}\n" for i, p in enumerate(phones)))
    words = ["<eps>"] + sorted(lexicon) + ["#0", "<s>", "</s>"]
    (out / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(words)))
    (out / "lexicon.txt").write_text("".join(f"{w} {' '.join(p)}\n" for w in sorted(lexicon)
                                             for p in lexicon[w]))
    (out / "topo.json").write_text(json.dumps({p: {"num_states": 3} for p in phones[1:]}))
    (out / "lang.json").write_text(json.dumps({"sil_prob": sil_prob, "silence_phone": "SIL"}))
    (out / "G.arpa").write_text(arpa)
    return out


def unigram_arpa(words: list[str], end_lp: float = -1.0) -> str:
    """A uniform unigram word loop in ARPA format."""
    lp = math.log10(1.0 / len(words))
    rows = [f"{lp:.6f}\t{w}" for w in words] + [f"{end_lp:.6f}\t</s>", "-99\t<s>"]
    return ("\\data\\\nngram 1=%d\n\n\\1-grams:\n" % len(rows)) + "\n".join(rows) + "\n\n\\end\\\n"


def alignment(hmm: FakeHmm, phones: list[str], frames_per_state: int = 2) -> list[int]:
    """pdf per frame for a phone sequence, each HMM state held `frames_per_state` frames."""
    return [pdf for ph in phones for pdf, _, _ in hmm.table[ph] for _ in range(frames_per_state)]


def perfect_loglikes(ali: list[int], num_pdfs: int, low: float = -20.0) -> np.ndarray:
    """[T, P] log-likelihoods: 0 on the aligned pdf, `low` elsewhere."""
    ll = np.full((len(ali), num_pdfs), low, dtype=np.float32)
    ll[np.arange(len(ali)), ali] = 0.0
    return ll


def viterbi_reference(fst, loglikes: np.ndarray) -> tuple[float, list[int]]:
    """Exact Viterbi by dynamic programming over the explicit FST: (best cost, output labels).

    cost = graph weights − Σ loglikes[t, ilabel − 1]; epsilon-input arcs are relaxed to a fixed
    point after every frame (the graphs under test have no negative-cost epsilon cycles).
    """
    import kaldifst as kf

    n = fst.num_states
    arcs = [[(a.ilabel, a.olabel, a.weight.value, a.nextstate) for a in kf.ArcIterator(fst, s)]
            for s in range(n)]
    inf = float("inf")

    def closure(best):
        changed = True
        while changed:
            changed = False
            for s in range(n):
                c, w = best[s]
                if c == inf:
                    continue
                for il, ol, wt, d in arcs[s]:
                    if il == 0 and c + wt < best[d][0] - 1e-9:
                        best[d] = (c + wt, w + ((ol,) if ol else ()))
                        changed = True
        return best

    best = [(inf, ())] * n
    best[fst.start] = (0.0, ())
    best = closure(best)
    for t in range(len(loglikes)):
        new = [(inf, ())] * n
        for s in range(n):
            c, w = best[s]
            if c == inf:
                continue
            for il, ol, wt, d in arcs[s]:
                if il:
                    cost = c + wt - float(loglikes[t, il - 1])
                    if cost < new[d][0]:
                        new[d] = (cost, w + ((ol,) if ol else ()))
        best = closure(new)
    finals = [(best[s][0] + fst.final(s).value, best[s][1]) for s in range(n)]
    cost, words = min(finals, key=lambda x: x[0])
    return cost, list(words)
