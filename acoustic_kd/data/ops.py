"""Operations on Kaldi data dirs: validate (every problem, optionally opening the audio), fix
(keep the consistent utterances), subset, combine and speed-perturb.

They read and write through `acoustic_kd.data.datadir.DataDir`; they are the `acoustic-kd data-dir
validate|fix|subset|combine|speed-perturb` commands.
"""

from __future__ import annotations

import os
from pathlib import Path

import soundfile as sf

from ..errors import DataError
from ..utils import atomic_path, atomic_write_text, c_sorted, get_logger, read_text_file, text_lines
from .audio import check_data_audio, load_audio, resample
from .datadir import (FIX_LOG, REQUIRED, DataDir, Problem, _cross_check, _parse_segment, _pos, _scan,
                      resolve_corpus_root)

log = get_logger(__name__)

__all__ = ["combine_data_dirs", "fix_data_dir", "speed_perturb_data_dir", "subset_data_dir",
           "validate_data_dir"]


def validate_data_dir(path: str | os.PathLike, corpus_root: str | os.PathLike | None = None,
                      check_audio: bool = False) -> list[Problem]:
    """Every problem of a data dir (empty list = valid); `check_audio` also opens each audio file.
    Writes nothing (a missing spk2utt is derived in memory)."""
    path = Path(path)
    tables, problems = _scan(path, write=False)
    _cross_check(path, tables, problems)
    if check_audio and not problems:
        problems.extend(check_data_audio(DataDir.load(path, corpus_root, validate=False, write=False)))
    return problems


def fix_data_dir(path: str | os.PathLike, corpus_root: str | os.PathLike | None = None,
                 check_audio: bool = False) -> dict[str, int]:
    """Keep the consistent utterances and rewrite the dir C-sorted; return counts of what was dropped.

    Every dropped line/id and its reason goes to `<dir>/fix_data_dir.log` (file, id, reason); the
    original files are kept in `<dir>/.backup/`. Count keys are reasons plus `kept_utts`.
    """
    path = Path(path)
    tables, problems = _scan(path)
    if any(p.line is None and Path(p.path).name in REQUIRED for p in problems):
        raise DataError(path, "cannot fix: a required file is missing", "create wav.scp, text and utt2spk")
    dropped = [(Path(p.path).name, f"line {p.line}", p.kind) for p in problems
               if p.kind in ("empty_line", "duplicate_id")]
    t = {n: {k: v for k, (v, _) in tab.items() if v} for n, tab in tables.items()}
    text, u2s, wav = t["text"], t["utt2spk"], t["wav.scp"]
    segments = None if "segments" not in t else {
        u: s for u, s in ((u, _parse_segment(v)) for u, v in t["segments"].items())
        if not isinstance(s, str)}
    reasons: dict[str, str] = {}
    for utt in c_sorted(set(tables["text"]) | set(tables["utt2spk"])):
        rec = utt if segments is None else segments.get(utt, ("",))[0]
        if utt not in text:
            reasons[utt] = "no_transcript"
        elif utt not in u2s or len(u2s[utt].split()) != 1:
            reasons[utt] = "no_speaker"
        elif rec not in wav:
            reasons[utt] = "no_audio" if segments is None or utt in segments else "no_segment"
    dd = DataDir(path=path, wav_scp=wav, text=text, utt2spk=u2s, segments=segments,
                 corpus_root=resolve_corpus_root(path, corpus_root))
    keep = [u for u in c_sorted(set(text) & set(u2s)) if u not in reasons]
    if check_audio:
        bad_recs = {p.key for p in check_data_audio(dd.subset(keep))}
        for u in keep:
            if dd.recording_of(u) in bad_recs or u in bad_recs:
                reasons[u] = "bad_audio"
        keep = [u for u in keep if u not in reasons]
    if not keep:
        raise DataError(path, "fix would leave no utterances", "check that the files share utterance ids")
    dropped += [("text/utt2spk", u, why) for u, why in reasons.items()]
    fixed = dd.subset(keep)
    dropped += [("wav.scp", r, "unused_recording") for r in c_sorted(set(wav) - set(fixed.wav_scp))
                if r not in reasons]
    dropped += [("segments", u, "no_transcript") for u in c_sorted(set(segments or {}) - set(text) - set(u2s))]
    if "utt2dur" in t:
        fixed.utt2dur = {k: float(v) for k, v in t["utt2dur"].items() if k in fixed.text and _pos(v)}
    if "spk2gender" in t:
        spks = set(fixed.utt2spk.values())
        fixed.spk2gender = {s: g for s, g in t["spk2gender"].items() if s in spks and g in ("m", "f")}
    fixed._replace_tables(path, backup=path / ".backup")
    atomic_write_text(path / FIX_LOG, "".join(f"{f}\t{k}\t{why}\n" for f, k, why in dropped))
    counts: dict[str, int] = {}
    for _, _, why in dropped:
        counts[why] = counts.get(why, 0) + 1
    counts["kept_utts"] = len(keep)
    log.info("fixed %s: kept %d utterances; dropped %s (details in %s)", path, len(keep),
             {k: v for k, v in counts.items() if k != "kept_utts"} or "nothing", path / FIX_LOG)
    return counts


def subset_data_dir(src: str | os.PathLike, dst: str | os.PathLike, utts=None, first: int | None = None,
                    speakers=None) -> DataDir:
    """Copy the utterances of `src` selected by id list, the first N (C order), or speakers."""
    data = DataDir.load(src)
    chosen = data.utts
    if utts is not None:
        wanted = set(utts)
        unknown = wanted - set(chosen)
        if unknown:
            raise DataError(src, f"{len(unknown)} requested utterance(s) not in the data dir, e.g. "
                            f"'{c_sorted(unknown)[0]}'", "check the utterance list")
        chosen = [u for u in chosen if u in wanted]
    if speakers is not None:
        spk = set(speakers)
        chosen = [u for u in chosen if data.utt2spk[u] in spk]
    if first is not None:
        chosen = chosen[:first]
    out = data.subset(chosen)
    out.save(dst)
    _carry_per_utt_files(Path(src), Path(dst), set(chosen))
    return out


# Per-utterance files beyond the data dir's own tables that a subset keeps (lines of the chosen
# utterances, in order): computed features and reference timings. `fbank.json` (the feature config)
# is copied whole. Per-speaker CMVN stats (`cmvn.scp`) are not carried: they would still include the
# left-out utterances, so they are recomputed from the subset's features when needed.
PER_UTT_FILES = ("feats.scp", "utt2num_frames", "word_times.txt", "phone_times.txt")


def _carry_per_utt_files(src: Path, dst: Path, keep: set[str]) -> None:
    for name in PER_UTT_FILES:
        if (src / name).is_file():
            atomic_write_text(dst / name, "".join(f"{ln}\n" for _, ln in text_lines(src / name)
                                                  if (ln.split(maxsplit=1) or [""])[0] in keep))
    if (src / "fbank.json").is_file():
        atomic_write_text(dst / "fbank.json", read_text_file(src / "fbank.json"))


def combine_data_dirs(srcs, dst: str | os.PathLike) -> DataDir:
    """Merge data dirs into `dst`; relative audio paths become absolute; ids must not clash."""
    parts = [DataDir.load(s).absolute_paths() for s in srcs]
    if not parts:
        raise DataError(dst, "no source data dirs given", "name at least one data dir to combine")
    any_segs = any(p.segments is not None for p in parts)
    out = DataDir(path=None, wav_scp={}, text={}, utt2spk={}, segments={} if any_segs else None,
                  utt2dur={} if all(p.utt2dur is not None for p in parts) else None,
                  spk2gender={} if all(p.spk2gender is not None for p in parts) else None)
    for p in parts:
        for table in ("wav_scp", "text", "utt2spk", "utt2dur", "spk2gender"):
            mine, theirs = getattr(out, table), getattr(p, table)
            if mine is None or theirs is None:
                continue
            for k, v in theirs.items():
                if k in mine and mine[k] != v:
                    file, line = p.where("wav.scp" if table == "wav_scp" else table, k)
                    raise DataError(file, f"id '{k}' is also in an earlier source with another value",
                                    "rename the ids (e.g. add a corpus prefix)", line)
                mine[k] = v
        if any_segs:
            # A dir without segments contributes whole recordings (end -1 = end of file).
            segs = p.segments if p.segments is not None else {u: (u, 0.0, -1.0) for u in p.utt2spk}
            out.segments.update(segs)
    out.save(dst)
    return out


def speed_perturb_data_dir(src: str | os.PathLike, dst: str | os.PathLike, factor: float,
                           sample_rate: int, corpus_root: str | os.PathLike | None = None) -> DataDir:
    """A copy of `src` played `factor` times as fast (Kaldi's speed perturbation: tempo and pitch
    both change, like `sox speed`), e.g. 0.9 or 1.1 to triple a training set.

    Every utterance (segments are cut first) is resampled by 1/factor at `sample_rate` and written
    as 16-bit WAV to `dst/wav/`; ids get the prefix `sp<factor>-` (utterances and speakers), text is
    kept, utt2dur is the new length. Already written WAVs are kept, so an interrupted run resumes.
    """
    if not 0.5 <= factor <= 2.0:
        raise DataError(src, f"speed factor {factor} is out of range",
                        "use a factor in [0.5, 2] (e.g. 0.9, 1.1)")
    data = DataDir.load(src, corpus_root)
    pre = f"sp{factor:g}-"
    wav_dir = Path(dst).resolve() / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    out = DataDir(path=None, wav_scp={}, text={}, utt2spk={}, utt2dur={},
                  spk2gender=None if data.spk2gender is None else
                  {pre + k: v for k, v in data.spk2gender.items()})
    for utt in data.utts:
        new = pre + utt
        wav = wav_dir / f"{new}.wav"
        if not wav.exists():
            x = load_audio(data, utt, sample_rate)
            # played at sample_rate, audio taken as recorded at factor·sample_rate is factor× as fast
            y = resample(x, round(factor * sample_rate), sample_rate)
            with atomic_path(wav) as tmp:
                sf.write(str(tmp), y, sample_rate, subtype="PCM_16", format="WAV")
        out.wav_scp[new] = str(wav)
        out.text[new] = data.text.get(utt, "")
        out.utt2spk[new] = pre + data.utt2spk[utt]
        out.utt2dur[new] = sf.info(str(wav)).frames / sample_rate
    if not any(out.text.values()):
        out.text = {}
    out.save(dst)
    log.info("%s: %d utterances at speed %g -> %s", src, len(out.utt2spk), factor, dst)
    return out
