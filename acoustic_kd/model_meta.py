"""What a trained acoustic model needs at inference, read once: typed checkpoint metadata.

Decoding, soft targets, ensemble evaluation, network realignment and export all read a model's
features and priors the same way, from here (torch-free, so the exported runtime shares it):

- `CheckpointMeta.from_dict(meta)`: the checkpoint meta dict (nnet.checkpoint) as a dataclass,
  with the one set of defaults (CMVN "speaker", no variance normalisation)
- `CheckpointMeta.features(data_dir)`: the data dir's FeatureSet normalised exactly as the model
  was trained (CMVN mode, variance normalisation, the training set's global stats), with the
  feature dimension checked against the network's input
- `log_priors(priors)`: log p(s), normalised and floored at `PRIOR_FLOOR` (pseudo log-likelihoods
  log p(s|x) - log p(s) in decoding, realignment and the exported runtime)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import ConfigError, DataError

PRIOR_FLOOR = 1e-10


def log_priors(priors: Sequence[float] | np.ndarray, floor: float = PRIOR_FLOOR) -> np.ndarray:
    """log p(s) [P] float64 of (unnormalised) priors, each floored at `floor` after normalising."""
    p = np.asarray(priors, dtype=np.float64)
    return np.log(np.maximum(p / p.sum(), floor))


@dataclass
class CheckpointMeta:
    """A model checkpoint's inference metadata (see nnet.checkpoint for the stored layout)."""

    context: tuple[int, int] = (0, 0)
    feature_config: dict | None = None
    cmvn: str = "speaker"
    norm_vars: bool = False
    cmvn_stats: list | None = None
    priors: list | None = None
    num_pdfs: int | None = None
    input_dim: int | None = None
    extra: dict = field(default_factory=dict, repr=False)   # everything else the meta holds

    @classmethod
    def from_dict(cls, meta: dict | "CheckpointMeta") -> "CheckpointMeta":
        if isinstance(meta, CheckpointMeta):
            return meta
        known = {"context", "feature_config", "cmvn", "norm_vars", "cmvn_stats", "priors",
                 "num_pdfs", "input_dim"}
        ctx = meta.get("context") or (0, 0)
        return cls(context=(int(ctx[0]), int(ctx[1])), feature_config=meta.get("feature_config"),
                   cmvn=meta.get("cmvn") or "speaker", norm_vars=bool(meta.get("norm_vars", False)),
                   cmvn_stats=meta.get("cmvn_stats"), priors=meta.get("priors"),
                   num_pdfs=None if meta.get("num_pdfs") is None else int(meta["num_pdfs"]),
                   input_dim=None if meta.get("input_dim") is None else int(meta["input_dim"]),
                   extra={k: v for k, v in meta.items() if k not in known})

    def features(self, data_dir: str | Path):
        """The data dir's FeatureSet normalised as the model was trained (CMVN mode, stats)."""
        from .features.featureset import FeatureSet

        feats = FeatureSet(data_dir, cmvn=self.cmvn, norm_vars=self.norm_vars,
                           global_stats=self.cmvn_stats)
        if self.input_dim is not None and feats.dim != self.input_dim:
            raise DataError(Path(data_dir) / "feats.scp", f"features have dimension {feats.dim} but "
                            f"the network expects {self.input_dim}", "compute the features with the "
                            "network's feature config (checkpoint meta feature_config)")
        return feats

    def log_priors(self) -> np.ndarray:
        if self.priors is None:
            raise ConfigError("the checkpoint stores no priors: pass --priors exp/tri/ali_train/priors.txt")
        return log_priors(self.priors)


def _same_stats(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6))


def feature_mismatch(a: CheckpointMeta, b: CheckpointMeta) -> str:
    """What differs in how two models read features ('' when nothing does): CMVN mode, variance
    normalisation, input dimension and, with global CMVN, the training stats."""
    out = [f"{k} {getattr(a, k)!r} vs {getattr(b, k)!r}" for k in ("cmvn", "norm_vars")
           if getattr(a, k) != getattr(b, k)]
    if None not in (a.input_dim, b.input_dim) and a.input_dim != b.input_dim:
        out.append(f"input dim {a.input_dim} vs {b.input_dim}")
    if a.cmvn == b.cmvn == "global" and not _same_stats(a.cmvn_stats, b.cmvn_stats):
        out.append("global CMVN stats (other training sets)")
    return ", ".join(out)


def same_features(metas: Sequence[CheckpointMeta], names: Sequence[Any]) -> CheckpointMeta:
    """The first of several members' metas after checking they read features the same way (one
    feature stream feeds them all)."""
    first = metas[0]
    for m, n in zip(metas[1:], names[1:]):
        diff = feature_mismatch(first, m)
        if diff:
            raise DataError(n, f"reads features otherwise than {names[0]}: {diff}",
                            "ensemble only members trained on the same features")
    return first
