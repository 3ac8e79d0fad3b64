"""Audio loading: formats, pipes, segments, mono, resampling and clear errors for bad audio."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acoustic_kd.data import AudioError, DataDir, check_data_audio, load_audio, read_wav_entry, resample

SR = 8000


def tone(seconds: float = 0.5, sr: int = SR, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def data_dir(tmp_path: Path, wav_lines: list[str], segments: list[str] | None = None) -> DataDir:
    """Write a data dir whose wav.scp has `wav_lines` (recording id first) and load it unvalidated."""
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    (d / "wav.scp").write_text("".join(f"{ln}\n" for ln in wav_lines))
    utts = [s.split()[0] for s in segments] if segments else [ln.split()[0] for ln in wav_lines]
    (d / "text").write_text("".join(f"{u} YES\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u} s\n" for u in utts))
    (d / "spk2utt").write_text(f"s {' '.join(utts)}\n")
    if segments:
        (d / "segments").write_text("".join(f"{s}\n" for s in segments))
    return DataDir.load(d, corpus_root=tmp_path)


def assert_names(err: AudioError, data: DataDir, name: str, line: int) -> None:
    """The error names the data-dir file and line, and a fix."""
    assert f"{data.path / name}:{line}:" in str(err) and "(fix:" in str(err)


def test_wav_flac_and_pipe_entries(tmp_path):
    x = tone()
    sf.write(tmp_path / "a.wav", x, SR)
    sf.write(tmp_path / "b.flac", x, SR)
    cmd = f"{sys.executable} -c \"import sys; sys.stdout.buffer.write(open('a.wav','rb').read())\" |"
    data = data_dir(tmp_path, ["a a.wav", f"b {tmp_path / 'b.flac'}", f"c {cmd}"])
    for utt in ("a", "b", "c"):
        y = load_audio(data, utt)
        assert y.dtype == np.float32 and y.shape == (SR // 2,)
        np.testing.assert_allclose(y, x, atol=1e-4)


def test_stereo_is_averaged_to_mono_and_logged(tmp_path):
    x = tone()
    sf.write(tmp_path / "st.wav", np.stack([x, np.zeros_like(x)], axis=1), SR)
    sf.write(tmp_path / "st3.wav", np.stack([x, x, x], axis=1), SR)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("acoustic_kd.data.audio")
    logger.addHandler(handler)
    try:
        for _ in range(3):    # a file of many segments is read many times: said once
            y, sr = read_wav_entry("st.wav", tmp_path)
        y3, _ = read_wav_entry("st3.wav", tmp_path)
    finally:
        logger.removeHandler(handler)
    assert sr == SR and y.ndim == 1
    np.testing.assert_allclose(y, x / 2, atol=1e-4)
    np.testing.assert_allclose(y3, x, atol=1e-4)   # (16-bit samples)
    assert [(r.levelno, r.getMessage()) for r in records] == [   # at INFO, as README promises
        (logging.INFO, f"{tmp_path / 'st.wav'}: 2 channels averaged to mono"),
        (logging.INFO, f"{tmp_path / 'st3.wav'}: 3 channels averaged to mono")]


def test_resampling_and_wrong_rate_when_disabled(tmp_path):
    sf.write(tmp_path / "a.wav", tone(1.0), SR)
    data = data_dir(tmp_path, ["a a.wav"])
    y = load_audio(data, "a", sample_rate=16000)
    assert y.shape == (16000,) and np.abs(y).max() <= 1.0
    # A 440 Hz tone stays a 440 Hz tone.
    assert abs(np.argmax(np.abs(np.fft.rfft(y))) - 440) <= 1
    with pytest.raises(AudioError, match="at 8000 Hz, expected 16000 Hz") as e:
        load_audio(data, "a", sample_rate=16000, resample_ok=False)
    assert_names(e.value, data, "wav.scp", 1)
    # at the same rate the samples come back untouched (a resampler run anyway would filter and
    # clip them, and change every feature of a corpus already at the config's rate)
    x = tone(0.1, freq=3900.0) * 2.2           # near Nyquist, and beyond [-1, 1]
    assert np.array_equal(resample(x, SR, SR), x)


def test_missing_file(tmp_path):
    sf.write(tmp_path / "a.wav", tone(), SR)
    data = data_dir(tmp_path, ["a a.wav", "b nowhere.wav"])
    with pytest.raises(AudioError, match="does not exist") as e:
        load_audio(data, "b")
    assert_names(e.value, data, "wav.scp", 2)
    assert "nowhere.wav" in str(e.value)


def test_corrupt_file(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" * 4)
    data = data_dir(tmp_path, ["bad bad.wav"])
    with pytest.raises(AudioError, match="unreadable or corrupt") as e:
        load_audio(data, "bad")
    assert_names(e.value, data, "wav.scp", 1)


def test_empty_and_zero_length_audio(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), SR)
    data = data_dir(tmp_path, ["e empty.wav", "z zero.wav"])
    with pytest.raises(AudioError, match="empty") as e:
        load_audio(data, "e")
    assert_names(e.value, data, "wav.scp", 1)
    with pytest.raises(AudioError, match="zero-length") as e:
        load_audio(data, "z")
    assert_names(e.value, data, "wav.scp", 2)


def test_truncated_wav(tmp_path):
    sf.write(tmp_path / "full.wav", tone(1.0), SR, subtype="PCM_16")
    raw = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(raw[: len(raw) // 2])
    data = data_dir(tmp_path, ["cut cut.wav", "full full.wav"])
    with pytest.raises(AudioError, match="truncated audio: the header promises 8000 samples") as e:
        load_audio(data, "cut")
    assert_names(e.value, data, "wav.scp", 1)
    assert [p.key for p in check_data_audio(data)] == ["cut"]


def test_failing_pipe(tmp_path):
    data = data_dir(tmp_path, ["p false |"])
    with pytest.raises(AudioError, match="failed with exit code 1") as e:
        load_audio(data, "p")
    assert_names(e.value, data, "wav.scp", 1)


def test_segments_cut_clip_and_past_end(tmp_path):
    x = tone(1.0)
    sf.write(tmp_path / "r.wav", x, SR)
    data = data_dir(tmp_path, ["r r.wav"], ["u1 r 0.25 0.5", "u2 r 0.5 1.005", "u3 r 0.5 1.5", "u4 r 0.9 -1"])
    np.testing.assert_allclose(load_audio(data, "u1"), x[2000:4000], atol=1e-4)
    assert len(load_audio(data, "u2")) == 4000  # 5 ms overshoot is within tolerance: clipped
    assert len(load_audio(data, "u4")) == 800
    with pytest.raises(AudioError, match="past the end") as e:
        load_audio(data, "u3")
    assert_names(e.value, data, "segments", 3)
    problems = check_data_audio(data)
    assert [(Path(p.path).name, p.line, p.key) for p in problems] == [("segments", 3, "u3")]
