"""Acoustic scale and word insertion penalty tuned on a dev set, never on the test set.

Each grid point is scored on dev (log-posteriors computed once) in one of two ways (`tune_method`):
'lattice' (Kaldi's scoring, the default) takes each point's 1-best from dev lattices
(`_lattice_search`); 'redecode' decodes dev again at every point. The best point is the lowest
dev error rate (`metric`: WER, or CER for graphemic / unsegmented languages). Ties -- common on
small, easy dev sets -- go to a point inside the grid, then to the one that leans least on the
acoustic model: the smaller acoustic scale, then the larger HMM transition scale (when several
graphs are tried, `transition_scales`), then the penalty closest to 0.

A best point on the edge of the acoustic-scale or penalty axis (or one as good as the best) is not
accepted as it is: the grid widens past that edge by one step (acoustic scales geometrically by
the ratio of the two outermost values, penalties by their outermost spacing), every new point is
scored, and this repeats until the best point is interior or `max_widen` steps were taken. A
widening that finds nothing better than the best so far (a plateau reaching the edge) ends the
widening in that direction, and the choice falls on the plateau's interior. Each widening is
logged; an optimum still on the edge after `max_widen` steps is reported with a warning and
`interior: false`. An axis given a single value is held fixed. tune.json records the chosen
values, the whole surface (every point's WER, CER and error counts, and the scale of the lattices
that scored it), the lattice decodes, the points verified by direct decodes and the wall time;
the values are then applied unchanged to the test set.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..config_types import check_fields
from ..errors import ConfigError
from ..utils import get_logger
from .decoder import (DecodeConfig, Graph, LogPostFn, decode_set, hybrid_loglikes, search_beam,
                      words_of)
from .latgen import GraphArrays, LatticeSearch, set_lattices
from .latgrid import batches, lattice_size, set_best_words
from .score import score_both

log = get_logger(__name__)

AXES = ("acwt", "word_penalty")


@dataclass
class TuneConfig:
    """Grid searched on dev."""

    acwts: list[float] = field(default_factory=lambda: [0.05, 0.067, 0.083, 0.1, 0.125, 0.15, 0.2],
                               metadata={"help": "acoustic scales tried on dev (initial grid)",
                                         "range": "(0, inf)"})
    word_penalties: list[float] = field(default_factory=lambda: [-0.5, 0.0, 0.5, 1.0],
                                        metadata={"help": "word insertion penalties tried on dev "
                                                          "(initial grid)", "range": "(-inf, inf)"})
    transition_scales: list[float] = field(default_factory=list, metadata={
        "help": "HMM transition scales tried on dev (a graph per scale, built beside --graph); "
                "empty = only the graph given", "range": "[0, inf)"})
    max_widen: int = field(default=8, metadata={
        "help": "widening steps allowed while the best dev point is on a grid edge (0 = never widen)",
        "range": "[0, inf)"})
    metric: str = field(default="wer", metadata={"help": "dev error rate minimised",
                                                 "choices": ("wer", "cer")})
    tune_method: str = field(default="lattice", metadata={
        "help": "'lattice': dev decoded once into lattices, every grid point their best path "
                "(Kaldi's scoring); 'redecode': dev decoded again at every grid point",
        "choices": ("lattice", "redecode")})
    tune_lattice_beam: float = field(default=8.0, metadata={
        "help": "lattice beam of the dev lattices (cost units at their acoustic scale)",
        "range": "(0, inf)"})
    lattice_span: float = field(default=2.0, metadata={
        "help": "dev lattices decoded at acoustic scale a score the grid points with acwt in "
                "[a, a x span] (scored upwards: a lower scale's search keeps more paths); a point "
                "outside every decoded range gets its own decode", "range": "[1, inf)"})
    verify_top: int = field(default=3, metadata={
        "help": "the best N lattice-scored points are decoded on dev directly and the choice is "
                "the best of them (the test decode searches directly, and at high acoustic scales "
                "its beam can lose paths the lattices keep); 0 = the lattices' choice as it is",
        "range": "[0, inf)"})

    def __post_init__(self):
        check_fields(self)
        if not self.acwts or not self.word_penalties:
            raise ConfigError("tune: empty tuning grid (give acwts and word_penalties at least one "
                              "value each)")


@dataclass
class TuneResult:
    """Chosen point and every grid point's dev error rates (the surface)."""

    acwt: float
    word_penalty: float
    dev_wer: float
    grid: list[dict]
    transition_scale: float | None = None
    metric: str = "wer"
    dev_cer: float | None = None
    interior: bool = True
    widened: list[dict] = field(default_factory=list)
    axes: dict[str, list[float]] = field(default_factory=dict)
    method: str = "redecode"
    wall_s: float = 0.0
    lattices: list[dict] = field(default_factory=list)
    verified: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _rank(key: str) -> Callable[[dict], tuple]:
    """Sort key of grid points: `key`, then smaller 'acwt', larger 'transition_scale', 'word_penalty'
    closest to 0."""
    return lambda g: (g[key], g["acwt"], -(g.get("transition_scale") or 0.0),
                      abs(g["word_penalty"]), g["word_penalty"])


def pick_best(grid: list[dict], key: str = "wer") -> dict:
    """Grid point with min `key`; ties -> smaller 'acwt', then larger 'transition_scale' (when the
    grid has one), then 'word_penalty' closest to 0."""
    if not grid:
        raise ConfigError("empty tuning grid")
    return min(grid, key=_rank(key))


def _step_out(values: list[float], side: int, axis: str) -> float:
    """The next value past the low (side -1) or high (side +1) end of a sorted axis."""
    a, b = (values[0], values[1]) if side < 0 else (values[-1], values[-2])
    if axis == "acwt":                                 # positive: geometric steps
        return float(f"{a * a / b:.4g}")
    return round(a + (a - b), 6)


def _edges(point: dict, axes: dict[str, list[float]]) -> list[tuple[str, int]]:
    """(axis, side) of every widenable axis whose end `point` lies on (side -1 low, +1 high)."""
    out = []
    for axis in AXES:
        vals = axes[axis]
        if len(vals) > 1:
            if math.isclose(point[axis], vals[0]):
                out.append((axis, -1))
            elif math.isclose(point[axis], vals[-1]):
                out.append((axis, 1))
    return out


def _choose(grid: list[dict], axes: dict[str, list[float]], key: str) -> dict:
    """The best point, preferring among equally good ones a point inside the grid."""
    low = min(g[key] for g in grid)
    ties = [g for g in grid if g[key] == low]
    inner = [g for g in ties if not _edges(g, axes)]
    return pick_best(inner or ties, key)


def grid_search(evaluate: Callable, cfg: TuneConfig, many: bool = False) -> TuneResult:
    """Evaluate `evaluate(acwt, penalty) -> dev WER %` (or a dict with 'wer' and optionally 'cer'
    and counts, all recorded) on the grid, widening it while the best point is on an edge.

    With cfg.transition_scales the grid has a third axis and `evaluate(acwt, penalty, scale)`.
    With `many`, `evaluate([(scale or None, acwt, penalty), ...])` returns the results of a
    batch of points (each widening step is one batch).
    """
    key = cfg.metric
    scales = sorted(cfg.transition_scales)
    axes = {"acwt": sorted({float(a) for a in cfg.acwts}),
            "word_penalty": sorted({float(p) for p in cfg.word_penalties})}
    points: dict[tuple, dict] = {}

    def fill() -> None:
        todo = [t for t in itertools.product(scales or [None], axes["acwt"], axes["word_penalty"])
                if t not in points]
        got = evaluate(todo) if many else [evaluate(a, p) if ts is None else evaluate(a, p, ts)
                                           for ts, a, p in todo]
        for (ts, a, p), res in zip(todo, got):
            point = {"acwt": a, "word_penalty": p,
                     **({k: float(v) for k, v in res.items()} if isinstance(res, dict)
                        else {"wer": float(res)})}
            if key not in point:
                raise ConfigError(f"tuning on {key.upper()}, but the evaluation gave no '{key}'")
            if ts is not None:
                point["transition_scale"] = float(ts)
            points[(ts, a, p)] = point

    fill()
    widened: list[dict] = []
    done: set[tuple[str, int]] = set()        # directions where widening stopped paying
    for step in range(cfg.max_widen + 1):
        best = _choose(list(points.values()), axes, key)
        # every edge an equally good point touches: the optimum may lie beyond it
        ties = [g for g in points.values() if g[key] == best[key]]
        edges = sorted({e for g in ties for e in _edges(g, axes)} - done)
        if not edges or step == cfg.max_widen:
            break
        widened += _widen(axes, edges, step + 1, best, key)
        fill()
        for axis, side in edges:
            edge = axes[axis][0 if side < 0 else -1]
            slice_best = min(g[key] for g in points.values() if math.isclose(g[axis], edge))
            if slice_best >= best[key]:
                done.add((axis, side))
    grid = list(points.values())
    best = _choose(grid, axes, key)
    on_edge = _edges(best, axes)
    _log_choice(best, grid, on_edge, widened, scales, key)
    return TuneResult(best["acwt"], best["word_penalty"], best["wer"], grid,
                      best.get("transition_scale"), key, best.get("cer"), not on_edge, widened,
                      {**axes, **({"transition_scale": scales} if scales else {})})


def _widen(axes: dict[str, list[float]], edges, step: int, best: dict, key: str) -> list[dict]:
    """Add one value beyond each grid edge in `edges` ((axis, side) pairs) to `axes`; returns the
    records of what was added."""
    out = []
    for axis, side in edges:
        new = _step_out(axes[axis], side, axis)
        edge = axes[axis][0 if side < 0 else -1]
        out.append({"step": step, "axis": axis, "side": "low" if side < 0 else "high",
                    "edge": edge, "added": new, "best_" + key: best[key]})
        log.info("tuning: the best dev %s (%.2f%%) is reached at %s %g, the %s edge of the grid; "
                 "widening it to %g", key.upper(), best[key], axis, edge,
                 "low" if side < 0 else "high", new)
        axes[axis] = sorted(axes[axis] + [new])
    return out


def _log_choice(best: dict, grid: list[dict], on_edge, widened: list[dict], scales: list[float],
                key: str) -> None:
    if on_edge:
        log.warning("tuning: the best dev point is still on the grid edge (%s) after %d widening "
                    "step(s); widen the grid (--acwts / --word-penalties) or raise --max-widen",
                    ", ".join(f"{a} {best[a]:g}" for a, _ in on_edge), len({w["step"] for w in widened}))
    log.info("tuned on dev: acwt %.3f, word penalty %.2f%s (dev %s %.2f%%, %d points%s)", best["acwt"],
             best["word_penalty"], "" if "transition_scale" not in best else
             f", transition scale {best['transition_scale']:g}", key.upper(), best[key], len(grid),
             f", widened {len(widened)}x" if widened else "")
    if len(scales) > 2 and best.get("transition_scale") in (scales[0], scales[-1]):
        log.info("tuning: the chosen transition scale %g is an end of the ones tried (%s)",
                 best["transition_scale"], " ".join(f"{s:g}" for s in scales))


def format_surface(tune: dict) -> str:
    """The dev surface of a tune.json (`TuneResult.to_dict()`) as text tables (rows acwt, columns
    word penalty), one per transition scale; the chosen point is starred."""
    key = tune.get("metric", "wer")
    chosen = (tune["acwt"], tune["word_penalty"], tune.get("transition_scale"))
    out = []
    for ts in sorted({g.get("transition_scale") for g in tune["grid"]}, key=lambda x: x or 0.0):
        pts = {(g["acwt"], g["word_penalty"]): g[key] for g in tune["grid"]
               if g.get("transition_scale") == ts}
        pens = sorted({p for _, p in pts})
        out.append(f"dev {key.upper()} % (rows acwt, columns word penalty)"
                   + ("" if ts is None else f", transition scale {ts:g}"))
        out.append("acwt    " + "".join(f"{p:>10g}" for p in pens))
        for a in sorted({a for a, _ in pts}):
            cells = ["         –" if (a, p) not in pts else
                     f"{pts[(a, p)]:9.2f}" + ("*" if (a, p, ts) == chosen else " ") for p in pens]
            out.append(f"{a:<8g}" + "".join(cells))
        out.append("")
    return "\n".join(out)


def tune_on_dev(graph: Graph | dict[float, Graph], dev_utts: list[str], dev_refs: dict[str, list[str]],
                log_post_fn: LogPostFn, log_priors: np.ndarray, base: DecodeConfig,
                cfg: TuneConfig | None = None) -> TuneResult:
    """Pick acwt and word penalty on the dev set (beam etc. from `base`): by the best paths of dev
    lattices decoded once (cfg.tune_method 'lattice') or by decoding dev at every grid point
    ('redecode'). The log-posteriors are computed once either way; wall_s counts them.

    `graph` may be {transition scale: graph} (then cfg.transition_scales is taken from its keys).
    Only dev data enters here; the caller applies the result to test.
    """
    t0 = time.perf_counter()
    cfg = cfg or TuneConfig()
    graphs = graph if isinstance(graph, dict) else {None: graph}
    cfg = dataclasses.replace(cfg, transition_scales=sorted(k for k in graphs if k is not None))
    cache = {u: log_post_fn(u) for u in dev_utts}
    refs = {u: dev_refs[u] for u in dev_utts}
    if cfg.tune_method == "redecode":
        res = grid_search(_redecoder(graphs, cache, refs, log_priors, base), cfg)
    else:
        res = _lattice_search(graphs, cache, refs, log_priors, base, cfg)
    res.method, res.wall_s = cfg.tune_method, time.perf_counter() - t0
    log.info("tuning on dev (%s, %d points) took %.1f s", res.method, len(res.grid), res.wall_s)
    return res


def _rates(refs: dict[str, list[str]], hyps: dict[str, list[str]]) -> dict:
    both = score_both(refs, hyps)
    w, c = both["wer"][0], both["cer"][0]
    return {"wer": w.rate, "cer": c.rate, "ins": w.ins, "del": w.dels, "sub": w.subs}


def _redecoder(graphs: dict, cache: dict[str, np.ndarray], refs: dict, log_priors: np.ndarray,
               base: DecodeConfig) -> Callable[..., dict]:
    """evaluate(acwt, penalty[, scale]): dev decoded at that point and scored."""
    def evaluate(acwt: float, penalty: float, scale: float | None = None) -> dict:
        dcfg = dataclasses.replace(base, acwt=acwt, word_penalty=penalty)
        g = graphs[scale]
        results, _ = decode_set(g, list(cache), cache.__getitem__, log_priors, dcfg)
        return _rates(refs, {u: words_of(g, r) for u, r in results.items()})
    return evaluate


def _lattice_search(graphs: dict, cache: dict[str, np.ndarray], refs: dict,
                    log_priors: np.ndarray, base: DecodeConfig, cfg: TuneConfig) -> TuneResult:
    """`grid_search` with every point's 1-best the best path of dev lattices (`latgen`), decoded at
    an acoustic scale at most cfg.lattice_span below its own (a lower scale's search spans more
    acoustic cost, so its lattices keep the paths a higher scale prefers, not the other way round;
    `_anchors`), all points of a batch in one pass (`latgrid`). Lattices are decoded again only
    when widening leaves every covered range: a grid of 24-40 points costs one to three decodes,
    widening the penalties none. Then the cfg.verify_top best points are decoded directly, as test
    will be, and the choice is the best of them (`_verify`)."""
    anchors: list[tuple[float, dict, dict]] = []        # (acwt, {scale: lattices}, record)
    arrays = {ts: GraphArrays.from_fst(g.fst) for ts, g in graphs.items()}

    def evaluate(points: list[tuple]) -> list[dict]:
        for acwt in _anchors([a for _, a, _ in points], [x[0] for x in anchors], cfg.lattice_span):
            ps = [p for _, _, p in points]
            lats, rec = _dev_lattices(arrays, cache, log_priors, base, cfg, acwt,
                                      round((min(ps) + max(ps)) / 2, 6))
            anchors.append((acwt, lats, rec))
        groups: dict[tuple, list[int]] = {}
        for i, (ts, a, _) in enumerate(points):
            near = max((j for j, x in enumerate(anchors) if _covers(x[0], a, cfg.lattice_span)),
                       key=lambda j: anchors[j][0])
            groups.setdefault((ts, near), []).append(i)
        out: list[dict] = [{} for _ in points]
        for (ts, near), idx in groups.items():
            acwt, lats, rec = anchors[near]
            t0 = time.perf_counter()
            best = set_best_words(lats[ts], list(cache), [points[i][1] for i in idx],
                                  [points[i][2] for i in idx])
            names = graphs[ts].words
            for i, ids in zip(idx, best):
                hyps = {u: [names.get(w, f"<id{w}>") for w in ws] for u, ws in ids.items()}
                out[i] = {**_rates(refs, hyps), "lattice_acwt": acwt}
            rec["points"] += len(idx)
            rec["rescore_s"] += time.perf_counter() - t0
        return out

    res = grid_search(evaluate, cfg, many=True)
    res.lattices = [rec for _, _, rec in anchors]
    if cfg.verify_top:
        _verify(res, _redecoder(graphs, cache, refs, log_priors, base), cfg.verify_top)
    return res


def _verify(res: TuneResult, evaluate: Callable[..., dict], top: int) -> None:
    """Decode dev directly at the `top` best points of `res` (by lattice score) and move the
    choice to the best of those decodes; each is recorded in `res.verified`."""
    key = res.metric
    order = lambda g: (g[key], bool(_edges(g, res.axes)), *_rank(key)(g)[1:])  # noqa: E731
    for g in sorted(res.grid, key=order)[:top]:          # `_choose`'s order: inner points first
        got = evaluate(g["acwt"], g["word_penalty"], g.get("transition_scale"))
        res.verified.append({k: g[k] for k in ("acwt", "word_penalty", "transition_scale")
                             if k in g} | {f"lattice_{key}": g[key]} | got)
    best = _choose(res.verified, res.axes, key)
    if (best["acwt"], best["word_penalty"]) != (res.acwt, res.word_penalty) or \
            best.get("transition_scale") != res.transition_scale:
        log.info("tuning: decoded directly, acwt %g / penalty %g gives the best dev %s (%.2f%%); "
                 "the lattices preferred acwt %g / penalty %g", best["acwt"],
                 best["word_penalty"], key.upper(), best[key], res.acwt, res.word_penalty)
    res.acwt, res.word_penalty = best["acwt"], best["word_penalty"]
    res.transition_scale = best.get("transition_scale")
    res.dev_wer, res.dev_cer = best["wer"], best.get("cer")
    res.interior = not _edges(best, res.axes)


def _covers(anchor: float, acwt: float, span: float) -> bool:
    """Whether lattices decoded at acoustic scale `anchor` score a point at `acwt`."""
    return anchor * (1 - 1e-9) <= acwt <= anchor * span * (1 + 1e-9)


def _anchors(acwts: list[float], have: list[float], span: float) -> list[float]:
    """Acoustic scales to decode dev lattices at so that each of `acwts` is covered (`_covers`)
    by one of them or of `have`: the lowest uncovered scale, again until none is left."""
    todo = sorted(a for a in set(acwts) if not any(_covers(h, a, span) for h in have))
    out = []
    while todo:
        out.append(todo[0])
        todo = [a for a in todo if not _covers(todo[0], a, span)]
    return out


def _dev_lattices(graphs: dict, cache: dict[str, np.ndarray], log_priors: np.ndarray,
                  base: DecodeConfig, cfg: TuneConfig, acwt: float, penalty: float
                  ) -> tuple[dict, dict]:
    """({scale: the dev lattices decoded at (acwt, penalty), in `latgrid.LatBatch`es}, the record
    of it); `graphs` holds `latgen.GraphArrays`."""
    t0 = time.perf_counter()
    beam = search_beam(dataclasses.replace(base, acwt=acwt))
    lats, size = {}, {}
    frames = sum(len(lp) for lp in cache.values()) * len(graphs)
    for ts, g in graphs.items():
        search = LatticeSearch(g, beam, cfg.tune_lattice_beam, base.max_active, penalty)
        items = ((u, hybrid_loglikes(lp, log_priors, acwt)) for u, lp in cache.items())
        got = set_lattices(search, items, acwt, base.nj)
        size.update({(ts, u): x for u, x in got.items()})
        lats[ts] = batches(got)
    rec = {"acwt": acwt, "word_penalty": penalty, "beam": beam,
           "lattice_beam": cfg.tune_lattice_beam, "decode_s": time.perf_counter() - t0,
           **lattice_size(size, frames), "points": 0, "rescore_s": 0.0}
    log.info("tuning: dev lattices at acwt %g, word penalty %g (beam %g, lattice beam %g): %.1f s, "
             "%.1f arcs per frame", acwt, penalty, beam, cfg.tune_lattice_beam, rec["decode_s"],
             rec["arcs_per_frame"])
    return lats, rec
