"""HmmModel: the transition model shared by the aligner, DNN training, decoding and export.

Every phone has a left-to-right HMM with `num_states` emitting states; state `s` has a self-loop
(log P stay) and a forward arc (log P leave). Each (phone, state) owns a decision tree that maps the
phone's context (left phone, right phone) to a pdf (tied state); monophone models have one leaf per
tree. Trees never mix central phones or states, so `pdf_to_phone` / `pdf_to_state` are well defined,
and every internal node has both children, so any context — seen in training or not — lands on a leaf.

Context convention (`context`, saved with the model; a file without it is word-internal):
- "word-internal": a phone at a word edge sees the word-boundary symbol `#` as its outer context,
  and so does a phone next to silence / spoken noise; a word's pdf sequence never depends on its
  neighbours, so the decoding graph is built from words (HL∘G) without context fan-out.
- "cross-word" (Kaldi's): the context is the utterance's phone sequence, across word boundaries
  and including silence phones (a word next to silence sees `SIL`); only the edges of the
  utterance see `#`. The decoding graph needs a context transducer (H∘C∘L∘G) and the alignment
  graphs expand word edges per neighbour (gmm/xword.py).
Silence / spoken noise (`context_independent` in the topology) ignore their own context altogether.

Transition probabilities are stored per pdf (pdfs are never shared across (phone, state), so this
is as fine-grained as Kaldi's per-(phone, state) transitions) and re-estimated from alignments.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .errors import DataError
from .utils import atomic_write_json

BOUNDARY = "#"
WORD_INTERNAL, CROSS_WORD = "word-internal", "cross-word"
CONTEXTS = (WORD_INTERNAL, CROSS_WORD)   # the context conventions a model can be trained with

#: tree node: {"pdf": k} (leaf) or {"pos": -1 | 1, "set": [context phones], "yes": i, "no": i}
Tree = list[dict]


def _key(phone: str, state: int) -> str:
    return f"{phone}/{state}"


class HmmModel:
    """Phones, topology, context trees and per-pdf transition log-probabilities."""

    def __init__(self, phones: list[str], num_states: dict[str, int], context_independent: set[str],
                 trees: dict[str, Tree], log_self: np.ndarray, log_fwd: np.ndarray,
                 silence_phone: str = "SIL", context: str = WORD_INTERNAL):
        if context not in CONTEXTS:
            raise DataError(None, f"unknown context convention {context!r}",
                            f"use one of {', '.join(CONTEXTS)}")
        self.context = context
        self.phones = list(phones)
        self.phone_id = {p: i for i, p in enumerate(self.phones)}
        self.num_states = dict(num_states)
        self.context_independent = set(context_independent)
        self.trees = trees
        self.silence_phone = silence_phone
        self.log_self = np.asarray(log_self, dtype=np.float64)
        self.log_fwd = np.asarray(log_fwd, dtype=np.float64)
        self.num_pdfs = len(self.log_self)
        self.pdf_to_phone = np.full(self.num_pdfs, -1, dtype=np.int64)
        self.pdf_to_state = np.full(self.num_pdfs, -1, dtype=np.int64)
        for key, tree in trees.items():
            phone, state = key.rsplit("/", 1)
            for node in tree:
                if "pdf" in node:
                    pdf = node["pdf"]
                    if self.pdf_to_phone[pdf] not in (-1, self.phone_id[phone]) or \
                            self.pdf_to_state[pdf] not in (-1, int(state)):
                        raise DataError(None, f"pdf {pdf} is shared across (phone, state) roots",
                                        "rebuild the model: pdfs must be owned by one root")
                    self.pdf_to_phone[pdf] = self.phone_id[phone]
                    self.pdf_to_state[pdf] = int(state)
        if (self.pdf_to_phone < 0).any():
            raise DataError(None, "some pdfs are not reachable from any tree", "rebuild the model")

    # ------------------------------------------------------------ construction
    @classmethod
    def monophone(cls, phones: list[str], topo: dict[str, dict], silence_phone: str = "SIL",
                  context: str = WORD_INTERNAL) -> "HmmModel":
        """One pdf per (phone, state), in phone-id then state order; transitions from the topology;
        `context`: the convention its triphone trees will be grown with."""
        trees, ls, lf = {}, [], []
        for p in phones[1:]:
            t = topo[p]
            for s in range(t["num_states"]):
                trees[_key(p, s)] = [{"pdf": len(ls)}]
                q = float(t["self_loop_prob"][s])
                ls.append(math.log(q))
                lf.append(math.log(1.0 - q))
        return cls(phones, {p: topo[p]["num_states"] for p in phones[1:]},
                   {p for p in phones[1:] if topo[p].get("context_independent")}, trees,
                   np.array(ls), np.array(lf), silence_phone, context)

    # ------------------------------------------------------------ lookup
    def pdf(self, left: str, phone: str, right: str, state: int) -> int:
        """Tied state of `state` of `phone` between `left` and `right` (`#` = word boundary)."""
        tree = self.trees[_key(phone, state)]
        node = tree[0]
        while "pdf" not in node:
            ctx = left if node["pos"] < 0 else right
            node = tree[node["yes"] if ctx in node["_set"] else node["no"]]
        return node["pdf"]

    def neighbour(self, phone: str) -> str:
        """What a phone sees of the neighbouring `phone` under the model's convention: the phone
        itself, or `#` for a context-independent one in a word-internal model."""
        if self.context == WORD_INTERNAL and phone in self.context_independent:
            return BOUNDARY
        return phone

    def contexts(self, phones: list[str]) -> list[tuple[str, str]]:
        """(left, right) context of each phone of one pronunciation, its edges seeing `#`."""
        out = []
        for i, p in enumerate(phones):
            if p in self.context_independent:
                out.append((BOUNDARY, BOUNDARY))
                continue
            left = self.neighbour(phones[i - 1]) if i > 0 else BOUNDARY
            right = self.neighbour(phones[i + 1]) if i + 1 < len(phones) else BOUNDARY
            out.append((left, right))
        return out

    @property
    def context_free(self) -> bool:
        """No tree asks about context (monophones): the pdfs are the same under either convention."""
        return all(len(t) == 1 for t in self.trees.values())

    def phone_hmm(self, phone: str, left: str = BOUNDARY, right: str = BOUNDARY
                  ) -> list[tuple[int, float, float]]:
        """Per state of `phone` in context: (pdf, log P(self-loop), log P(forward))."""
        if phone not in self.num_states:
            raise DataError(None, f"phone '{phone}' is not in the model", "use the model's lang dir")
        out = []
        for s in range(self.num_states[phone]):
            k = self.pdf(left, phone, right, s)
            out.append((k, float(self.log_self[k]), float(self.log_fwd[k])))
        return out

    def word_hmm(self, phones: list[str]) -> list[list[tuple[int, float, float]]]:
        """One pronunciation -> per phone, per state (pdf, log P(self-loop), log P(forward))."""
        return [self.phone_hmm(p, lc, rc) for p, (lc, rc) in zip(phones, self.contexts(phones))]

    def silence_hmm(self) -> list[tuple[int, float, float]]:
        """The (context-independent) silence phone's states (pdf, log P(self), log P(forward))."""
        return self.phone_hmm(self.silence_phone)

    # ------------------------------------------------------------ training updates
    def update_transitions(self, self_counts: np.ndarray, fwd_counts: np.ndarray,
                           min_count: float = 5.0, floor: float = 0.05) -> None:
        """Re-estimate per-pdf self-loop probabilities from counts [num_pdfs] (Viterbi statistics).

        Pdfs with fewer than `min_count` transitions keep their old values; probabilities are kept
        within [floor, 1 - floor] so no arc is ever removed.
        """
        tot = self_counts + fwd_counts
        ok = tot >= min_count
        q = np.clip(self_counts[ok] / tot[ok], floor, 1.0 - floor)
        self.log_self[ok] = np.log(q)
        self.log_fwd[ok] = np.log1p(-q)

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        return {"phones": self.phones, "context": self.context, "num_states": self.num_states,
                "context_independent": sorted(self.context_independent),
                "silence_phone": self.silence_phone, "num_pdfs": self.num_pdfs,
                "trees": {k: [{a: b for a, b in n.items() if a != "_set"} for n in t]
                          for k, t in self.trees.items()},
                "log_self": self.log_self.tolist(), "log_fwd": self.log_fwd.tolist(),
                "pdf_to_phone": self.pdf_to_phone.tolist(), "pdf_to_state": self.pdf_to_state.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "HmmModel":
        return cls(d["phones"], d["num_states"], set(d["context_independent"]),
                   {k: [dict(n) for n in t] for k, t in d["trees"].items()},
                   np.array(d["log_self"]), np.array(d["log_fwd"]), d.get("silence_phone", "SIL"),
                   d.get("context", WORD_INTERNAL))

    def save(self, path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> "HmmModel":
        path = Path(path)
        if not path.exists():
            raise DataError(path, "HMM model not found", "run `acoustic-kd align` first")
        d = json.loads(path.read_text())
        if d.get("context", WORD_INTERNAL) not in CONTEXTS:
            raise DataError(path, f"key 'context' is {d['context']!r}, not one of "
                            f"{', '.join(CONTEXTS)}", "retrain the model (acoustic-kd align)")
        return cls.from_dict(d)

    @property
    def trees(self) -> dict[str, Tree]:
        return self._trees

    @trees.setter
    def trees(self, trees: dict[str, Tree]) -> None:
        for t in trees.values():  # cache a set per question for fast traversal
            for n in t:
                if "set" in n:
                    n["_set"] = frozenset(n["set"])
        self._trees = trees

    def num_leaves(self) -> int:
        return self.num_pdfs

    def __repr__(self) -> str:
        return f"HmmModel({len(self.phones) - 1} phones, {self.num_pdfs} pdfs, {self.context})"
