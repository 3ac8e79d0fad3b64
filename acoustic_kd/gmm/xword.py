"""Cross-word context in the alignment graphs: each phone of a transcript's graph is copied per
(left, right) neighbour it can have, so that its pdfs see the neighbouring words' phones.

gmm/graph.py first builds the "skeleton" (each pronunciation a chain of phones, optional silence
between words); a node is one phone of one chain, its states consecutive. A speech node gets one
copy per (left, right) pair of the phones of the nodes that can precede / follow it (`#` at the
utterance's edges), its pdfs looked up in that context; a copy of node a leads to a copy of node b
when b follows a in the skeleton, a's copy names b's phone on its right and b's copy names a's
phone on its left. Silence / spoken-noise nodes (context-independent) keep one copy, which
connects to every copy that names them, and are seen by their neighbours as themselves (a word
next to silence sees `SIL`, as Kaldi's trees do). Every path of the expanded graph is a skeleton
path with consistent contexts, so Viterbi picks the phone sequence and the contexts together,
as over Kaldi's training graphs (H∘C∘L of the transcript).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hmm import BOUNDARY, HmmModel

Arc = tuple[int, float]   # (source state or -1 = the start, structural log weight)


@dataclass
class Skeleton:
    """Maps a skeleton state path (flat starts are laid out on the skeleton's chains) onto the
    expanded graph: node of each skeleton state [S0], first skeleton state [N] and phone of each
    node, and the first expanded state of each copy, keyed (node, left, right) ((node, None, None)
    for a context-independent node)."""

    state_node: np.ndarray
    node_first: np.ndarray
    node_phone: list[str]
    copies: dict[tuple, int]

    def lift(self, path: np.ndarray) -> np.ndarray:
        """Skeleton states per frame int64 [T] -> the expanded graph's states [T] (each node's
        copy chosen by the nodes before and after it on the path)."""
        path = np.asarray(path, dtype=np.int64)
        nodes = self.state_node[path]
        starts = np.flatnonzero(np.diff(nodes, prepend=-1))
        ends = np.append(starts[1:], len(path))
        seq = nodes[starts]
        out = np.empty_like(path)
        for i, (a, b) in enumerate(zip(starts, ends)):
            j = int(seq[i])
            first = self.copies.get((j, None, None))
            if first is None:
                left = self.node_phone[seq[i - 1]] if i > 0 else BOUNDARY
                right = self.node_phone[seq[i + 1]] if i + 1 < len(seq) else BOUNDARY
                first = self.copies[(j, left, right)]
            out[a:b] = first + path[a:b] - self.node_first[j]
        return out


@dataclass
class Expanded:
    """The expanded graph as lists over its states (as gmm/graph.py's builder holds them): pdf,
    incoming arcs, (left, phone, right, HMM state) ids, word index; the exits [(state, log w)]."""

    pdf: list[int]
    preds: list[list[Arc]]
    info: list[tuple[int, int, int, int]]
    word: list[int]
    final: list[Arc]
    skeleton: Skeleton


def expand(hmm: HmmModel, nodes: list[tuple[int, int, str]], preds: list[list[Arc]],
           word: list[int], final: list[Arc]) -> Expanded:
    """Cross-word expansion of a skeleton: nodes [(first state, states, phone)] in topological
    order, each skeleton state's incoming arcs `preds` (a node's first state is entered from the
    last states of other nodes or the start), word index per state, the exits `final`."""
    sizes = [n for _, n, _ in nodes]
    state_node = np.repeat(np.arange(len(nodes)), sizes)
    phone = [p for _, _, p in nodes]
    entry = [preds[f] for f, _, _ in nodes]
    after: list[list[str]] = [[] for _ in nodes]
    for j, arcs in enumerate(entry):
        for s, _ in arcs:
            if s >= 0:
                after[state_node[s]].append(phone[j])
    ends = {int(state_node[s]) for s, _ in final}
    out = Expanded([], [], [], [], [], Skeleton(state_node, np.array([f for f, _, _ in nodes]),
                                                phone, {}))
    made: list[list[tuple[str | None, int]]] = [[] for _ in nodes]   # per node: (right, last state)
    pid = hmm.phone_id
    for j, (first, size, p) in enumerate(nodes):
        for left, right in _contexts(hmm, p, entry[j], after[j], j in ends, phone, state_node):
            arcs = _entry_arcs(entry[j], left, p, made, phone, state_node)
            out.skeleton.copies[(j, left, right)] = len(out.pdf)
            lc, rc = left or BOUNDARY, right or BOUNDARY
            for k in range(size):
                out.preds.append(arcs if k == 0 else [(len(out.pdf) - 1, 0.0)])
                out.pdf.append(hmm.pdf(lc, p, rc, k))
                out.info.append((pid.get(lc, 0), pid[p], pid.get(rc, 0), k))
                out.word.append(word[first + k])
            made[j].append((right, len(out.pdf) - 1))
    for s, w in final:
        out.final += [(last, w) for right, last in made[state_node[s]] if right in (None, BOUNDARY)]
    return out


def _contexts(hmm: HmmModel, p: str, entry: list[Arc], after: list[str], is_end: bool,
              phone: list[str], state_node: np.ndarray) -> list[tuple[str | None, str | None]]:
    """The (left, right) pairs a node of phone `p` can be seen in; (None, None) for a
    context-independent phone (one copy, whatever its neighbours)."""
    if p in hmm.context_independent:
        return [(None, None)]
    left = _unique([phone[state_node[s]] if s >= 0 else BOUNDARY for s, _ in entry])
    right = _unique(after + ([BOUNDARY] if is_end else []))
    return [(a, b) for a in left for b in right]


def _entry_arcs(entry: list[Arc], left: str | None, p: str, made, phone: list[str],
                state_node: np.ndarray) -> list[Arc]:
    """Incoming arcs of a copy with left context `left` of a node of phone `p`: from the start
    (left `#`) and from the copies of the nodes before it whose right context is `p`."""
    arcs: list[Arc] = []
    for s, w in entry:
        if s < 0:
            if left in (None, BOUNDARY):
                arcs.append((-1, w))
            continue
        a = int(state_node[s])
        if left is None or left == phone[a]:
            arcs += [(last, w) for right, last in made[a] if right is None or right == p]
    return arcs


def _unique(xs: list[str]) -> list[str]:
    return list(dict.fromkeys(xs))
