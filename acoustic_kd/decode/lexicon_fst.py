"""The HMM∘lexicon transducer "HL" (and the L that the determinized graph is built from).

For a word-internal HMM (see `acoustic_kd.hmm.HmmModel.word_hmm`; a cross-word one gets
H∘C∘L∘G, decode/hclg.py) a pronunciation maps to one fixed chain of HMM states whatever its
neighbours are. The HMM, context and lexicon levels are therefore built together as one
word-level transducer "HL":

    start --eps/-log(1-p)--> LOOP          start --eps/-log p--> SIL-chain --eps--> LOOP
    LOOP  --(pdf(s1)+1):word--> s1 ... sN  (one chain per pronunciation; entering consumes a frame)
    sN    --eps/-log(1-p)--> LOOP          sN    --eps/-log p--> SIL-chain        LOOP is final.

Each FST state `s` of a chain means "a frame of HMM state s was just consumed": its self-loop arc and
the arc into the next state both consume a frame (Kaldi's transition-on-arc convention, so n frames in
state s cost (n-1)·self + 1·forward). Transition log-probs are multiplied by `transition_scale` (0.1
by default, as Kaldi's `--self-loop-scale 0.1` for left-to-right HMMs). `p` = lang.json `sil_prob`.

The L of the determinized graph (`decode.hclg`) is the same transducer without self-loops, its input
labels HMM-state units (`hmm_units`) and disambiguation symbols after the pronunciations that need
them (`lexicon_disambig`). Also here: the small FST helpers the graph modules share.
"""

from __future__ import annotations

import math
from typing import Protocol

import kaldifst as kf

HmmChain = list[tuple[int, float, float]]          # per HMM state: (pdf, log p(self), log p(fwd))


class HmmLike(Protocol):
    """The part of `acoustic_kd.hmm.HmmModel` the graph needs."""

    num_pdfs: int

    def word_hmm(self, phones: list[str]) -> list[HmmChain]: ...

    def silence_hmm(self) -> HmmChain: ...


# ------------------------------------------------------------------ small FST helpers
def add_states(fst: kf.StdVectorFst, n: int) -> list[int]:
    return [fst.add_state() for _ in range(n)]


def arc_cost(logp: float, scale: float = 1.0) -> float:
    """Tropical cost (-log p) of a log-probability (exactly 0 for log p = 0)."""
    return 0.0 if logp == 0.0 else -scale * logp


def num_arcs(fst: kf.StdFst) -> int:
    return sum(fst.num_arcs(s) for s in range(fst.num_states))


def fst_size(fst: kf.StdFst) -> list[int]:
    return [fst.num_states, num_arcs(fst)]


def add_chain(fst: kf.StdVectorFst, src: int, chain: HmmChain, olabel: int, entry_cost: float,
              scale: float, units: dict[tuple[int, float], int] | None = None) -> tuple[int, float]:
    """Add an HMM-state chain entered from `src`; return (last state, cost of leaving it).

    Without `units`: input labels pdf + 1 and a self-loop per state; with: input labels
    units[(pdf, log p(self))] and no self-loops (the graph to determinize)."""
    states = add_states(fst, len(chain))
    prev, prev_cost = src, entry_cost
    for i, ((pdf, lself, lfwd), s) in enumerate(zip(chain, states)):
        label = pdf + 1 if units is None else units[(pdf, lself)]
        fst.add_arc(prev, kf.StdArc(label, olabel if i == 0 else 0, prev_cost, s))
        if units is None:
            fst.add_arc(s, kf.StdArc(label, 0, arc_cost(lself, scale), s))
        prev, prev_cost = s, arc_cost(lfwd, scale)
    return prev, prev_cost


# ------------------------------------------------------------------ HL / L
def hmm_units(prons: list[tuple[int, list[HmmChain], float]], sil_chain: HmmChain
              ) -> tuple[dict[tuple[int, float], int], list[tuple[int, float]]]:
    """Input units of the graph before self-loops: one per (pdf, log p(self)), ids from 1."""
    table: dict[tuple[int, float], int] = {}
    for chain in [sil_chain] + [phone for _, phones, _ in prons for phone in phones]:
        for pdf, lself, _ in chain:
            table.setdefault((pdf, lself), len(table) + 1)
    return table, list(table)


def lexicon_disambig(seqs: list[tuple[int, ...]]) -> list[int]:
    """Kaldi's add_lex_disambig rule on unit sequences: a pronunciation that is a proper prefix of
    another, or identical to another, gets a disambiguation symbol #k (k >= 1, distinct among
    identical ones); 0 = none needed. The prefix test is on HMM-state units, so pronunciations
    that differ in phones but not in tied states are told apart too."""
    prefixes = {s[:i] for s in seqs for i in range(1, len(s))}
    counts: dict[tuple[int, ...], int] = {}
    for s in seqs:
        counts[s] = counts.get(s, 0) + 1
    next_k: dict[tuple[int, ...], int] = {}
    out = []
    for s in seqs:
        if s in prefixes or counts[s] > 1:
            next_k[s] = next_k.get(s, 0) + 1
            out.append(next_k[s])
        else:
            out.append(0)
    return out


def make_hl(prons: list[tuple[int, list[HmmChain], float]], sil_chain: HmmChain, sil_prob: float,
            transition_scale: float = 0.1, units: dict[tuple[int, float], int] | None = None,
            disambig_base: int = 0, word_disambig0: int = 0) -> kf.StdVectorFst:
    """Word-level HMM∘lexicon transducer with optional silence (layout in the module docstring).

    prons: (word id, per-phone HMM chains, pron cost -log p(pron|word)) per pronunciation.
    With `units` (`hmm_units`) it is the L to determinize: unit input labels, no self-loops, a
    disambiguation symbol `disambig_base + k` after each pronunciation that needs one
    (`lexicon_disambig`) and a #0 loop (input `disambig_base`, output `word_disambig0`) at LOOP
    that lets G's backoff symbol through.
    """
    if not 0.0 <= sil_prob < 1.0:
        raise ValueError(f"sil_prob must be in [0, 1), got {sil_prob}")
    fst = kf.StdVectorFst()
    start, loop, sil_in = add_states(fst, 3)
    fst.start = start
    fst.set_final(loop, 0.0)
    no_sil = -math.log1p(-sil_prob)
    c_sil = -math.log(sil_prob) if sil_prob > 0.0 else None
    fst.add_arc(start, kf.StdArc(0, 0, no_sil, loop))
    if units is not None:
        fst.add_arc(loop, kf.StdArc(disambig_base, word_disambig0, 0.0, loop))
    if c_sil is not None:
        fst.add_arc(start, kf.StdArc(0, 0, c_sil, sil_in))
        last, leave = add_chain(fst, sil_in, sil_chain, 0, 0.0, transition_scale, units)
        fst.add_arc(last, kf.StdArc(0, 0, leave, loop))
    flat = [[st for phone in phone_chains for st in phone] for _, phone_chains, _ in prons]
    ks = [0] * len(flat) if units is None else \
        lexicon_disambig([tuple(units[(p, ls)] for p, ls, _ in c) for c in flat])
    for (word_id, _, pron_cost), chain, k in zip(prons, flat, ks):
        if not chain:
            continue
        last, leave = add_chain(fst, loop, chain, word_id, pron_cost, transition_scale, units)
        if k:
            d = fst.add_state()
            fst.add_arc(last, kf.StdArc(disambig_base + k, 0, 0.0, d))
            last = d
        fst.add_arc(last, kf.StdArc(0, 0, leave + no_sil, loop))
        if c_sil is not None:
            fst.add_arc(last, kf.StdArc(0, 0, leave + c_sil, sil_in))
    return fst
