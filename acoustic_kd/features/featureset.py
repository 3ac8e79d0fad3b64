"""Read side of a data dir's features: `FeatureSet`, with CMVN applied on the fly.

On disk a data dir gains (see `make_features` in `features/stage.py`):

    feats.scp            utt -> <data dir>/data/raw_fbank_<set>.<job>.ark:offset (binary Kaldi matrices)
    utt2num_frames       utt -> T
    cmvn.scp             speaker -> <data dir>/data/cmvn_<set>.ark:offset (Kaldi stats [2, D+1])
    fbank.json           the FbankConfig that made them
    features_failed.txt  `utt reason` for utterances that could not be computed (only when some failed)

`FeatureSet` reads such a dir -- or one made by Kaldi's `compute-fbank-feats`/`compute-cmvn-stats`
-- lazily, applying CMVN on the fly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ConfigError, DataError
from ..utils import c_sorted, get_logger, read_table
from .cmvn import accumulate_cmvn_stats, apply_cmvn, compute_cmvn_stats, pool_stats, read_cmvn_scp
from .fbank import FbankConfig
from .io import EntryLoader, read_scp

log = get_logger(__name__)


class FeatureSet:
    """Read-side view of a data dir's features with CMVN applied on the fly.

    cmvn: "speaker" (per-speaker stats from cmvn.scp, computed on the fly when absent), "global"
    (stats pooled over all speakers, or `global_stats` given, e.g. the training set's, for
    deployment), "utterance" (each utterance normalised by its own stats: needs no speaker
    information, so a deployed model computes exactly the same features) or "none". norm_vars also normalises variances. Matrices are read lazily through
    kaldiio on each access, so memory stays bounded; `load_all()` materialises a small set.
    """

    def __init__(self, data_dir: str | os.PathLike, cmvn: str = "speaker", norm_vars: bool = False,
                 global_stats: np.ndarray | None = None):
        if cmvn not in ("speaker", "global", "utterance", "none"):
            raise ConfigError(f"cmvn must be 'speaker', 'global', 'utterance' or 'none', got {cmvn!r}")
        self.data_dir = Path(data_dir)
        self.cmvn = cmvn
        self.norm_vars = norm_vars
        scp = self.data_dir / "feats.scp"
        if not scp.is_file():
            raise DataError(scp, "feature scp not found", "run `acoustic-kd features --data DIR` first")
        self._scp = read_scp(scp)
        self._loader = EntryLoader(scp)
        self.utts: list[str] = c_sorted(self._scp)
        self.config: FbankConfig | None = self._read_config()
        self._num_frames = self._read_num_frames()
        self._utt2spk = self._read_utt2spk() if cmvn == "speaker" else {}
        self._spk_stats: dict[str, np.ndarray] | None = None
        self._global = None if global_stats is None else np.asarray(global_stats, dtype=np.float64)
        self._dim: int | None = self.config.dim if self.config is not None else None

    # ------------------------------------------------------------------ metadata
    def _read_config(self) -> FbankConfig | None:
        p = self.data_dir / "fbank.json"
        if not p.is_file():
            log.info("%s: no fbank.json (features made outside acoustic_kd?); config unknown",
                     self.data_dir)
            return None
        return FbankConfig.from_dict(json.loads(p.read_text(encoding="utf-8")), str(p))

    def _read_num_frames(self) -> dict[str, int]:
        p = self.data_dir / "utt2num_frames"
        return {k: int(v) for k, v, _ in read_table(p)} if p.is_file() else {}

    def _read_utt2spk(self) -> dict[str, str]:
        p = self.data_dir / "utt2spk"
        if not p.is_file():
            raise DataError(p, "speaker CMVN needs utt2spk", "add utt2spk or use cmvn='global'/'none'")
        utt2spk = {k: v for k, v, _ in read_table(p)}
        missing = [u for u in self.utts if u not in utt2spk]
        if missing:
            raise DataError(p, f"{len(missing)} utterance(s) of feats.scp have no speaker, e.g. "
                            f"{missing[0]}", "fix the data dir (acoustic-kd data-dir fix)")
        return utt2spk

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        if self._dim is None:
            self._dim = int(self.raw(self.utts[0]).shape[1]) if self.utts else 0
        return self._dim

    def __len__(self) -> int:
        return len(self.utts)

    def __iter__(self) -> Iterator[str]:
        return iter(self.utts)

    def __contains__(self, utt: str) -> bool:
        return utt in self._scp

    def num_frames(self, utt: str) -> int:
        """T of `utt` (from utt2num_frames, else read from the archive)."""
        if utt not in self._num_frames:
            self._num_frames[utt] = int(self.raw(utt).shape[0])
        return self._num_frames[utt]

    # ------------------------------------------------------------------ matrices
    def raw(self, utt: str) -> np.ndarray:
        """Features of `utt` without CMVN: float32 [T, D]."""
        if utt not in self._scp:
            raise KeyError(f"{utt}: not in {self.data_dir / 'feats.scp'}")
        spec, lineno = self._scp[utt]
        feats = np.asarray(self._loader.load(spec, lineno), dtype=np.float32)
        if not np.isfinite(feats).all():  # NaN/inf would silently poison CMVN stats and training
            raise DataError(self.data_dir / "feats.scp", f"utterance {utt}: non-finite feature values "
                            f"(NaN/inf) in '{spec}'", "recompute the features (acoustic-kd features "
                            "--force) or remove the utterance (acoustic-kd data-dir fix)", lineno)
        return feats

    def __getitem__(self, utt: str) -> np.ndarray:
        """Features of `utt` with the chosen CMVN: float32 [T, D]."""
        feats = self.raw(utt)
        if self.cmvn == "none":
            return feats
        if self.cmvn == "global":
            return apply_cmvn(feats, self.global_cmvn_stats(), self.norm_vars)
        if self.cmvn == "utterance":
            return apply_cmvn(feats, compute_cmvn_stats(feats), self.norm_vars) if len(feats) else feats
        return apply_cmvn(feats, self.speaker_stats()[self._utt2spk[utt]], self.norm_vars)

    def load_all(self) -> dict[str, np.ndarray]:
        """{utt: features [T, D]} for every utterance (small sets only: holds everything in memory)."""
        return {utt: self[utt] for utt in self.utts}

    # ------------------------------------------------------------------ CMVN stats
    def speaker_stats(self) -> dict[str, np.ndarray]:
        """{speaker: [2, D+1]} from cmvn.scp, or accumulated from the features when it is absent."""
        if self._spk_stats is None:
            scp = self.data_dir / "cmvn.scp"
            utt2spk = self._utt2spk or self._read_utt2spk()
            if scp.is_file():
                self._spk_stats = read_cmvn_scp(scp)
                needed = {utt2spk[u] for u in self.utts}
                missing = sorted(needed - set(self._spk_stats))
                if missing:
                    raise DataError(scp, f"no CMVN stats for {len(missing)} speaker(s), e.g. {missing[0]}",
                                    "recompute them (acoustic-kd features --force)")
                bad = next((k for k, v in self._spk_stats.items() if v.shape[1] != self.dim + 1), None)
                if bad is not None:
                    raise DataError(scp, f"speaker {bad}: CMVN stats of shape "
                                    f"{self._spk_stats[bad].shape} do not fit {self.dim}-dim features",
                                    "recompute them (acoustic-kd features --force)")
            else:
                log.info("%s: no cmvn.scp; computing per-speaker CMVN stats from the features",
                         self.data_dir)
                stats: dict[str, np.ndarray] = {}
                for utt in self.utts:
                    spk = utt2spk[utt]
                    if spk not in stats:
                        stats[spk] = np.zeros((2, self.dim + 1), dtype=np.float64)
                    accumulate_cmvn_stats(stats[spk], self.raw(utt))
                self._spk_stats = stats
        return self._spk_stats

    def global_cmvn_stats(self) -> np.ndarray:
        """Stats pooled over the set's speakers (or the `global_stats` given): float64 [2, D+1]."""
        if self._global is None:
            if (self.data_dir / "cmvn.scp").is_file():
                self._global = pool_stats(read_cmvn_scp(self.data_dir / "cmvn.scp").values())
            else:
                log.info("%s: no cmvn.scp; computing global CMVN stats from the features", self.data_dir)
                self._global = compute_cmvn_stats(self.raw(u) for u in self.utts)
        return self._global
