"""Energy-guided flat start: place the first alignment's silences where the frame energy is low.

The plain flat start (`graph.equal_alignment`) spreads the words evenly over everything between the
edge silences, so pauses between words and long or noisy edge silences train speech models; with
Viterbi EM a speech model that has learnt background keeps winning it, and the silence model never
sees that kind of background (babble, long pauses). Here a per-utterance energy detector marks loud
frames; the edge silences get the quiet frames at the edges, pauses inside the utterance go to the
optional silence of the nearest word junction, and the words share the remaining frames in
proportion to their state counts. Only the initial alignment is affected: realignment is free.
"""

from __future__ import annotations

import numpy as np

from .graph import UttGraph, equal_alignment, first_pron_chains, spread


def loud_frames(energy: np.ndarray, floor_pct: float = 10.0, peak_pct: float = 90.0,
                rel: float = 0.3, min_run: int = 3) -> np.ndarray:
    """Loud-frame mask bool [T] from a per-frame energy [T] (any increasing affine function of
    log energy, e.g. normalised c0).

    Loud = above floor + rel * (peak - floor), floor and peak being the utterance's `floor_pct` /
    `peak_pct` percentiles; loud runs shorter than `min_run` frames are dropped (clicks, bursts
    of noise). All False when the utterance has no dynamic range.
    """
    e = np.asarray(energy, dtype=np.float64)
    mask = np.zeros(len(e), dtype=bool)
    if len(e) < min_run:
        return mask
    lo, hi = np.percentile(e, [floor_pct, peak_pct])
    if hi <= lo:
        return mask
    loud = e > lo + rel * (hi - lo)
    for a, b in _runs(loud):
        if b - a >= min_run:
            mask[a:b] = True
    return mask


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a bool [T] mask."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


def vad_alignment(g: UttGraph, num_frames: int, loud: np.ndarray, min_pause: int = 10
                  ) -> np.ndarray | None:
    """Flat-start path guided by a loud-frame mask [T] -> graph state per frame int64 [T].

    Quiet edges go to the edge silences (at least a silence chain's length each), quiet runs of at
    least `min_pause` frames inside go to the silence of the nearest word junction (one pause per
    junction, in order), and the words split the other frames evenly per state. Falls back to
    `equal_alignment` when the mask has no loud frame or the words would not fit.
    """
    words, sils = first_pron_chains(g)
    loud = np.asarray(loud, dtype=bool)
    if len(loud) != num_frames or not loud.any() or len(sils) != len(words) + 1:
        return equal_alignment(g, num_frames)
    first = int(np.argmax(loud))
    end = num_frames - int(np.argmax(loud[::-1]))
    # edge silences get at least a chain's worth of frames, as in the plain flat start: a quiet
    # edge shorter than that (tightly trimmed recordings) still trains every silence state
    lead, trail = max(first, len(sils[0])), max(num_frames - end, len(sils[-1]))
    # inside pauses: quiet runs between the edge silences
    pauses = [(a + lead, b + lead) for a, b in _runs(~loud[lead:num_frames - trail])
              if b - a >= max(min_pause, 1)]
    nstates = np.array([len(w) for w in words], dtype=np.float64)
    bounds_share = np.cumsum(nstates)[:-1] / nstates.sum()     # word junctions, fraction of speech
    span = num_frames - lead - trail
    quiet_total = sum(b - a for a, b in pauses)
    assigned: dict[int, tuple[int, int]] = {}                  # junction j (before word j) -> pause
    last_j = 0
    for a, b in pauses:
        if len(words) < 2 or b - a < len(sils[1]):
            continue
        # position of the pause in speech-only time (other pauses' frames left out)
        before = a - lead - sum(min(b2, a) - a2 for a2, b2 in pauses if a2 < a)
        pos = before / max(span - quiet_total, 1)
        j = int(np.argmin(np.abs(bounds_share - pos))) + 1
        if j > last_j and j not in assigned:
            assigned[j] = (a, b)
            last_j = j
    # frames of each word: speech frames (unassigned pauses count as speech) between anchors
    cuts = [lead] + [x for j in sorted(assigned) for x in assigned[j]] + [num_frames - trail]
    blocks: list[tuple[list[int], int]] = [(sils[0], lead)] if lead else []
    seg_words = np.split(np.arange(len(words)), sorted(assigned))
    for k, ws in enumerate(seg_words):
        a, b = cuts[2 * k], cuts[2 * k + 1]
        if k > 0:
            pa, pb = assigned[int(ws[0])]
            blocks.append((sils[int(ws[0])], pb - pa))
        share = np.cumsum(nstates[ws]) / nstates[ws].sum()
        edges = np.concatenate([[0], np.floor(share * (b - a) + 0.5)]).astype(np.int64)
        for w, n in zip(ws, np.diff(edges)):
            if n < len(words[w]):
                return equal_alignment(g, num_frames)
            blocks.append((words[w], int(n)))
    if trail:
        blocks.append((sils[-1], trail))
    path = np.concatenate([spread(s, n) for s, n in blocks])
    return g.lift(path) if len(path) == num_frames else equal_alignment(g, num_frames)
