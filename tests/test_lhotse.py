"""`acoustic-kd prepare lhotse`: a RecordingSet + SupervisionSet built with lhotse's own API from
generated WAVs becomes a valid Kaldi data dir (segments only where supervisions cut recordings)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from acoustic_kd.cli import main
from acoustic_kd.data import DataDir, load_audio, validate_data_dir
from acoustic_kd.errors import DataError

SR = 16000


def _recordings(tmp_path, seconds=(2.0, 3.0)):
    """Two generated WAVs as a lhotse RecordingSet (each a different tone)."""
    recs = []
    for i, sec in enumerate(seconds):
        t = np.arange(int(sec * SR)) / SR
        path = tmp_path / f"rec{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t)).astype(np.float32), SR)
        recs.append(Recording.from_file(path, recording_id=f"rec{i}"))
    return RecordingSet.from_recordings(recs)


def _write(tmp_path, recs, sups):
    r, s = tmp_path / "recordings.jsonl.gz", tmp_path / "supervisions.jsonl.gz"
    recs.to_file(r)
    SupervisionSet.from_segments(sups).to_file(s)
    return r, s


def _prepare(r, s, out) -> int:
    return main(["prepare", "lhotse", "--recordings", str(r), "--supervisions", str(s), "--out", str(out)])


def test_segments_of_recordings(tmp_path):
    recs = _recordings(tmp_path)
    sups = [SupervisionSegment("rec0-a", "rec0", 0.0, 0.8, text="HELLO  WORLD", speaker="spk1"),
            SupervisionSegment("rec0-b", "rec0", 1.0, 0.9, text="AGAIN", speaker="spk1"),
            SupervisionSegment("rec1-a", "rec1", 0.5, 2.0, text="BYE", speaker="spk2")]
    out = tmp_path / "data" / "train"
    assert _prepare(*_write(tmp_path, recs, sups), out) == 0
    assert (out / "wav.scp").read_text() == "".join(f"rec{i} {(tmp_path / f'rec{i}.wav').resolve()}\n"
                                                    for i in (0, 1))
    assert (out / "segments").read_text() == "rec0-a rec0 0 0.8\nrec0-b rec0 1 1.9\nrec1-a rec1 0.5 2.5\n"
    assert (out / "text").read_text() == "rec0-a HELLO WORLD\nrec0-b AGAIN\nrec1-a BYE\n"
    assert (out / "utt2spk").read_text() == "rec0-a spk1\nrec0-b spk1\nrec1-a spk2\n"
    assert (out / "spk2utt").read_text() == "spk1 rec0-a rec0-b\nspk2 rec1-a\n"
    assert validate_data_dir(out, check_audio=True) == []
    x = load_audio(DataDir.load(out), "rec0-b")
    assert len(x) == round(0.9 * SR)
    # re-run with the same manifests: up to date; the features a later stage wrote stay
    (out / "feats.scp").write_text("kept\n")
    assert _prepare(tmp_path / "recordings.jsonl.gz", tmp_path / "supervisions.jsonl.gz", out) == 0
    assert (out / "feats.scp").read_text() == "kept\n"


def test_whole_recordings_need_no_segments(tmp_path):
    recs = _recordings(tmp_path)
    sups = [SupervisionSegment(f"utt{i}", f"rec{i}", 0.0, r.duration, text="YES NO")
            for i, r in enumerate(recs)]
    out = tmp_path / "whole"
    assert _prepare(*_write(tmp_path, recs, sups), out) == 0
    assert not (out / "segments").exists()
    assert (out / "wav.scp").read_text().splitlines()[0] == f"utt0 {(tmp_path / 'rec0.wav').resolve()}"
    assert (out / "utt2spk").read_text() == "utt0 utt0\nutt1 utt1\n"       # no speaker: its own
    assert (out / "utt2dur").read_text() == "utt0 2\nutt1 3\n"
    assert validate_data_dir(out, check_audio=True) == []


def test_command_sources_and_bad_manifests(tmp_path):
    from lhotse.audio import AudioSource

    recs = _recordings(tmp_path, (1.0,))
    piped = Recording("piped", [AudioSource("command", [0], f"cat {tmp_path / 'rec0.wav'}")], SR, SR, 1.0)
    recs = RecordingSet.from_recordings([*recs, piped])
    ok = [SupervisionSegment("p", "piped", 0.0, 1.0, text="A", speaker="s"),
          SupervisionSegment("r", "rec0", 0.0, 1.0, text="B", speaker="s")]
    out = tmp_path / "cmd"
    assert _prepare(*_write(tmp_path, recs, ok), out) == 0
    assert (out / "wav.scp").read_text().startswith(f"p cat {tmp_path / 'rec0.wav'} |\n")
    assert len(load_audio(DataDir.load(out), "p")) == SR
    for bad, match in ((SupervisionSegment("x", "nowhere", 0.0, 1.0, text="A"), "RecordingSet lacks"),
                       (SupervisionSegment("y", "rec0", 0.0, 1.0, text=" "), "has no text")):
        with pytest.raises(DataError, match=match):
            from acoustic_kd.corpora.lhotse_manifests import prepare_lhotse

            prepare_lhotse(*_write(tmp_path, recs, [bad]), tmp_path / "bad")
    assert main(["prepare", "lhotse", "--recordings", str(tmp_path / "none.jsonl.gz"), "--supervisions",
                 str(tmp_path / "none.jsonl.gz"), "--out", str(tmp_path / "x")]) == 1
