"""A bigger training set from real speech: a data dir's utterances plus copies of them, each at
another speed, volume and with noise cut from the corpus' own silences, until the set holds N hours.

Copy c (1, 2, ...) of utterance u is `a<c>-<u>` spoken by `a<c>-<speaker>` (a new speaker per copy,
as Kaldi names speed-perturbed copies, so a speaker-prefixed id stays speaker-prefixed). Per copy:

- speed: a factor from `speeds` (0.8-1.2 in steps of 0.05), played as `data-dir speed-perturb`
  does (tempo and pitch both change; the factors are multiples of 1/20 so the polyphase resampler
  stays short);
- volume: a gain drawn uniformly in dB from `gain_db` (default -18 to +6 dB: Kaldi's volume
  perturbation range, 1/8 to 2), the result clipped to [-1, 1];
- noise: a stretch of the noise bank at an SNR drawn uniformly from `snr_db` (speech power = the
  mean square of the whole perturbed utterance).

The noise bank is the corpus' own background: an energy rule, no alignment. Over 25 ms frames
every 10 ms, a frame is silent when its energy is at most `silence_db` above the utterance's
5th-percentile frame energy (frames of digital silence, below -90 dB, never count); runs of at
least `min_silence_s` lose one frame at each end and are cut out, each scaled to unit RMS with
5 ms fades, from utterances taken in a seeded order until `noise_seconds` are collected.

Which utterances are copied, and every draw, come from `seed` alone: copies are planned in rounds
(round c takes the utterances in a seeded order) until the originals plus the copies reach `hours`;
the last round stops part-way. The copies are written as 16-bit FLAC (or WAV) under DST/audio/,
the originals keep their wav.scp entries; DST/augment.json records the settings and DST/augment.txt
each copy's source and draws. Same SRC, settings and seed: the same data dir and the same audio
bytes, with any --nj. A run into a DST made with other settings is refused; written copies are
kept, so a killed run resumes.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..config_types import check_fields
from ..errors import ConfigError, DataError
from ..pool import forked_imap
from ..utils import atomic_path, atomic_write_json, atomic_write_text, get_logger
from .audio import load_audio, resample
from .datadir import DataDir

log = get_logger(__name__)

FRAME_S, HOP_S, FADE_S = 0.025, 0.010, 0.005
DIGITAL_SILENCE_DB = -90.0


@dataclass
class DataAugmentConfig:
    """Options of `acoustic-kd data-dir augment` (all but `hours` have defaults)."""

    hours: float = field(default=10.0, metadata={
        "help": "hours of speech in DST, the originals included", "range": "(0, inf)"})
    seed: int = field(default=1, metadata={"help": "seed of every draw", "range": "[0, inf)"})
    speeds: list[float] = field(default_factory=lambda: [round(0.8 + 0.05 * i, 2) for i in range(9)],
                                metadata={"help": "speed factors drawn from (multiples of 0.05 "
                                          "keep the resampler short)", "range": "[0.5, 2]"})
    gain_db: list[float] = field(default_factory=lambda: [-18.0, 6.0], metadata={
        "help": "volume gain range in dB, MIN MAX", "range": "[-60, 20]"})
    snr_db: list[float] = field(default_factory=lambda: [10.0, 30.0], metadata={
        "help": "signal-to-noise ratio range in dB, MIN MAX", "range": "[-10, 100]"})
    noise: bool = field(default=True, metadata={"help": "add noise cut from the silences"})
    silence_db: float = field(default=6.0, metadata={
        "help": "a frame is silent within this many dB of its utterance's 5th-percentile energy",
        "range": "(0, 60]"})
    min_silence_s: float = field(default=0.2, metadata={
        "help": "shortest silence cut into the noise bank (seconds)", "range": "[0.05, inf)"})
    noise_seconds: float = field(default=600.0, metadata={
        "help": "seconds of noise collected into the bank", "range": "(0, inf)"})
    format: str = field(default="flac", metadata={"help": "audio files written",
                                                  "choices": ("flac", "wav")})

    def __post_init__(self):
        check_fields(self)
        for name in ("gain_db", "snr_db"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                raise ConfigError(f"{name} = {lo_hi}: expected two numbers MIN MAX with MIN <= MAX")
        if not self.speeds:
            raise ConfigError("speeds is empty: give at least one factor, e.g. 1.0")


# ------------------------------------------------------------------ the noise bank
def frame_energies_db(x: np.ndarray, sr: int) -> np.ndarray:
    """Energy in dB (10·log10 of the mean square) of 25 ms frames every 10 ms of x [N] -> [F]."""
    win, hop = int(FRAME_S * sr), int(HOP_S * sr)
    if len(x) < win:
        return np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), win)[::hop]
    return 10.0 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20)


def silence_spans(x: np.ndarray, sr: int, silence_db: float, min_s: float
                  ) -> list[tuple[int, int]]:
    """Sample ranges [start, end) of x [N] that the energy rule (module docstring) calls silent."""
    e = frame_energies_db(x, sr)
    valid = e > DIGITAL_SILENCE_DB
    if not valid.any():
        return []
    silent = valid & (e <= np.percentile(e[valid], 5) + silence_db)
    win, hop = int(FRAME_S * sr), int(HOP_S * sr)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(np.int8), [0]])))
    out = []
    for a, b in zip(edges[::2], edges[1::2]):
        if (b - a) * HOP_S >= min_s:
            out.append(((a + 1) * hop, (b - 2) * hop + win))   # one frame less at each end
    return out


def _faded_unit(x: np.ndarray, sr: int) -> np.ndarray:
    x = x.astype(np.float64)
    x /= max(np.sqrt(np.mean(x ** 2)), 1e-12)
    n = min(int(FADE_S * sr), len(x) // 2)
    if n:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def noise_bank(data: DataDir, sr: int, cfg: DataAugmentConfig) -> np.ndarray:
    """The corpus' silences, each at unit RMS with faded edges, concatenated: float32 [N] of at most
    about cfg.noise_seconds; utterances read in an order drawn from cfg.seed."""
    order = np.random.default_rng([cfg.seed, 1]).permutation(len(data.utts))
    pieces, have = [], 0
    for i in order:
        x = load_audio(data, data.utts[i], sr)
        for a, b in silence_spans(x, sr, cfg.silence_db, cfg.min_silence_s):
            pieces.append(_faded_unit(x[a:b], sr))
            have += b - a
        if have >= cfg.noise_seconds * sr:
            break
    if not pieces:
        raise DataError(data.path, f"no silence of at least {cfg.min_silence_s} s found by the "
                        "energy rule, so no noise to add", "raise --silence-db or lower "
                        "--min-silence-s, or pass --noise false")
    return np.concatenate(pieces).astype(np.float32)


# ------------------------------------------------------------------ the plan and the copies
@dataclass
class Copy:
    """One planned copy: new id, its source utterance and speaker, and its draws."""

    utt: str
    src: str
    spk: str
    speed: float
    gain_db: float
    snr_db: float
    noise_at: float     # where in the noise bank it starts, as a fraction of the free length

    def line(self) -> str:
        return (f"{self.utt} {self.src} {self.speed:g} {self.gain_db:.2f} {self.snr_db:.2f} "
                f"{self.noise_at:.6f}\n")


def plan_copies(data: DataDir, durations: dict[str, float], cfg: DataAugmentConfig) -> list[Copy]:
    """Copies (in order) that bring the originals' `durations` (seconds) up to cfg.hours."""
    target = cfg.hours * 3600.0
    total = sum(durations[u] for u in data.utts)
    if total >= target:
        raise ConfigError(f"{data.path} already holds {total / 3600:.3f} h, not less than --hours "
                          f"{cfg.hours:g}; ask for more hours")
    rng = np.random.default_rng([cfg.seed, 2])
    utts, out = data.utts, []
    taken = set(data.utt2spk)
    for c in range(1, 10_000):
        for i in rng.permutation(len(utts)):
            if total >= target:
                return out
            u = utts[i]
            cp = Copy(f"a{c}-{u}", u, f"a{c}-{data.utt2spk[u]}",
                      float(cfg.speeds[rng.integers(len(cfg.speeds))]),
                      float(rng.uniform(*cfg.gain_db)), float(rng.uniform(*cfg.snr_db)),
                      float(rng.random()))
            if cp.utt in taken:
                raise DataError(data.where("utt2spk", cp.utt)[0], f"copy id {cp.utt} is already "
                                "an utterance of the source", "rename the source's a<N>- ids")
            total += durations[u] / cp.speed
            out.append(cp)
    return out


def render(x: np.ndarray, sr: int, cp: Copy, bank: np.ndarray | None) -> np.ndarray:
    """Copy `cp` of samples x [N] at sr Hz: speed, gain, noise; float32 [M] in [-1, 1]."""
    y = x.astype(np.float64) if cp.speed == 1.0 else \
        resample(x, round(cp.speed * sr), sr).astype(np.float64)
    y *= 10.0 ** (cp.gain_db / 20.0)
    power = float(np.mean(y ** 2)) if len(y) else 0.0
    if bank is not None and power > 0:
        n = len(y)
        if len(bank) >= n:
            start = int(cp.noise_at * (len(bank) - n + 1))
            noise = bank[start:start + n].astype(np.float64)
        else:
            noise = np.resize(np.roll(bank, -int(cp.noise_at * len(bank))), n).astype(np.float64)
        noise_power = max(float(np.mean(noise ** 2)), 1e-20)
        y += noise * math.sqrt(power / (noise_power * 10.0 ** (cp.snr_db / 10.0)))
    return np.clip(y, -1.0, 1.0).astype(np.float32)


class _Writer:
    """Renders and writes copies (in this process or a forked worker); returns (id, seconds)."""

    def __init__(self, data: DataDir, sr: int, bank, audio_dir: Path, fmt: str):
        self.data, self.sr, self.bank, self.dir, self.fmt = data, sr, bank, audio_dir, fmt

    def path(self, cp: Copy) -> Path:
        return self.dir / f"{cp.utt}.{self.fmt}"

    def __call__(self, cp: Copy) -> tuple[str, float]:
        path = self.path(cp)
        if not path.exists():
            y = render(load_audio(self.data, cp.src, self.sr), self.sr, cp, self.bank)
            with atomic_path(path) as tmp:
                sf.write(str(tmp), y, self.sr, subtype="PCM_16", format=self.fmt.upper())
        return cp.utt, sf.info(str(path)).frames / self.sr


def _durations(data: DataDir, sr: int) -> dict[str, float]:
    if data.utt2dur is not None and set(data.utt2dur) >= set(data.utt2spk):
        return dict(data.utt2dur)
    return {u: len(load_audio(data, u, sr)) / sr for u in data.utts}


def _claim(dst: Path, settings: dict) -> None:
    """Record `settings` in DST/augment.json, refusing a DST made with other settings."""
    path = dst / "augment.json"
    if path.is_file() and json.loads(path.read_text(encoding="utf-8")) != settings:
        raise DataError(path, "this data dir was made with other augmentation settings (or "
                        "another source)", "choose another DST, or remove DST first")
    atomic_write_json(path, settings)


def augment_data_dir(src: str | os.PathLike, dst: str | os.PathLike, cfg: DataAugmentConfig,
                     sample_rate: int, corpus_root=None, nj: int = 1) -> DataDir:
    """DST = SRC's utterances + copies up to cfg.hours (module docstring); returns DST's DataDir.
    sample_rate: of the written copies (the originals are read at it)."""
    data = DataDir.load(src, corpus_root)
    dst = Path(dst).resolve()
    settings = {"source": str(Path(src).resolve()), "sample_rate": int(sample_rate), **asdict(cfg)}
    dst.mkdir(parents=True, exist_ok=True)
    _claim(dst, settings)
    durations = _durations(data, sample_rate)
    plan = plan_copies(data, durations, cfg)
    bank = noise_bank(data, sample_rate, cfg) if cfg.noise else None
    writer = _Writer(data, sample_rate, bank, dst / "audio", cfg.format)
    writer.dir.mkdir(exist_ok=True)
    lengths = dict(forked_imap(writer, plan, nj, chunksize=8))
    out = data.absolute_paths().subset(data.utts)
    out.utt2dur = {u: durations[u] for u in data.utts}
    for cp in plan:
        out.wav_scp[cp.utt] = str(writer.path(cp))
        if cp.src in data.text:
            out.text[cp.utt] = data.text[cp.src]
        out.utt2spk[cp.utt] = cp.spk
        out.utt2dur[cp.utt] = lengths[cp.utt]
        if out.segments is not None:
            out.segments[cp.utt] = (cp.utt, 0.0, -1.0)
        if data.spk2gender is not None and data.utt2spk[cp.src] in data.spk2gender:
            out.spk2gender[cp.spk] = data.spk2gender[data.utt2spk[cp.src]]
    out.save(dst)
    atomic_write_text(dst / "augment.txt", "# utt source speed gain_db snr_db noise_at\n" +
                      "".join(cp.line() for cp in plan))
    hours = sum(out.utt2dur.values()) / 3600
    log.info("%s: %d utterances (%d copies), %.2f h, noise bank %.0f s", dst, len(out.utt2spk),
             len(plan), hours, 0 if bank is None else len(bank) / sample_rate)
    return out
