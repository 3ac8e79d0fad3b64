"""Load utterance audio from a data dir: wav.scp paths (WAV/FLAC/...), `cmd |` pipes, segments.

Samples come back as float32 mono in [-1, 1], shape [N]. Multi-channel audio is averaged to
mono (logged at INFO level, once per file and process). Resampling uses `scipy.signal.resample_poly`. Relative paths resolve
against the data dir's corpus root (see `acoustic_kd.data.datadir`). Every failure raises `AudioError`
naming the wav.scp/segments file and line (or the audio path) and the fix.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
from contextlib import ExitStack, contextmanager
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import DataError
from ..utils import get_logger
from .datadir import DataDir, Problem

log = get_logger(__name__)

_MIXED_DOWN: set[str] = set()   # multi-channel files already logged by this process
SEGMENT_TOLERANCE_S = 0.01  # segments ending at most this far past the end are clipped, not errors
Where = tuple[str, "int | None"]  # (data-dir file, line) named in messages


class AudioError(DataError):
    """Audio that cannot be used: missing, unreadable, empty, truncated, or the wrong rate."""


def _riff_declared_frames(head: bytes) -> int | None:
    """Frames promised by a RIFF/WAVE header's data chunk (None if not WAV or size unknown)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, block_align = 12, None
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if cid == b"fmt " and pos + 22 <= len(head):
            block_align = struct.unpack("<H", head[pos + 20:pos + 22])[0]
        if cid == b"data":
            # Streamed WAVs (e.g. from a pipe) carry 0 or 0xFFFFFFFF: length unknown, not truncated.
            if not block_align or size in (0, 0xFFFFFFFF):
                return None
            return size // block_align
        pos += 8 + size + (size & 1)
    return None


@contextmanager
def _sound_file(src, name: str, fix: str):
    """One open `sf.SoundFile` of a path or BytesIO, checked non-empty, readable and complete.

    A path is opened once: the first 4 KB (for the RIFF size check) are read from the same
    descriptor libsndfile then decodes from, instead of three opens (header, info, read).
    """
    with ExitStack() as stack:
        try:
            if isinstance(src, io.BytesIO):
                handle, head = src, src.getvalue()[:4096]
            else:
                handle = os.open(src, os.O_RDONLY)
                stack.callback(os.close, handle)
                head = os.read(handle, 4096)
                os.lseek(handle, 0, os.SEEK_SET)
            if not head:
                raise AudioError(name, "audio is empty (0 bytes)", fix)
            f = stack.enter_context(sf.SoundFile(handle, closefd=False))
        except sf.LibsndfileError as e:
            raise AudioError(name, f"unreadable or corrupt audio ({e.error_string})",
                             f"re-create or convert it (e.g. with sox), or {fix}") from None
        except OSError as e:
            raise AudioError(name, f"cannot open the audio ({e.strerror})",
                             f"check permissions, or {fix}") from None
        declared = _riff_declared_frames(head)
        if declared is not None and declared > f.frames:
            raise AudioError(name, f"truncated audio: the header promises {declared} samples, the file "
                             f"holds {f.frames}", f"re-create/re-download it, or {fix}")
        if f.frames == 0:
            raise AudioError(name, "zero-length audio (0 samples)", fix)
        yield f


def _open(entry: str, corpus_root, where: Where | None):
    """(source for soundfile, display name, fix text) for one wav.scp value; runs pipes."""
    entry = entry.strip()
    root = Path(corpus_root) if corpus_root is not None else Path.cwd()
    fix = f"remove line {where[1]} of {where[0]}" if where and where[1] else "remove the entry"
    if entry.endswith("|"):
        return io.BytesIO(_run_pipe(entry[:-1].strip(), root)), f"pipe '{entry}'", fix
    path = Path(entry) if os.path.isabs(entry) else root / entry
    if not path.exists():
        hint = "" if os.path.isabs(entry) else f" (relative to corpus root {root})"
        raise AudioError(path, f"audio file does not exist{hint}", "fix the path or the corpus root "
                         f"(a corpus_root file in the data dir, or --corpus-root), or {fix}")
    return path, str(path), fix


def _with_where(where: Where | None, fn, *args):
    """Call fn; re-raise its AudioError naming the wav.scp/segments line first."""
    try:
        return fn(*args)
    except AudioError as e:
        if where is None or e.path == where[0] or e.line is not None:
            raise  # already names a data-dir file and line
        raise AudioError(where[0], f"{e.path}: {e.problem}" if e.path else e.problem, e.fix,
                         where[1]) from None


def _run_pipe(cmd: str, cwd: Path) -> bytes:
    """Run a wav.scp `cmd |` entry (in the corpus root) and return its stdout."""
    try:
        res = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, check=False)
    except OSError as e:
        raise AudioError(None, f"cannot run '{cmd}': {e}", "check the command") from None
    if res.returncode != 0:
        tail = res.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        said = f": {' | '.join(tail)}" if tail else " (it printed nothing on stderr)"
        raise AudioError(None, f"command '{cmd}' failed with exit code {res.returncode}{said}",
                         "run the command by hand and fix it")
    return res.stdout


def _read(entry: str, corpus_root, where: Where | None,
          seg: tuple[float, float] | None = None, seg_where: Where | None = None):
    """Read (a [start, end) s cut of) one wav.scp value: (float32 mono [N], rate in Hz)."""
    src, name, fix = _open(entry, corpus_root, where)
    with _sound_file(src, name, fix) as f:
        sr, start, stop = f.samplerate, 0, f.frames
        if seg is not None:
            start, stop = _cut_bounds(f.frames, sr, seg, seg_where or (name, None), name)
        try:
            if start:
                f.seek(start)
            x = f.read(stop - start, dtype="float32", always_2d=True)
        except sf.LibsndfileError as e:
            raise AudioError(name, f"unreadable or corrupt audio ({e.error_string})", fix) from None
    if x.shape[1] > 1:
        if name not in _MIXED_DOWN:   # once per file: a file of many segments is read many times
            _MIXED_DOWN.add(name)
            log.info("%s: %d channels averaged to mono", name, x.shape[1])
        return x.mean(axis=1, dtype=np.float32), int(sr)
    return x[:, 0], int(sr)


def read_wav_entry(entry: str, corpus_root: str | os.PathLike | None = None,
                   where: Where | None = None) -> tuple[np.ndarray, int]:
    """Read one wav.scp value (a path or `cmd |`): (float32 mono samples [N], sample rate in Hz).

    `where` = (wav.scp path, line) is named in error messages before the audio path.
    """
    return _with_where(where, _read, entry, corpus_root, where)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample float32 [N] from sr_in to sr_out Hz (polyphase; result clipped to [-1, 1]).

    The one resampler of training data, data-dir speed perturbation and the deployment front end
    (`export.frontend`), so deployed features equal training features."""
    sr_in, sr_out = int(sr_in), int(sr_out)
    if sr_in == sr_out:
        return x
    from scipy.signal import resample_poly  # imported here: scipy.signal takes ~1.5 s to load

    g = gcd(sr_in, sr_out)
    y = resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)
    return np.clip(y, -1.0, 1.0, out=y)


def load_audio(data: DataDir, utt: str, sample_rate: int | None = None,
               resample_ok: bool = True) -> np.ndarray:
    """Samples of one utterance: float32 mono [N] in [-1, 1] at `sample_rate` Hz (None: native).

    With `resample_ok=False` audio at another rate is an error instead of being resampled.
    """
    if utt not in data.utt2spk:
        raise AudioError(data.path, f"unknown utterance '{utt}'", "check the utterance id")
    rec = data.recording_of(utt)
    wav_where = data.where("wav.scp", rec)
    if rec not in data.wav_scp:
        file, line = data.where("segments" if data.segments is not None else "utt2spk", utt)
        raise AudioError(file, f"recording '{rec}' of '{utt}' is not in wav.scp",
                         "run `acoustic-kd data-dir fix DIR`", line)
    seg = seg_where = None
    if data.segments is not None:
        seg, seg_where = data.segments[utt][1:], data.where("segments", utt)
    x, sr = _with_where(wav_where, _read, data.wav_scp[rec], data.corpus_root, wav_where, seg, seg_where)
    if sample_rate is not None and sr != sample_rate:
        if not resample_ok:
            raise AudioError(wav_where[0], f"audio of '{rec}' is at {sr} Hz, expected {sample_rate} Hz",
                             f"resample the corpus to {sample_rate} Hz, allow resampling, or set the "
                             f"feature sample rate to {sr}", wav_where[1])
        x = resample(x, sr, sample_rate)
    return x


def _cut_bounds(frames: int, sr: int, seg: tuple[float, float], where: Where,
                name: str = "the recording") -> tuple[int, int]:
    """Sample range of a [start, end) s segment; end -1 = to the end; overshoot <= tolerance clipped."""
    start, end = seg
    dur = frames / sr
    end = dur if end == -1 else end
    if end > dur + SEGMENT_TOLERANCE_S or start >= dur:
        raise AudioError(where[0], f"segment {start:.3f}-{end:.3f} s is past the end of {name} "
                         f"({dur:.3f} s long)", "fix the segment times or the recording", where[1])
    a, b = int(round(start * sr)), min(frames, int(round(end * sr)))
    if b <= a:
        raise AudioError(where[0], f"segment {start:.3f}-{end:.3f} s has no samples",
                         "remove the segment", where[1])
    return a, b


def check_data_audio(data: DataDir) -> list[Problem]:
    """Open every recording's header (runs `cmd |` entries) and check segment ends.

    Returns one Problem per bad recording (key = recording id) or bad segment (key = utterance id).
    """
    problems: list[Problem] = []
    shape: dict[str, tuple[int, int]] = {}
    for rec, entry in data.wav_scp.items():
        where = data.where("wav.scp", rec)
        try:
            src, name, fix = _open(entry, data.corpus_root, where)
            with _sound_file(src, name, fix) as f:
                shape[rec] = (f.frames, f.samplerate)
        except AudioError as e:
            msg = f"{e.path}: {e.problem}" if e.path and e.path != where[0] else e.problem
            problems.append(Problem(where[0], where[1], msg, e.fix, "bad_audio", rec))
    for utt, (rec, start, end) in (data.segments or {}).items():
        if rec in shape:
            try:
                _cut_bounds(*shape[rec], (start, end), data.where("segments", utt), f"'{rec}'")
            except AudioError as e:
                problems.append(Problem(e.path, e.line, e.problem, e.fix, "bad_audio", utt))
    return problems


def native_rate(data: DataDir, probe: int = 200) -> int:
    """The sample rate (Hz) most of a data dir's recordings have (ties: the higher), from the
    headers of up to `probe` recordings spread evenly over wav.scp (pipes are run)."""
    recs = sorted(data.wav_scp)
    if not recs:
        raise AudioError(data.path, "wav.scp is empty: no audio to take a sample rate from",
                         "give a data dir with recordings, or set features.sample_rate")
    step = max(1, len(recs) // probe)
    counts: dict[int, int] = {}

    def rate(rec: str, where: Where) -> int:
        with _sound_file(*_open(data.wav_scp[rec], data.corpus_root, where)) as f:
            return f.samplerate

    for rec in recs[::step][:probe]:
        where = data.where("wav.scp", rec)
        sr = _with_where(where, rate, rec, where)
        counts[sr] = counts.get(sr, 0) + 1
    if len(counts) > 1:
        log.warning("%s: recordings at several sample rates %s (of %d probed); the most common is "
                    "used and the others are resampled to it", data.path, counts, sum(counts.values()))
    return max(counts, key=lambda r: (counts[r], r))
