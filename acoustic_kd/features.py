"""Log-mel filterbank features (Kaldi-exact, via kaldi-native-fbank), their config and the read side.

Features are float32 [T, D] per utterance, D = num_mel_bins (+1 with use_energy). On disk a data dir
gains (see `make_features` in `features_stage.py`):

    feats.scp            utt -> <data dir>/data/raw_fbank_<set>.<job>.ark:offset (binary Kaldi matrices)
    utt2num_frames       utt -> T
    cmvn.scp             speaker -> <data dir>/data/cmvn_<set>.ark:offset (Kaldi stats [2, D+1])
    fbank.json           the FbankConfig that made them
    features_failed.txt  `utt reason` for utterances that could not be computed (only when some failed)

`FeatureSet` reads such a dir -- or one made by Kaldi's `compute-fbank-feats`/`compute-cmvn-stats`
-- lazily, applying CMVN on the fly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import kaldi_native_fbank as knf
import numpy as np

from .cmvn import accumulate_cmvn_stats, apply_cmvn, compute_cmvn_stats, pool_stats, read_cmvn_scp
from .config import from_dict, load_config, to_dict
from .errors import ConfigError, DataError
from .features_io import EntryLoader, read_scp
from .utils import c_sorted, get_logger, read_table

__all__ = ["FbankConfig", "compute_fbank", "compute_cmvn_stats", "apply_cmvn", "make_features",
           "FeatureSet", "INT16_SCALE"]

log = get_logger(__name__)

#: Samples in [-1, 1] are multiplied by this before fbank: Kaldi reads 16-bit WAVs as integers in
#: [-32768, 32767], so log energies (and any dither amount) match Kaldi's only on that scale.
INT16_SCALE = 32768.0


@dataclass
class FbankConfig:
    """Kaldi `compute-fbank-feats` options. Defaults follow Kaldi except num_mel_bins (40, not 23)
    and dither (0, not 1: deterministic features)."""

    sample_rate: int = field(default=16000, metadata={
        "help": "audio is resampled to this rate (Hz) before fbank (Kaldi --sample-frequency)"})
    num_mel_bins: int = field(default=40, metadata={"help": "number of triangular mel bins = feature dim"})
    frame_length_ms: float = field(default=25.0, metadata={"help": "analysis window length in ms"})
    frame_shift_ms: float = field(default=10.0, metadata={"help": "hop between frames in ms"})
    dither: float = field(default=0.0, metadata={
        "help": "Gaussian dither std on the int16 sample scale (Kaldi uses 1; recipes use 1). The "
                "noise is seeded by the signal itself, so features stay deterministic"})
    window_type: str = field(default="povey", metadata={
        "help": "povey | hamming | hanning | rectangular | sine | blackman"})
    preemph_coeff: float = field(default=0.97, metadata={"help": "pre-emphasis coefficient"})
    remove_dc_offset: bool = field(default=True, metadata={"help": "subtract each frame's mean first"})
    low_freq: float = field(default=20.0, metadata={"help": "low cutoff of the mel bins (Hz)"})
    high_freq: float = field(default=0.0, metadata={
        "help": "high cutoff of the mel bins (Hz); 0 = Nyquist, negative = offset from Nyquist"})
    snip_edges: bool = field(default=True, metadata={
        "help": "true: only frames that fit in the signal, T = 1 + (N - L) // S; false: T = round(N / S)"})
    use_energy: bool = field(default=False, metadata={"help": "append log energy (D = num_mel_bins + 1)"})
    energy_floor: float = field(default=0.0, metadata={"help": "floor on the energy (absolute, not log)"})

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return self.num_mel_bins + int(self.use_energy)

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "fbank config") -> "FbankConfig":
        return from_dict(cls, d, where)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, section: str = "features",
                  overrides: dict | None = None) -> "FbankConfig":
        """Defaults < the `section` of a recipe YAML < overrides (non-None values)."""
        return load_config(cls, path, section, overrides)

    @classmethod
    def from_kaldi_conf(cls, path: str | os.PathLike, base: "FbankConfig | None" = None) -> "FbankConfig":
        """Read a Kaldi-style options file (`--num-mel-bins=40` per line, `#` comments).

        Options absent from the file keep `base`'s values (default: this class's defaults, which
        differ from compute-fbank-feats' in num_mel_bins and dither -- put `--num-mel-bins=23` or
        `--dither=1.0` in the file to get Kaldi's). Unsupported options are a ConfigError naming
        the file and line.
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: Kaldi fbank config does not exist")
        values = to_dict(base or cls())
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for token in shlex.split(raw, comments=True):
                name, sep, value = token.partition("=")
                opt = _KALDI_OPTIONS.get(name)
                if not sep or opt is None:
                    raise ConfigError(
                        f"{path}:{lineno}: unsupported option '{token}' (supported: "
                        f"{', '.join(sorted(_KALDI_OPTIONS))}, each written --name=value)")
                try:
                    values[opt] = _parse_value(value, types[opt])
                except ValueError:
                    raise ConfigError(f"{path}:{lineno}: bad value for {name}: '{value}'") from None
        return cls(**values)

    def knf_options(self) -> knf.FbankOptions:
        """The equivalent kaldi_native_fbank.FbankOptions."""
        return _knf_options(tuple(getattr(self, f.name) for f in _FIELDS))


_FIELDS = dataclasses.fields(FbankConfig)
_KALDI_OPTIONS = {
    "--sample-frequency": "sample_rate", "--num-mel-bins": "num_mel_bins",
    "--frame-length": "frame_length_ms", "--frame-shift": "frame_shift_ms", "--dither": "dither",
    "--window-type": "window_type", "--preemphasis-coefficient": "preemph_coeff",
    "--remove-dc-offset": "remove_dc_offset", "--low-freq": "low_freq", "--high-freq": "high_freq",
    "--snip-edges": "snip_edges", "--use-energy": "use_energy", "--energy-floor": "energy_floor",
}


def _parse_value(value: str, tp) -> object:
    tp = {"int": int, "float": float, "bool": bool, "str": str}.get(tp, tp) if isinstance(tp, str) else tp
    if tp is bool:
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError(value)
        return value.lower() in ("true", "1")
    if tp is int:
        return int(float(value)) if float(value).is_integer() else int(value)
    return tp(value)


@functools.lru_cache(maxsize=16)
def _knf_options(values: tuple) -> knf.FbankOptions:
    cfg = FbankConfig(*values)
    o = knf.FbankOptions()
    fo = o.frame_opts
    fo.samp_freq = float(cfg.sample_rate)
    fo.frame_length_ms = cfg.frame_length_ms
    fo.frame_shift_ms = cfg.frame_shift_ms
    fo.dither = 0.0  # dither is added by compute_fbank, deterministically
    fo.window_type = cfg.window_type
    fo.preemph_coeff = cfg.preemph_coeff
    fo.remove_dc_offset = cfg.remove_dc_offset
    fo.snip_edges = cfg.snip_edges
    o.mel_opts.num_bins = cfg.num_mel_bins
    o.mel_opts.low_freq = cfg.low_freq
    o.mel_opts.high_freq = cfg.high_freq
    o.use_energy = cfg.use_energy
    o.energy_floor = cfg.energy_floor
    return o


FBANK_BLOCK = 1 << 16   # samples handed to the streaming fbank at a time


def int16_blocks(x: np.ndarray, amount: float = 0.0, block: int = FBANK_BLOCK):
    """Samples [N] in [-1, 1] scaled to int16 range (INT16_SCALE), in blocks of `block`, with
    Gaussian dither of std `amount` when > 0, seeded by the scaled samples' bytes.

    Why dither: digital silence (exact zeros) gives log-mel values far below any real recording,
    which throws off CMVN, the GMMs and the DNNs; Kaldi dithers by default for this reason. Seeding
    from the signal keeps features reproducible: the same audio always gets the same noise. The
    blocks are exactly the slices of one whole-signal computation (CRC and noise stream carry on
    from block to block), so a long recording is never copied whole.
    """
    scale = np.float32(INT16_SCALE)
    rng = None
    if amount > 0:
        crc = 0
        for i in range(0, len(x), block):
            crc = zlib.crc32(np.ascontiguousarray(x[i:i + block] * scale), crc)
        rng = np.random.default_rng(crc)
    for i in range(0, len(x), block):
        b = x[i:i + block] * scale
        if rng is not None:
            b = (b + amount * rng.standard_normal(b.shape[0], dtype=np.float32)).astype(np.float32)
        yield b


def compute_fbank(samples: np.ndarray, sample_rate: int, cfg: FbankConfig) -> np.ndarray:
    """Log-mel filterbank of one utterance: float samples in [-1, 1] [N] -> float32 [T, D].

    Samples are scaled by 32768 (INT16_SCALE) first, as Kaldi reads int16 WAVs, and dithered
    (`int16_blocks`). T is 0 when the signal is shorter than one frame (snip_edges=True); callers
    decide whether that is an error. The streaming fbank is fed block by block (it gives the same
    frames), so an hour of audio is never one Python list of floats (24 bytes a sample).
    """
    if sample_rate != cfg.sample_rate:
        raise ConfigError(f"compute_fbank: audio at {sample_rate} Hz but the config expects "
                          f"{cfg.sample_rate} Hz (resample first, e.g. audio.load_audio(..., sample_rate))")
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"compute_fbank expects mono samples [N], got shape {x.shape}")
    fb = knf.OnlineFbank(cfg.knf_options())
    parts: list[np.ndarray] = []
    done = 0

    def drain() -> None:  # copy the frames ready so far and drop them from the fbank's buffer
        nonlocal done
        n = fb.num_frames_ready
        if n > done:
            parts.append(np.array([fb.get_frame(i) for i in range(done, n)], dtype=np.float32))
            fb.pop(n - done)
            done = n

    for b in int16_blocks(x, cfg.dither):
        fb.accept_waveform(float(sample_rate), b.tolist())
        drain()
    fb.input_finished()
    drain()
    if not parts:
        return np.zeros((0, cfg.dim), dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def make_features(data_dir, cfg: FbankConfig, nj: int = 1, force: bool = False, **kwargs) -> dict:
    """Compute and store fbank + per-speaker CMVN stats for a data dir (see features_stage)."""
    from .features_stage import make_features as _make  # the stage imports this module

    return _make(data_dir, cfg, nj=nj, force=force, **kwargs)


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
