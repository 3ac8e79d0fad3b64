"""Decision-tree state tying for triphones (word-internal or cross-word: the model's `context`).

One tree per (central phone, HMM state) root. Statistics are single diagonal Gaussians per seen
context (left, right), as the alignment graphs give them: word-internal, or across words with the
silence phones as contexts (hmm.py). A split asks "is the left / right context in class Q?" and is
chosen greedily over all leaves of all trees by log-likelihood gain, until the total number of
leaves reaches the target, no split gains more than `min_gain`, or every split would leave a side
with fewer than `min_count` frames. Questions: ARPAbet phonetic classes (below), each single
phone (the silence phones too where they are contexts: cross-word) and the boundary `#`. Phones
with word-position suffixes (`AH_B`) are classed by their base phone.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from ..config_types import check_fields
from ..hmm import BOUNDARY, HmmModel, Tree
from ..lang.lexicon import base_phone
from .diag_gmm import gaussian_stats_loglike, matmul

#: Phonetic classes of the ARPAbet phones (articulatory categories, written for this project).
PHONE_CLASSES: dict[str, set[str]] = {
    "vowel": {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"},
    "front_vowel": {"AE", "EH", "EY", "IH", "IY"},
    "central_vowel": {"AH", "ER"},
    "back_vowel": {"AA", "AO", "OW", "UH", "UW"},
    "high_vowel": {"IH", "IY", "UH", "UW"},
    "low_vowel": {"AA", "AE", "AO"},
    "rounded": {"AO", "OW", "OY", "UH", "UW", "W"},
    "diphthong": {"AW", "AY", "EY", "OW", "OY"},
    "consonant": {"B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R",
                  "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH"},
    "stop": {"B", "D", "G", "K", "P", "T"},
    "voiced_stop": {"B", "D", "G"},
    "unvoiced_stop": {"K", "P", "T"},
    "fricative": {"DH", "F", "HH", "S", "SH", "TH", "V", "Z", "ZH"},
    "voiced_fricative": {"DH", "V", "Z", "ZH"},
    "sibilant": {"CH", "JH", "S", "SH", "Z", "ZH"},
    "affricate": {"CH", "JH"},
    "nasal": {"M", "N", "NG"},
    "liquid": {"L", "R"},
    "glide": {"W", "Y"},
    "approximant": {"L", "R", "W", "Y", "ER"},
    "voiced": {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH",
               "UW", "B", "D", "G", "DH", "V", "Z", "ZH", "JH", "M", "N", "NG", "L", "R", "W", "Y"},
    "labial": {"B", "P", "M", "F", "V", "W"},
    "coronal": {"D", "T", "N", "S", "Z", "SH", "ZH", "CH", "JH", "TH", "DH", "L", "R"},
    "dorsal": {"G", "K", "NG", "Y"},
    "silence": {"SIL", "SPN"},
}


@dataclass
class TreeConfig:
    """Tree-building thresholds (frames and log-likelihood units)."""

    num_leaves: int = field(default=500, metadata={"help": "leaves (tied states) to grow",
                                                   "range": "[1, inf)"})
    min_count: float = field(default=50.0, metadata={"help": "min frames on each side of a split",
                                                     "range": "[0, inf)"})
    min_gain: float = field(default=10.0, metadata={"help": "min log-likelihood gain of a split",
                                                    "range": "[0, inf)"})

    def __post_init__(self):
        check_fields(self)


def questions(phones: list[str]) -> list[frozenset[str]]:
    """Context question sets over `phones` (+ the word boundary `#`), duplicates removed."""
    qs: dict[frozenset, None] = {frozenset([BOUNDARY]): None}
    for members in PHONE_CLASSES.values():
        s = frozenset(p for p in phones if base_phone(p) in members)
        if s:
            qs[s] = None
            qs[s | {BOUNDARY}] = None
    for p in phones:
        qs[frozenset([p])] = None
    return list(qs)


def context_stats(info: np.ndarray, x: np.ndarray, num_phones: int):
    """Single-Gaussian stats per distinct (left, phone, right, state) of frames.

    info [N, 4] phone ids (0 = boundary), x [N, D] -> (keys [U, 4], n [U], s1 [U, D], s2 [U, D]).
    """
    code = ((info[:, 1] * 64 + info[:, 3]) * num_phones + info[:, 0]) * num_phones + info[:, 2]
    uniq, inv = np.unique(code, return_inverse=True)
    n = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    x = x.astype(np.float64)
    s1 = np.zeros((len(uniq), x.shape[1]))
    s2 = np.zeros_like(s1)
    np.add.at(s1, inv, x)
    np.add.at(s2, inv, x * x)
    right = uniq % num_phones
    left = (uniq // num_phones) % num_phones
    ps = uniq // (num_phones * num_phones)
    keys = np.stack([left, ps // 64, right, ps % 64], axis=1)
    return keys, n, s1, s2


def build_trees(hmm: HmmModel, keys: np.ndarray, n: np.ndarray, s1: np.ndarray, s2: np.ndarray,
                var_floor: np.ndarray, cfg: TreeConfig) -> tuple[HmmModel, np.ndarray, np.ndarray]:
    """Grow context trees for the speech phones of a monophone `hmm` from context stats.

    Returns (triphone HmmModel, leaf counts [P], leaf sums [P, 2, D] (first, second order)).
    Transition probabilities are inherited from the monophone model's (phone, state).
    """
    names = hmm.phones
    ctx_phones = [p for p in names[1:] if hmm.neighbour(p) != BOUNDARY]
    qsets = questions(ctx_phones)
    name_of = np.array([BOUNDARY] + names[1:], dtype=object)
    # one "leaf" = (root key, member rows); grow all roots together through one gain-ordered heap
    roots: dict[str, np.ndarray] = {}
    for p in names[1:]:
        for s in range(hmm.num_states[p]):
            rows = np.nonzero((keys[:, 1] == hmm.phone_id[p]) & (keys[:, 3] == s))[0]
            roots[f"{p}/{s}"] = rows
    nodes: dict[str, list[dict]] = {k: [{"rows": r}] for k, r in roots.items()}
    heap: list[tuple[float, int, str, int, tuple]] = []
    tick = 0

    def best_split(root: str, idx: int):
        rows = nodes[root][idx]["rows"]
        if root.rsplit("/", 1)[0] in hmm.context_independent or len(rows) < 2:
            return None
        return _best_split(rows, keys, n, s1, s2, name_of, qsets, var_floor, cfg)

    def push(root: str, idx: int):
        nonlocal tick
        b = best_split(root, idx)
        if b is not None and b[0] > cfg.min_gain:
            heapq.heappush(heap, (-b[0], tick, root, idx, b))
            tick += 1

    for root in nodes:
        push(root, 0)
    num_leaves = len(nodes)
    while heap and num_leaves < cfg.num_leaves:
        _, _, root, idx, (gain, pos, q, yes) = heapq.heappop(heap)
        node = nodes[root][idx]
        rows = node.pop("rows")
        tree = nodes[root]
        node.update({"pos": pos, "set": sorted(qsets[q]), "yes": len(tree), "no": len(tree) + 1})
        tree.append({"rows": rows[yes]})
        tree.append({"rows": rows[~yes]})
        num_leaves += 1
        push(root, len(tree) - 2)
        push(root, len(tree) - 1)
    return _number_leaves(hmm, nodes, n, s1, s2)


def _best_split(rows, keys, n, s1, s2, name_of, qsets, var_floor, cfg: TreeConfig):
    """The best question on the left or right context for the frames `rows` of one tree node:
    (gain, position -1|+1, question index, yes-mask over rows), or None if no split has
    cfg.min_count frames on each side."""
    tot_n, tot1, tot2 = n[rows].sum(), s1[rows].sum(0), s2[rows].sum(0)
    base = gaussian_stats_loglike(tot_n, tot1, tot2, var_floor)
    best = None
    for pos, col in ((-1, 0), (1, 2)):
        ctx = name_of[keys[rows, col]]
        mask = np.array([[c in q for c in ctx] for q in qsets], dtype=np.float64)  # [Q, r]
        # sum the side holding the node's first row: a question and its complement then get
        # bit-identical gains, so ties are broken by question order, not by float rounding
        # (which changes with the order the statistics were summed in: `--nj`)
        side = np.where(mask[:, :1] > 0, mask, 1.0 - mask)
        yn, y1, y2 = side @ n[rows], matmul(side, s1[rows]), matmul(side, s2[rows])
        ok = (yn >= cfg.min_count) & (tot_n - yn >= cfg.min_count)
        if not ok.any():
            continue
        gain = (gaussian_stats_loglike(yn, y1, y2, var_floor)
                + gaussian_stats_loglike(tot_n - yn, tot1 - y1, tot2 - y2, var_floor) - base)
        gain[~ok] = -np.inf
        q = int(np.argmax(gain))
        if best is None or gain[q] > best[0]:
            best = (float(gain[q]), pos, q, mask[q] > 0)
    return best


def _number_leaves(hmm: HmmModel, nodes: dict[str, list[dict]], n, s1, s2):
    """Number the grown trees' leaves root by root (phone order, then state) as pdf ids; returns
    (triphone HmmModel, leaf counts, leaf sums) as `build_trees`."""
    trees: dict[str, Tree] = {}
    d = s1.shape[1]
    leaf_n, leaf_stats, ls, lf = [], [], [], []
    for root, tree in nodes.items():
        phone, state = root.rsplit("/", 1)
        mono_pdf = hmm.pdf(BOUNDARY, phone, BOUNDARY, int(state))
        for node in tree:
            if "rows" in node:
                rows = node.pop("rows")
                node["pdf"] = len(leaf_n)
                leaf_n.append(n[rows].sum())
                leaf_stats.append(np.stack([s1[rows].sum(0), s2[rows].sum(0)]) if len(rows)
                                  else np.zeros((2, d)))
                ls.append(hmm.log_self[mono_pdf])
                lf.append(hmm.log_fwd[mono_pdf])
        trees[root] = tree
    tri = HmmModel(hmm.phones, hmm.num_states, hmm.context_independent, trees, np.array(ls),
                   np.array(lf), hmm.silence_phone, hmm.context)
    return tri, np.array(leaf_n), np.stack(leaf_stats)
