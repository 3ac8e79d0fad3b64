"""Acoustic scale and word insertion penalty tuned on a dev set, never on the test set.

The grid is decoded on dev (log-posteriors computed once and reused); the best point is the lowest
dev WER, ties broken towards the smaller acoustic scale, then the penalty closest to 0. The chosen values
and the whole grid are recorded (`tune.json`) and then applied unchanged to the test set.
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


@dataclass
class TuneResult:
    """Chosen point and every grid point's dev WER."""

    acwt: float
    word_penalty: float
    dev_wer: float
    grid: list[dict]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def pick_best(grid: list[dict]) -> dict:
    """Grid point with min 'wer'; ties -> smaller 'acwt', then 'word_penalty' closest to 0."""
    if not grid:
        raise ConfigError("empty tuning grid")
    return min(grid, key=lambda g: (g["wer"], g["acwt"], abs(g["word_penalty"]), g["word_penalty"]))


def grid_search(evaluate: Callable[[float, float], float], cfg: TuneConfig) -> TuneResult:
    """Evaluate `evaluate(acwt, penalty) -> dev WER %` on the grid and pick the best point."""
    grid = [{"acwt": float(a), "word_penalty": float(p), "wer": float(evaluate(a, p))}
            for a in sorted(cfg.acwts) for p in sorted(cfg.word_penalties)]
    best = pick_best(grid)
    log.info("tuned on dev: acwt %.3f, word penalty %.2f (dev WER %.2f%%)",
             best["acwt"], best["word_penalty"], best["wer"])
    return TuneResult(best["acwt"], best["word_penalty"], best["wer"], grid)


def tune_on_dev(graph: Graph, dev_utts: list[str], dev_refs: dict[str, list[str]],
                log_post_fn: LogPostFn, log_priors: np.ndarray, base: DecodeConfig,
                cfg: TuneConfig | None = None) -> TuneResult:
    """Decode the dev set over the grid (beam etc. from `base`) and pick acwt and word penalty.

    Only dev data enters here; the caller applies the result to test.
    """
    cfg = cfg or TuneConfig()
    cache = {u: log_post_fn(u) for u in dev_utts}

    def evaluate(acwt: float, penalty: float) -> float:
        dcfg = dataclasses.replace(base, acwt=acwt, word_penalty=penalty)
        results, _ = decode_set(graph, dev_utts, cache.__getitem__, log_priors, dcfg)
        hyps = {u: words_of(graph, r) for u, r in results.items()}
        return score({u: dev_refs[u] for u in dev_utts}, hyps)[0].wer

    return grid_search(evaluate, cfg)
