"""Lhotse manifests (what icefall users have) as one Kaldi data dir, read with lhotse itself.

`prepare_lhotse(recordings, supervisions, out_dir)` loads a RecordingSet and a SupervisionSet
(any file lhotse reads: `.jsonl.gz`, `.jsonl`, `.json`, ...) and writes `out_dir` with:

- `wav.scp`: a recording's file path, or `CMD |` for a command source;
- `segments` (`utt rec start end`) when a supervision is a part of its recording (another start
  or length, or several supervisions on one recording); otherwise none, and wav.scp is keyed by
  the supervision id;
- `text`, `utt2spk` (the supervision's speaker; its own id when it has none, Kaldi's convention),
  `spk2utt`, `utt2dur` (the supervisions' durations).

Utterance ids are the supervision ids. Not converted (an error names the id): URL and in-memory
sources, a recording stored as one file per channel, a supervision of one channel of a
multi-channel recording (mix or split the channels first), a supervision without text or with a
recording id missing from the RecordingSet.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.datadir import DataDir
from ..data.ops import validate_data_dir
from ..errors import DataError
from ..utils import get_logger

log = get_logger(__name__)

WHOLE_TOLERANCE_S = 1e-3   # a supervision this close to its recording's bounds covers all of it


def _wav_entry(rec, where: Path) -> str:
    """The wav.scp value of a lhotse Recording."""
    if len(rec.sources) != 1:
        raise DataError(where, f"recording {rec.id!r} has {len(rec.sources)} sources (one per "
                        "channel)", "store it as one multi-channel file, or one recording per channel")
    src = rec.sources[0]
    if src.type == "file":
        return str(Path(src.source).resolve())
    if src.type == "command":
        return f"{src.source} |"
    raise DataError(where, f"recording {rec.id!r} has a {src.type!r} source",
                    "write its audio to a file (e.g. lhotse's `save_audios`) first")


def _whole(sup, rec) -> bool:
    return abs(sup.start) < WHOLE_TOLERANCE_S and abs(sup.duration - rec.duration) < WHOLE_TOLERANCE_S


def _check(sup, recs, where: Path) -> None:
    if sup.recording_id not in recs:
        raise DataError(where, f"supervision {sup.id!r} names recording {sup.recording_id!r}, which "
                        "the RecordingSet lacks", "pass the matching recordings manifest")
    if not (sup.text or "").strip():
        raise DataError(where, f"supervision {sup.id!r} has no text",
                        "transcribe it or filter it out (SupervisionSet.filter)")
    rec = recs[sup.recording_id]
    channels = sup.channel if isinstance(sup.channel, list) else [sup.channel]
    if rec.num_channels > 1 and sorted(channels) != sorted(rec.channel_ids):
        raise DataError(where, f"supervision {sup.id!r} covers channel(s) {channels} of the "
                        f"{rec.num_channels}-channel recording {rec.id!r}",
                        "mix or split the channels first (channels are averaged to mono here)")


def to_data_dir(recordings, supervisions, where: Path) -> DataDir:
    """A DataDir from a lhotse RecordingSet and SupervisionSet (see the module doc)."""
    recs = {r.id: r for r in recordings}
    sups = list(supervisions)
    for s in sups:
        _check(s, recs, where)
    per_rec: dict[str, int] = {}
    for s in sups:
        per_rec[s.recording_id] = per_rec.get(s.recording_id, 0) + 1
    segmented = any(per_rec[s.recording_id] > 1 or not _whole(s, recs[s.recording_id]) for s in sups)
    data = DataDir(None, {}, {}, {}, segments={} if segmented else None, utt2dur={})
    for s in sups:
        rec = recs[s.recording_id]
        if segmented:
            data.wav_scp[rec.id] = _wav_entry(rec, where)
            data.segments[s.id] = (rec.id, round(s.start, 4), round(s.start + s.duration, 4))
        else:
            data.wav_scp[s.id] = _wav_entry(rec, where)
        data.text[s.id] = " ".join(s.text.split())
        data.utt2spk[s.id] = s.speaker or s.id
        data.utt2dur[s.id] = s.duration
    missing = sum(1 for s in sups if not s.speaker)
    if missing:
        log.warning("%d supervision(s) without a speaker: each is its own speaker", missing)
    return data


def prepare_lhotse(recordings: str | os.PathLike, supervisions: str | os.PathLike,
                   out_dir: str | os.PathLike, force: bool = False) -> dict[str, Path]:
    """Write the Kaldi data dir `out_dir` from lhotse manifests -> {its name: out_dir} (always
    rewritten: `force` is taken for the prepare command, whose stage decides what to redo)."""
    from lhotse import RecordingSet, SupervisionSet

    out_dir = Path(out_dir)
    for p in (recordings, supervisions):
        if not Path(p).is_file():
            raise DataError(p, "manifest file does not exist", "pass --recordings and --supervisions files")
    data = to_data_dir(RecordingSet.from_file(recordings), SupervisionSet.from_file(supervisions),
                       Path(supervisions))
    data.save(out_dir)
    problems = validate_data_dir(out_dir)
    if problems:
        raise DataError(out_dir, "the converted data dir is invalid:\n  " + "\n  ".join(map(str, problems)),
                        "check the manifests' ids (unique, no spaces)")
    log.info("%s: %d utterances, %d recordings, %d speakers%s", out_dir, len(data.utt2spk),
             len(data.wav_scp), len(set(data.utt2spk.values())), ", segments" if data.segments else "")
    return {out_dir.name: out_dir}
