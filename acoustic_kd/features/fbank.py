"""Log-mel filterbank features (Kaldi-exact, via kaldi-native-fbank) and their config.

Features are float32 [T, D] per utterance, D = num_mel_bins (+1 with use_energy). `compute_fbank`
computes one utterance; the features stage (`features.stage.make_features`) a whole data dir;
`features.featureset.FeatureSet` reads them back.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shlex
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import kaldi_native_fbank as knf
import numpy as np

from ..config import from_dict, load_config, to_dict
from ..config_types import check_fields, convert, field_types
from ..errors import ConfigError
from ..utils import text_lines

#: Samples in [-1, 1] are multiplied by this before fbank: Kaldi reads 16-bit WAVs as integers in
#: [-32768, 32767], so log energies (and any dither amount) match Kaldi's only on that scale.
INT16_SCALE = 32768.0


@dataclass
class FbankConfig:
    """Kaldi `compute-fbank-feats` options. Defaults follow Kaldi except num_mel_bins (40, not 23)
    and dither (0, not 1: deterministic features)."""

    sample_rate: int = field(default=16000, metadata={
        "help": "audio is resampled to this rate (Hz) before fbank (Kaldi --sample-frequency)",
        "range": "[1, inf)"})
    num_mel_bins: int = field(default=40, metadata={
        "help": "number of triangular mel bins = feature dim", "range": "[3, inf)"})
    frame_length_ms: float = field(default=25.0, metadata={
        "help": "analysis window length in ms", "range": "(0, inf)"})
    frame_shift_ms: float = field(default=10.0, metadata={
        "help": "hop between frames in ms", "range": "(0, inf)"})
    dither: float = field(default=0.0, metadata={
        "help": "Gaussian dither std on the int16 sample scale (Kaldi uses 1; recipes use 1). The "
                "noise is seeded by the signal itself, so features stay deterministic",
        "range": "[0, inf)"})
    window_type: str = field(default="povey", metadata={
        "help": "analysis window",
        "choices": ("povey", "hamming", "hanning", "rectangular", "sine", "blackman")})
    preemph_coeff: float = field(default=0.97, metadata={
        "help": "pre-emphasis coefficient", "range": "[0, 1]"})
    remove_dc_offset: bool = field(default=True, metadata={"help": "subtract each frame's mean first"})
    low_freq: float = field(default=20.0, metadata={
        "help": "low cutoff of the mel bins (Hz)", "range": "[0, inf)"})
    high_freq: float = field(default=0.0, metadata={
        "help": "high cutoff of the mel bins (Hz); 0 = Nyquist, negative = offset from Nyquist",
        "range": "(-inf, inf)"})
    snip_edges: bool = field(default=True, metadata={
        "help": "true: only frames that fit in the signal, T = 1 + (N - L) // S; false: T = round(N / S)"})
    use_energy: bool = field(default=False, metadata={"help": "append log energy (D = num_mel_bins + 1)"})
    energy_floor: float = field(default=0.0, metadata={
        "help": "floor on the energy (absolute, not log)", "range": "[0, inf)"})

    def __post_init__(self):
        check_fields(self)
        try:   # the mel banks' own limits (cutoffs vs the Nyquist rate, bins vs the FFT size)
            knf.OnlineFbank(self.knf_options())
        except ValueError as e:
            raise ConfigError(f"features: {e} (sample_rate {self.sample_rate}, num_mel_bins "
                              f"{self.num_mel_bins}, frame_length_ms {self.frame_length_ms:g}, "
                              f"low_freq {self.low_freq:g}, high_freq {self.high_freq:g})") from None

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
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for lineno, raw in text_lines(path):
            for token in shlex.split(raw, comments=True):
                name, sep, value = token.partition("=")
                opt = _KALDI_OPTIONS.get(name)
                if not sep or opt is None:
                    raise ConfigError(
                        f"{path}:{lineno}: unsupported option '{token}' (supported: "
                        f"{', '.join(sorted(_KALDI_OPTIONS))}, each written --name=value)")
                try:
                    values[opt] = convert(field_types(cls)[opt], value, fields[opt].metadata)
                except ValueError as e:
                    raise ConfigError(f"{path}:{lineno}: bad value for {name}: '{value}' "
                                      f"(expected {e})") from None
        try:
            return cls(**values)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

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


@functools.lru_cache(maxsize=16)
def _knf_options(values: tuple) -> knf.FbankOptions:
    cfg = SimpleNamespace(**{f.name: v for f, v in zip(_FIELDS, values)})   # (no re-check)
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
                          f"{cfg.sample_rate} Hz (resample first, e.g. "
                          "data.audio.load_audio(..., sample_rate))")
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
