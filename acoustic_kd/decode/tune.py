"""Acoustic scale and word insertion penalty tuned on a dev set, never on the test set.

The grid is decoded on dev (log-posteriors computed once and reused); the best point is the lowest
dev error rate (`metric`: WER, or CER for graphemic / unsegmented languages). Ties -- common on
small, easy dev sets -- go to a point inside the grid, then to the one that leans least on the
acoustic model: the smaller acoustic scale, then the larger HMM transition scale (when several
graphs are tried, `transition_scales`), then the penalty closest to 0.

A best point on the edge of the acoustic-scale or penalty axis (or one as good as the best) is not
accepted as it is: the grid widens past that edge by one step (acoustic scales geometrically by the ratio of the two outermost
values, penalties by their outermost spacing), every new point is decoded, and this repeats until
the best point is interior or `max_widen` steps were taken. A widening that finds nothing better
than the best so far (a plateau reaching the edge) ends the widening in that direction, and the
choice falls on the plateau's interior. Each widening is logged; an optimum still on the edge after
`max_widen` steps is reported with a warning and `interior: false` in tune.json. An axis given a
single value is held fixed. The chosen values and the whole surface (every point decoded, with its
WER, CER and error counts) are recorded (`tune.json`) and then applied unchanged to the test set.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..config_types import check_fields
from ..errors import ConfigError
from ..utils import get_logger
from .decoder import DecodeConfig, Graph, LogPostFn, decode_set, words_of
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def pick_best(grid: list[dict], key: str = "wer") -> dict:
    """Grid point with min `key`; ties -> smaller 'acwt', then larger 'transition_scale' (when the
    grid has one), then 'word_penalty' closest to 0."""
    if not grid:
        raise ConfigError("empty tuning grid")
    return min(grid, key=lambda g: (g[key], g["acwt"], -(g.get("transition_scale") or 0.0),
                                    abs(g["word_penalty"]), g["word_penalty"]))


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


def grid_search(evaluate: Callable[..., float | dict], cfg: TuneConfig) -> TuneResult:
    """Evaluate `evaluate(acwt, penalty) -> dev WER %` (or a dict with 'wer' and optionally 'cer'
    and counts, all recorded) on the grid, widening it while the best point is on an edge.

    With cfg.transition_scales the grid has a third axis and `evaluate(acwt, penalty, scale)`.
    """
    key = cfg.metric
    scales = sorted(cfg.transition_scales)
    axes = {"acwt": sorted({float(a) for a in cfg.acwts}),
            "word_penalty": sorted({float(p) for p in cfg.word_penalties})}
    points: dict[tuple, dict] = {}

    def fill() -> None:
        for ts, a, p in itertools.product(scales or [None], axes["acwt"], axes["word_penalty"]):
            if (ts, a, p) in points:
                continue
            got = evaluate(a, p) if ts is None else evaluate(a, p, ts)
            point = {"acwt": a, "word_penalty": p,
                     **({k: float(v) for k, v in got.items()} if isinstance(got, dict)
                        else {"wer": float(got)})}
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
    """Decode the dev set over the grid (beam etc. from `base`) and pick acwt and word penalty.

    `graph` may be {transition scale: graph} (then cfg.transition_scales is taken from its keys).
    Only dev data enters here; the caller applies the result to test.
    """
    cfg = cfg or TuneConfig()
    graphs = graph if isinstance(graph, dict) else None
    cfg = dataclasses.replace(cfg, transition_scales=sorted(graphs) if graphs else [])
    cache = {u: log_post_fn(u) for u in dev_utts}
    refs = {u: dev_refs[u] for u in dev_utts}

    def evaluate(acwt: float, penalty: float, scale: float | None = None) -> dict:
        dcfg = dataclasses.replace(base, acwt=acwt, word_penalty=penalty)
        g = graphs[scale] if graphs else graph
        results, _ = decode_set(g, dev_utts, cache.__getitem__, log_priors, dcfg)
        hyps = {u: words_of(g, r) for u, r in results.items()}
        both = score_both(refs, hyps)
        w, c = both["wer"][0], both["cer"][0]
        return {"wer": w.rate, "cer": c.rate, "ins": w.ins, "del": w.dels, "sub": w.subs}

    return grid_search(evaluate, cfg)
