"""Viterbi decoding of hybrid DNN-HMM likelihoods with kaldi-decoder's FasterDecoder.

The frame scores are `acwt · (log p(s|x) − log p(s))` (scaled pseudo log-likelihoods, [T, P]); the
graph's ilabel i reads column i − 1 (kaldi-decoder's `DecodableCtc` convention), which matches
HCLG's ilabel = pdf + 1. The decode core takes any `utt -> log-posteriors [T, P]` callable, so single
models, ensembles (combined posteriors) and exported models are decoded by the same code.

The word insertion penalty is added to the cost of every word-output arc of a copy of the graph
(`graph.with_word_penalty`), i.e. per hypothesised word and independent of acwt; the graph on disk
stays penalty-free so that tuning needs no rebuild. The LM weight is the inverse of acwt (Kaldi's
convention: graph costs are not scaled).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import kaldi_decoder as kd
import kaldifst as kf
import numpy as np
from tqdm import tqdm

from ..config_types import check_fields
from ..errors import DataError
from ..outdir import staged_dir
from ..utils import atomic_write_json, atomic_write_text, c_sorted, get_logger, is_done, mark_done
from .graph import read_word_ids, with_word_penalty
from .search import SearchProbe, best_path, word_spans

log = get_logger(__name__)

LogPostFn = Callable[[str], np.ndarray]       # utt -> log p(s|x) [T, P] float32


@dataclass
class DecodeConfig:
    """Options of `acoustic-kd decode` (search and scaling)."""

    acwt: float = field(default=0.1, metadata={
        "help": "acoustic scale on log-likelihoods", "range": "(0, inf)"})
    word_penalty: float = field(default=0.0, metadata={
        "help": "cost added per hypothesised word (graph-side; > 0 discourages insertions)",
        "range": "(-inf, inf)"})
    beam: float = field(default=13.0, metadata={
        "help": "decoding beam (cost units; 13 / 7000 active loses 0.14 WER points against 16 at a "
                "third of the time, recipes/mboshi/RESULTS.md)", "range": "(0, inf)"})
    max_active: int = field(default=7000, metadata={
        "help": "max active tokens per frame", "range": "[1, inf)"})
    min_active: int = field(default=20, metadata={
        "help": "min active tokens per frame", "range": "[0, inf)"})
    nj: int = field(default=1, metadata={"help": "parallel decoding processes", "range": "[1, inf)"})
    beam_acwt: float = field(default=0.0, metadata={
        "help": "acoustic scale the beam is meant for: below it the beam narrows in proportion "
                "(beam x acwt / beam_acwt: the same width in acoustic log-likelihood units, a "
                "faster but lossier search at low scales); 0 = the beam as given at every scale",
        "range": "[0, inf)"})
    beam_sample_frames: int = field(default=3000, metadata={
        "help": "frames (whole utterances, spread over the set) decoded again to count the "
                "search's arcs per frame (decode.json 'search'); 0 = not measured",
        "range": "[0, inf)"})

    def __post_init__(self):
        check_fields(self)


def search_beam(cfg: DecodeConfig) -> float:
    """The beam the search runs with at `cfg.acwt` (cost units): `cfg.beam`, narrowed by
    acwt / beam_acwt below `cfg.beam_acwt`."""
    if cfg.beam_acwt > 0 and cfg.acwt < cfg.beam_acwt:
        return cfg.beam * cfg.acwt / cfg.beam_acwt
    return cfg.beam


@dataclass
class Graph:
    """A loaded decoding graph dir: fst, id -> word table and graph.json info."""

    fst: kf.StdVectorFst
    words: dict[int, str]
    info: dict
    path: Path | None = None
    align: dict | None = None       # align_lexicon.json of a determinized graph (word times)

    @classmethod
    def load(cls, graph_dir: str | Path) -> "Graph":
        graph_dir = Path(graph_dir)
        fst_path = graph_dir / "HCLG.fst"
        if not fst_path.exists():
            raise DataError(fst_path, "decoding graph not found", "run `acoustic-kd mkgraph` first")
        info_path = graph_dir / "graph.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        words = {i: w for w, i in read_word_ids(graph_dir / "words.txt").items()}
        align_path = graph_dir / "align_lexicon.json"
        align = json.loads(align_path.read_text()) if info.get("determinized") and \
            align_path.exists() else None
        return cls(kf.StdVectorFst.read(str(fst_path)), words, info, graph_dir, align)


@dataclass
class DecodeResult:
    """Best path of one utterance: word ids, per-word [start, end) frames, costs, and the pdf of
    each frame [T] int32 (e.g. for speaker adaptation from a first pass)."""

    word_ids: list[int]
    word_frames: list[tuple[int, int]]
    graph_cost: float
    acoustic_cost: float
    reached_final: bool
    pdfs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    @property
    def cost(self) -> float:
        return self.graph_cost + self.acoustic_cost


def hybrid_loglikes(log_post: np.ndarray, log_priors: np.ndarray, acwt: float) -> np.ndarray:
    """Scaled pseudo log-likelihoods acwt·(log p(s|x) − log p(s)). [T, P] -> [T, P] float32."""
    if log_post.ndim != 2 or log_post.shape[1] != log_priors.shape[0]:
        raise ValueError(f"log-posteriors {log_post.shape} do not match {log_priors.shape[0]} priors")
    return (acwt * (log_post - log_priors[None, :])).astype(np.float32)


def decode_utterance(fst: kf.StdFst, loglikes: np.ndarray, beam: float = 15.0,
                     max_active: int = 7000, min_active: int = 20,
                     silence_pdfs: Iterable[int] = (), align: dict | None = None) -> DecodeResult:
    """Best path through `fst` for scaled log-likelihoods [T, P] (column = ilabel − 1).

    Word frames are [start, end), by the rule the exported runtime shares (`decode.search.word_spans`:
    with `align`, the align lexicon of a determinized graph, the words' pdf chains matched to the
    path's frames; otherwise from the word's arc to the next word's, less silence-pdf frames at
    either edge). When no final state survives the beam, the best partial path is returned with
    reached_final=False (Kaldi does the same and warns).
    """
    loglikes = np.ascontiguousarray(loglikes, dtype=np.float32)
    if len(loglikes) == 0:
        return DecodeResult([], [], float("inf"), float("inf"), False)
    opts = kd.FasterDecoderOptions(beam=beam, max_active=max_active,
                                   min_active=max(0, min(min_active, max_active - 1)))
    dec = kd.FasterDecoder(fst, opts)
    dec.decode(kd.DecodableCtc(loglikes))
    final = dec.reached_final()
    ok, lat = dec.get_best_path(use_final_probs=final)
    if not ok:
        return DecodeResult([], [], float("inf"), float("inf"), False)
    arcs, graph_cost, ac_cost = best_path(lat)
    sil = np.zeros(loglikes.shape[1], dtype=bool)
    sil[[int(p) for p in silence_pdfs if 0 <= int(p) < len(sil)]] = True
    words, frames = word_spans(arcs, sil, align, partial=not final)
    pdfs = np.array([il - 1 for il, _ in arcs if il], np.int32)
    return DecodeResult(words, frames, graph_cost, ac_cost, final, pdfs)


# ------------------------------------------------------------------ log-posterior sources
class ChunkedLogPost:
    """`utt -> log_post [T, P]` that computes `chunk` consecutive utterances per call of `many`.

    Network forwards on many utterances at once run far faster than one short utterance at a time
    (larger matmuls); the decode loop still asks for one utterance at a time, in `utts` order.
    Only the current chunk is kept in memory.
    """

    def __init__(self, many: Callable[[list[str]], dict[str, np.ndarray]], utts: list[str],
                 chunk: int = 32):
        self.many, self.utts, self.chunk = many, list(utts), max(1, chunk)
        self.pos = {u: i for i, u in enumerate(self.utts)}
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, utt: str) -> np.ndarray:
        if utt not in self.cache:
            i = self.pos[utt] // self.chunk * self.chunk
            self.cache = self.many(self.utts[i:i + self.chunk])
        return self.cache[utt]


def nnet_log_posteriors(models: list, feats, utts: list[str], rule: str = "arithmetic",
                        batch_size: int = 4096) -> dict[str, np.ndarray]:
    """Log-posteriors [T, P] of several utterances from one model or an ensemble, batched.

    models: [(nn.Module, meta)]; feats: utt -> features [T, D] (CMVN applied). The models run as
    one `ensemble.runner.TeacherEnsemble` (each on its crop of the union window; several are
    combined by `acoustic_kd.ensemble.combine.combine(rule)`).
    """
    import torch

    from ..ensemble.runner import TeacherEnsemble
    from ..nnet.data import ArraySource, FrameDataset

    ens = TeacherEnsemble([m for m, _ in models], rule)
    src = ArraySource({u: feats[u] for u in utts})
    ds = FrameDataset(src, None, ens.context)
    dev = next(ens.parameters()).device
    with torch.no_grad():
        out = torch.cat([ens.log_probs(b["x"].to(dev)).cpu()
                         for b in ds.iter_batches(batch_size)]).numpy()
    return {u: out[ds.utt_frames(u)] for u in utts}


# ------------------------------------------------------------------ many utterances
_WORKER: dict = {}


def _worker_init(graph_dir: str, penalty: float, opts: dict) -> None:
    g = Graph.load(graph_dir)
    _WORKER.update(fst=with_word_penalty(g.fst, penalty) if penalty else g.fst, opts=opts)


def _worker_decode(item: tuple[str, np.ndarray]) -> tuple[str, DecodeResult]:
    utt, ll = item
    return utt, decode_utterance(_WORKER["fst"], ll, **_WORKER["opts"])


def decode_loglikes(graph: Graph, items: Iterable[tuple[str, np.ndarray]], cfg: DecodeConfig,
                    total: int | None = None) -> Iterator[tuple[str, DecodeResult]]:
    """Decode (utt, scaled loglikes [T, P]) pairs; `cfg.nj` > 1 decodes in worker processes."""
    opts = dict(beam=search_beam(cfg), max_active=cfg.max_active, min_active=cfg.min_active,
                silence_pdfs=graph.info.get("silence_pdfs", []), align=graph.align)
    num_pdfs = graph.info.get("num_pdfs")

    def checked():
        for utt, ll in items:
            if num_pdfs is not None and ll.shape[1] != num_pdfs:
                raise DataError(graph.path, f"utterance {utt}: model has {ll.shape[1]} outputs but "
                                f"the graph was built for {num_pdfs} pdfs",
                                "rebuild the graph with the HMM the model was trained on")
            yield utt, ll

    bar = dict(total=total, desc="decode", unit="utt", disable=None)
    if cfg.nj <= 1 or graph.path is None:
        fst = with_word_penalty(graph.fst, cfg.word_penalty) if cfg.word_penalty else graph.fst
        for utt, ll in tqdm(checked(), **bar):
            yield utt, decode_utterance(fst, ll, **opts)
        return
    ctx = mp.get_context("fork")
    with ctx.Pool(cfg.nj, _worker_init, (str(graph.path), cfg.word_penalty, opts)) as pool:
        yield from tqdm(pool.imap(_worker_decode, checked(), chunksize=4), **bar)


def decode_set(graph: Graph, utts: list[str], log_post_fn: LogPostFn, log_priors: np.ndarray,
               cfg: DecodeConfig, on_log_post: Callable[[str, np.ndarray], None] | None = None,
               probe: bool = False) -> tuple[dict[str, DecodeResult], dict]:
    """Decode utterances from log-posteriors -> ({utt: result}, timing dict).

    log_priors: [P] log p(s). on_log_post(utt, log_post) sees every utterance's posteriors (e.g. for
    frame accuracy). timing: seconds in `log_post_fn` (network forward) and in search, frames, the
    beam searched with; with `probe` also 'search': the arcs the search expands per frame on a
    sample (`search.SearchProbe`, up to cfg.beam_sample_frames; its own time is left out).
    """
    t_fwd = t_probe = 0.0
    frames = 0
    sampler = None
    if probe and cfg.beam_sample_frames > 0:
        fst = with_word_penalty(graph.fst, cfg.word_penalty) if cfg.word_penalty else graph.fst
        sampler = SearchProbe(fst, len(utts), cfg.beam_sample_frames, search_beam(cfg),
                              cfg.max_active, cfg.min_active)

    def items():
        nonlocal t_fwd, t_probe, frames
        for i, utt in enumerate(utts):
            t0 = time.perf_counter()
            lp = log_post_fn(utt)
            t_fwd += time.perf_counter() - t0
            frames += len(lp)
            if on_log_post is not None:
                on_log_post(utt, lp)
            ll = hybrid_loglikes(lp, log_priors, cfg.acwt)
            if sampler is not None:
                t0 = time.perf_counter()
                sampler.see(i, ll)
                t_probe += time.perf_counter() - t0
            yield utt, ll

    t0 = time.perf_counter()
    results = dict(decode_loglikes(graph, items(), cfg, total=len(utts)))
    total = time.perf_counter() - t0 - t_probe
    not_final = sum(not r.reached_final for r in results.values())
    if not_final:
        log.warning("%d/%d utterances reached no final state (partial best paths used); "
                    "consider a larger --beam", not_final, len(results))
    timing = {"forward_s": t_fwd, "search_s": total - t_fwd, "total_s": total, "frames": frames,
              "not_final": not_final, "beam": search_beam(cfg)}
    if sampler is not None:
        timing["search"] = sampler.summary()
    return results, timing


def words_of(graph: Graph, result: DecodeResult) -> list[str]:
    """Word strings of a result."""
    return [graph.words.get(i, f"<id{i}>") for i in result.word_ids]


def decode_to_dir(graph: Graph, utts: list[str], log_post_fn: LogPostFn, log_priors: np.ndarray,
                  out_dir: str | Path, cfg: DecodeConfig, refs: dict[str, list[str]] | None = None,
                  alis: dict[str, np.ndarray] | None = None, frame_shift: float = 0.01,
                  extra: dict | None = None, force: bool = False) -> dict:
    """Decode a set into `out_dir`: hyp.txt, hyp.json (word times in s), wer, cer, errs.txt,
    cer_errs.txt, frame_acc (when `alis`), decode.json (config, timing, real-time factor, scores)
    and `.done`, built in a temporary sibling and moved in file by file (`outdir.staged_dir`:
    other files in `out_dir` stay).

    A finished dir is reused unless `force`; a killed run leaves only a temporary sibling, removed
    by the next run. Returns the decode.json summary.
    """
    from .score import frame_accuracy, score_both, write_scores

    out_dir = Path(out_dir)
    if is_done(out_dir) and not force and (out_dir / "decode.json").exists():
        log.info("%s is done; skipping (use --force to redo)", out_dir)
        return json.loads((out_dir / "decode.json").read_text())
    for stale in out_dir.parent.glob(f".{out_dir.name}.tmp.*"):
        shutil.rmtree(stale, ignore_errors=True)
    argmax: dict[str, np.ndarray] = {}
    keep = (lambda u, lp: argmax.__setitem__(u, lp.argmax(axis=1))) if alis is not None else None
    results, timing = decode_set(graph, utts, log_post_fn, log_priors, cfg, keep, probe=True)
    hyps = {u: words_of(graph, r) for u, r in results.items()}
    audio_s = timing["frames"] * frame_shift
    summary = {"config": dataclasses.asdict(cfg), "num_utts": len(utts), "timing": timing,
               "audio_s": audio_s, "rtf": timing["total_s"] / audio_s if audio_s else None,
               "graph": str(graph.path), **(extra or {})}
    with staged_dir(out_dir) as tmp:
        atomic_write_text(tmp / "hyp.txt", "".join(f"{u} {' '.join(hyps[u])}".rstrip() + "\n"
                                                   for u in c_sorted(hyps)))
        atomic_write_json(tmp / "hyp.json", {u: {
            "words": hyps[u], "times": [[s * frame_shift, e * frame_shift] for s, e in r.word_frames],
            "cost": r.cost, "reached_final": r.reached_final} for u, r in results.items()})
        if refs is not None:
            # refs = the whole set's text: utterances that could not be decoded score as PARTIAL
            scored = score_both(refs, hyps)
            write_scores(tmp, scored)
            summary.update({kind: res.to_dict() for kind, (res, _) in scored.items()})
        if alis is not None:
            fa = frame_accuracy(argmax, alis)
            atomic_write_text(tmp / "frame_acc", f"{100 * fa['acc']:.2f}\n")
            summary["frame_acc"] = fa
        atomic_write_json(tmp / "decode.json", summary)
        mark_done(tmp)
    return summary
