"""Acoustic scale and word insertion penalty tuned on a dev set, never on the test set.

The grid is decoded on dev (log-posteriors computed once and reused); the best point is the lowest
dev WER. Ties -- common on small, easy dev sets -- go to the point that leans least on the acoustic
model: the smaller acoustic scale, then the larger HMM transition scale (when several graphs are
tried, `transition_scales`), then the penalty closest to 0. The chosen values and the whole grid
are recorded (`tune.json`) and then applied unchanged to the test set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import ConfigError
from ..utils import get_logger
from .decoder import DecodeConfig, Graph, LogPostFn, decode_set, words_of
from .score import score

log = get_logger(__name__)


@dataclass
class TuneConfig:
    """Grid searched on dev."""

    acwts: list[float] = field(default_factory=lambda: [0.05, 0.067, 0.083, 0.1, 0.125, 0.15, 0.2],
                               metadata={"help": "acoustic scales tried on dev"})
    word_penalties: list[float] = field(default_factory=lambda: [-0.5, 0.0, 0.5, 1.0],
                                        metadata={"help": "word insertion penalties tried on dev"})
    transition_scales: list[float] = field(default_factory=list, metadata={
        "help": "HMM transition scales tried on dev (a graph per scale, built beside --graph); "
                "empty = only the graph given"})


@dataclass
class TuneResult:
    """Chosen point and every grid point's dev WER."""

    acwt: float
    word_penalty: float
    dev_wer: float
    grid: list[dict]
    transition_scale: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def pick_best(grid: list[dict]) -> dict:
    """Grid point with min 'wer'; ties -> smaller 'acwt', then larger 'transition_scale' (when the
    grid has one), then 'word_penalty' closest to 0."""
    if not grid:
        raise ConfigError("empty tuning grid")
    return min(grid, key=lambda g: (g["wer"], g["acwt"], -(g.get("transition_scale") or 0.0),
                                    abs(g["word_penalty"]), g["word_penalty"]))


def grid_search(evaluate: Callable[..., float], cfg: TuneConfig) -> TuneResult:
    """Evaluate `evaluate(acwt, penalty) -> dev WER %` on the grid and pick the best point.

    With cfg.transition_scales the grid has a third axis and `evaluate(acwt, penalty, scale)`.
    """
    scales = sorted(cfg.transition_scales)
    grid = []
    for ts in scales or [None]:
        for a in sorted(cfg.acwts):
            for p in sorted(cfg.word_penalties):
                wer = evaluate(a, p) if ts is None else evaluate(a, p, ts)
                point = {"acwt": float(a), "word_penalty": float(p), "wer": float(wer)}
                if ts is not None:
                    point["transition_scale"] = float(ts)
                grid.append(point)
    best = pick_best(grid)
    log.info("tuned on dev: acwt %.3f, word penalty %.2f%s (dev WER %.2f%%)", best["acwt"],
             best["word_penalty"], "" if "transition_scale" not in best else
             f", transition scale {best['transition_scale']:g}", best["wer"])
    return TuneResult(best["acwt"], best["word_penalty"], best["wer"], grid,
                      best.get("transition_scale"))


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

    def evaluate(acwt: float, penalty: float, scale: float | None = None) -> float:
        dcfg = dataclasses.replace(base, acwt=acwt, word_penalty=penalty)
        g = graphs[scale] if graphs else graph
        results, _ = decode_set(g, dev_utts, cache.__getitem__, log_priors, dcfg)
        hyps = {u: words_of(g, r) for u, r in results.items()}
        return score({u: dev_refs[u] for u in dev_utts}, hyps)[0].wer

    return grid_search(evaluate, cfg)
