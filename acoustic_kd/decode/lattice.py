"""Lattices, n-best lists with word times and confidences, and n-best rescoring with another LM.

`decode --lattice` decodes each utterance a second time with kaldi-decoder's LatticeSimpleDecoder
(beam = the decode beam, `lattice_beam` around the best path) and writes, beside the 1-best
outputs of the decode stage:

- `lat.txt.gz`  the raw state-level lattices, Kaldi's text archive layout (`utt` line, then
  `src dst ilabel olabel graph_cost,acoustic_cost` arcs and `state graph,acoustic` finals, a blank
  line after each); ilabel = pdf + 1, olabel = word id (graph/words.txt);
- `nbest.json`  per utterance the `nbest` best distinct word sequences with word times (seconds),
  graph and acoustic costs and their posterior (the softmax of −cost over the lattice's best paths,
  summed over the paths of each word sequence);
- `ctm`         the best path's words, Kaldi CTM layout `utt 1 start duration word confidence`.
  A word's confidence is the posterior mass of the n-best entries that have the same word over
  the middle of its span (an n-best approximation of Kaldi's lattice posteriors).

With `rescore_lm` (an ARPA file, e.g. a larger or higher-order LM than G.arpa) every n-best entry's
graph cost has the old LM's log-probability of its word sequence replaced by the new LM's
(`lm_scale` times), the list is re-ranked, and `rescored/` holds hyp.txt, wer, cer and the errors
files of the new 1-best. Costs are those of the decode (acoustic costs already scaled by acwt).
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import kaldi_decoder as kd
import kaldifst as kf
import numpy as np

from ..config_types import check_fields
from ..errors import DataError
from ..lang.arpa import read_arpa
from ..pool import forked_imap
from ..utils import atomic_path, atomic_write_json, atomic_write_text, c_sorted, get_logger
from .decoder import hybrid_loglikes, search_beam
from .graph import with_word_penalty
from .score import score_both, write_scores
from .search import best_path, word_spans

log = get_logger(__name__)
LN10 = math.log(10.0)


@dataclass
class LatticeConfig:
    """Options of `acoustic-kd decode --lattice`."""

    lattice_beam: float = field(default=8.0, metadata={
        "help": "lattice beam (cost units)", "range": "(0, inf)"})
    nbest: int = field(default=10, metadata={"help": "n-best entries kept per utterance",
                                             "range": "[1, inf)"})
    rescore_lm: str | None = field(default=None, metadata={
        "help": "ARPA LM to rescore the n-best with (replaces the graph's G.arpa scores)"})
    lm_scale: float = field(default=1.0, metadata={
        "help": "scale on the rescoring LM's costs", "range": "[0, inf)"})

    def __post_init__(self):
        check_fields(self)


@dataclass
class Path1:
    """One linear path of a lattice."""

    word_ids: list[int]
    frames: list[tuple[int, int]]
    graph_cost: float
    acoustic_cost: float
    posterior: float = 0.0

    @property
    def cost(self) -> float:
        return self.graph_cost + self.acoustic_cost


def decode_lattice(fst: kf.StdFst, loglikes: np.ndarray, beam: float = 15.0,
                   lattice_beam: float = 8.0) -> tuple[kf.Lattice | None, bool]:
    """Raw state-level lattice of scaled log-likelihoods [T, P] -> (lattice or None, reached final)."""
    loglikes = np.ascontiguousarray(loglikes, dtype=np.float32)
    if len(loglikes) == 0:
        return None, False
    dec = kd.LatticeSimpleDecoder(fst, kd.LatticeSimpleDecoderConfig(
        beam=float(beam), lattice_beam=float(lattice_beam)))
    dec.decode(kd.DecodableCtc(loglikes))
    ok, lat = dec.get_raw_lattice(use_final_probs=True)
    final = ok and lat.num_states > 0
    if not final:
        ok, lat = dec.get_raw_lattice(use_final_probs=False)
    return (lat if ok and lat.num_states > 0 else None), final


def linear_path(lat: kf.Lattice, align: dict | None, silence_pdfs: set[int], partial: bool
                ) -> Path1:
    """Words, word frames and costs of a linear lattice (one n-best entry), by the word-span rule
    of the decoder and the exported runtime (`decode.search.word_spans`)."""
    arcs, graph, acoustic = best_path(lat)
    size = max([il for il, _ in arcs] + [p + 2 for p in silence_pdfs] + [1])
    sil = np.zeros(size, dtype=bool)
    sil[[int(p) for p in silence_pdfs]] = True
    words, frames = word_spans(arcs, sil, align, partial)
    return Path1(words, frames, graph, acoustic)


def nbest_paths(lat: kf.Lattice, n: int, align: dict | None = None,
                silence_pdfs: set[int] = frozenset(), partial: bool = False,
                paths_per_entry: int = 10) -> list[Path1]:
    """The `n` best distinct word sequences of a raw lattice, best first, with posteriors.

    The raw lattice's best paths differ in alignment as well as in words, so n ×
    `paths_per_entry` paths are taken; each word sequence keeps its best path, and its posterior
    is the mass of all its paths among them (softmax of −cost, summed)."""
    best: dict[tuple[int, ...], Path1] = {}
    mass: dict[tuple[int, ...], list[float]] = {}
    for lin in kf.lattice_to_nbest(lat, 1.0, 1.0, int(n) * int(paths_per_entry)):
        p = linear_path(lin, align, set(silence_pdfs), partial)
        key = tuple(p.word_ids)
        mass.setdefault(key, []).append(-p.cost)
        if key not in best or p.cost < best[key].cost:
            best[key] = p
    keys = sorted(best, key=lambda k: best[k].cost)[:int(n)]
    if keys:
        logm = np.array([np.logaddexp.reduce(mass[k]) for k in keys])
        w = np.exp(logm - logm.max())
        for k, x in zip(keys, w / w.sum()):
            best[k].posterior = float(x)
    return [best[k] for k in keys]


def with_posteriors(paths: list[Path1]) -> list[Path1]:
    """Set each path's posterior: softmax of −cost over the list."""
    if paths:
        c = np.array([p.cost for p in paths])
        w = np.exp(-(c - c.min()))
        for p, x in zip(paths, w / w.sum()):
            p.posterior = float(x)
    return paths


def confidences(paths: list[Path1]) -> list[float]:
    """Per word of paths[0]: posterior mass of the entries with that word over its mid-frame."""
    if not paths:
        return []
    out = []
    for w, (s, e) in zip(paths[0].word_ids, paths[0].frames):
        mid = (s + e) / 2.0
        out.append(min(1.0, sum(p.posterior for p in paths
                                if any(w2 == w and s2 <= mid < max(e2, s2 + 1)
                                       for w2, (s2, e2) in zip(p.word_ids, p.frames)))))
    return out


def sentence_lm_cost(words: list[str], probs: list[dict], backoffs: dict) -> float:
    """−ln p(<s> words </s>) under a backoff ARPA LM (`lang.arpa.read_arpa` output); an unknown word
    costs as the LM's `<unk>` when it has one, else a floor of 99 (log10) per word."""
    order = len(probs)
    unk = ("<unk>",) in probs[0]
    total = 0.0
    hist: tuple[str, ...] = ("<s>",)
    for w in list(words) + ["</s>"]:
        w = w if (w,) in probs[0] or not unk else "<unk>"
        h = hist[-(order - 1):] if order > 1 else ()
        lp = 0.0
        while True:
            ng = h + (w,)
            if ng in probs[len(ng) - 1]:
                lp += probs[len(ng) - 1][ng]
                break
            if not h:
                lp += -99.0
                break
            lp += backoffs.get(h, 0.0)
            h = h[1:]
        total += lp
        hist = hist + (w,)
    return -total * LN10


def rescore(paths: list[Path1], words: dict[int, str], old_lm: tuple, new_lm: tuple,
            lm_scale: float = 1.0) -> list[Path1]:
    """Replace each path's old-LM cost by `lm_scale` × the new LM's; re-rank, new posteriors."""
    out = []
    for p in paths:
        ws = [words.get(i, f"<id{i}>") for i in p.word_ids]
        g = p.graph_cost - sentence_lm_cost(ws, *old_lm) + lm_scale * sentence_lm_cost(ws, *new_lm)
        out.append(Path1(p.word_ids, p.frames, g, p.acoustic_cost))
    return with_posteriors(sorted(out, key=lambda p: p.cost))


def lattice_text(utt: str, lat: kf.Lattice) -> str:
    """One lattice in Kaldi's text archive layout."""
    return f"{utt}\n{lat.to_str().rstrip()}\n\n"


class UttLattice:
    """One utterance's lattice work, callable on (utt, scaled log-likelihoods [T, P]) ->
    (utt, {"text": lattice text or None, "nbest": entries, "ctm": lines, "rescored": words,
    "final": reached a final state}); the same in this process or in a forked worker."""

    def __init__(self, graph, dcfg, lcfg: LatticeConfig, frame_shift: float, lms: tuple | None):
        self.fst = with_word_penalty(graph.fst, dcfg.word_penalty) if dcfg.word_penalty \
            else graph.fst
        self.words, self.align = graph.words, graph.align
        self.sil = set(int(p) for p in graph.info.get("silence_pdfs", []))
        self.beam, self.lcfg, self.shift, self.lms = search_beam(dcfg), lcfg, frame_shift, lms

    def name(self, i: int) -> str:
        return self.words.get(i, f"<id{i}>")

    def __call__(self, item: tuple[str, np.ndarray]) -> tuple[str, dict]:
        utt, ll = item
        lat, final = decode_lattice(self.fst, ll, self.beam, self.lcfg.lattice_beam)
        out: dict = {"text": None, "nbest": [], "ctm": [], "rescored": [], "final": final}
        if lat is None:
            return utt, out
        out["text"] = lattice_text(utt, lat)
        paths = nbest_paths(lat, self.lcfg.nbest, self.align, self.sil, partial=not final)
        fs = self.shift
        out["nbest"] = [{"words": [self.name(i) for i in p.word_ids],
                         "times": [[s * fs, e * fs] for s, e in p.frames], "cost": p.cost,
                         "graph_cost": p.graph_cost, "acoustic_cost": p.acoustic_cost,
                         "posterior": p.posterior} for p in paths]
        if paths:
            out["ctm"] = [f"{utt} 1 {s * fs:.2f} {(e - s) * fs:.2f} {self.name(w)} {c:.3f}\n"
                          for w, (s, e), c in zip(paths[0].word_ids, paths[0].frames,
                                                  confidences(paths))]
        if self.lms is not None:
            best = rescore(paths, self.words, *self.lms, self.lcfg.lm_scale)
            out["rescored"] = [self.name(i) for i in best[0].word_ids] if best else []
        return utt, out


def rescoring_lms(graph, lcfg: LatticeConfig) -> tuple | None:
    """(the graph's G.arpa, the rescoring LM), both read by `lang.arpa.read_arpa`; None without
    `lcfg.rescore_lm`."""
    if not lcfg.rescore_lm:
        return None
    new_lm = read_arpa(lcfg.rescore_lm)
    old_path = Path(graph.info.get("lang_dir", "")) / "G.arpa"
    if not old_path.exists():
        raise DataError(old_path, "the graph's G.arpa is needed to rescore (its scores are "
                        "taken out)", "decode with the graph dir mkgraph wrote (graph.json "
                        "names its lang dir)")
    return read_arpa(old_path), new_lm


def write_lattice_dir(graph, utts: list[str], log_post_fn: Callable[[str], np.ndarray],
                      log_priors: np.ndarray, dcfg, lcfg: LatticeConfig, out_dir: str | Path,
                      refs: dict[str, list[str]] | None = None, frame_shift: float = 0.01) -> dict:
    """Lattices, n-best lists and CTM of a set into `out_dir` (see the module docstring).

    The network runs here, utterance by utterance in `utts` order; with dcfg.nj > 1 the lattice
    searches run in that many forked processes, their results taken in `utts` order, so the
    files equal those of one process byte for byte."""
    out_dir = Path(out_dir)
    lms = rescoring_lms(graph, lcfg)
    work = UttLattice(graph, dcfg, lcfg, frame_shift, lms)
    items = ((u, hybrid_loglikes(log_post_fn(u), log_priors, dcfg.acwt)) for u in utts)
    nbest: dict[str, list[dict]] = {}
    ctm, lats, rescored_hyps = [], [], {}
    not_final = 0
    for utt, r in forked_imap(work, items, dcfg.nj):
        not_final += not r["final"]
        nbest[utt], rescored_hyps[utt] = r["nbest"], r["rescored"]
        if r["text"] is not None:
            lats.append(r["text"])
            ctm += r["ctm"]
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "lat.txt.gz") as tmp:
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            f.writelines(lats)
    atomic_write_json(out_dir / "nbest.json", nbest)
    atomic_write_text(out_dir / "ctm", "".join(ctm))
    summary: dict = {"lattice_beam": lcfg.lattice_beam, "nbest": lcfg.nbest, "utts": len(utts),
                     "not_final": not_final}
    if lms is not None:
        rdir = out_dir / "rescored"
        rdir.mkdir(exist_ok=True)
        atomic_write_text(rdir / "hyp.txt", "".join(
            f"{u} {' '.join(rescored_hyps[u])}".rstrip() + "\n" for u in c_sorted(rescored_hyps)))
        summary["rescore_lm"] = str(lcfg.rescore_lm)
        if refs is not None:
            scored = score_both(refs, rescored_hyps)
            write_scores(rdir, scored)
            summary["rescored"] = {k: res.to_dict() for k, (res, _) in scored.items()}
    atomic_write_json(out_dir / "lattice.json", summary)
    return summary
