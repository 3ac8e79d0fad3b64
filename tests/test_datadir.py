"""Kaldi data dirs: reading, every-problem validation naming file+line, fix, subset, combine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import acoustic_kd.data
import acoustic_kd.data.datadir
from acoustic_kd.data import (DataDir, combine_data_dirs, fix_data_dir, speed_perturb_data_dir,
                              subset_data_dir, validate_data_dir)
from acoustic_kd.errors import DataError

GOOD = {
    "wav.scp": "a1 a1.wav\na2 a2.wav\nb1 b1.wav\n",
    "text": "a1 ONE TWO\na2 THREE\nb1 FOUR\n",
    # Speaker ids are not prefixes of the utterance ids: spk2utt is derived, not assumed.
    "utt2spk": "a1 zed\na2 adam\nb1 zed\n",
    "spk2utt": "adam a2\nzed a1 b1\n",
}


def make_dir(tmp_path: Path, name: str = "d", **override: str) -> Path:
    """A data dir of three 0.5 s utterances at 8 kHz; `override` replaces (or with '' drops) files."""
    d = tmp_path / name
    d.mkdir()
    for utt in ("a1", "a2", "b1"):
        sf.write(tmp_path / f"{utt}.wav", np.zeros(4000, np.float32), 8000)
    (d / "corpus_root").write_text("..\n")
    for fname, body in {**GOOD, **{k.replace("_", ".") if k == "wav_scp" else k: v
                                   for k, v in override.items()}}.items():
        if body is not None:
            (d / fname).write_bytes(body.encode())
    return d


def only(problems, fragment: str):
    """The single problem whose message contains `fragment`."""
    hits = [p for p in problems if fragment in p.message]
    assert len(hits) == 1, [str(p) for p in problems]
    return hits[0]


def test_good_dir_loads_and_sorts_speakers(tmp_path):
    d = make_dir(tmp_path)
    assert validate_data_dir(d, check_audio=True) == []
    data = DataDir.load(d)
    assert data.utts == ["a1", "a2", "b1"]
    assert data.spk2utt == {"adam": ["a2"], "zed": ["a1", "b1"]}
    assert data.corpus_root == tmp_path.resolve()
    assert data.recording_of("a2") == "a2"


def test_tabs_and_crlf_are_accepted(tmp_path):
    d = make_dir(tmp_path, text="a1\tONE \t TWO\r\na2  THREE\r\nb1\tFOUR\r\n",
                 wav_scp="a1\ta1.wav\r\na2 a2.wav\r\nb1\tb1.wav\r\n")
    assert validate_data_dir(d, check_audio=True) == []
    assert DataDir.load(d).text["a1"] == "ONE TWO"
    assert DataDir.load(d).wav_scp["a1"] == "a1.wav"


def test_duplicate_id_names_file_and_line(tmp_path):
    d = make_dir(tmp_path, text="a1 ONE\na2 THREE\na2 AGAIN\nb1 FOUR\n")
    p = only(validate_data_dir(d), "duplicate id 'a2'")
    assert (Path(p.path).name, p.line) == ("text", 3)
    assert f"{d / 'text'}:3:" in str(p) and "fix:" in str(p)


def test_unsorted_file_names_file_and_line(tmp_path):
    d = make_dir(tmp_path, utt2spk="a2 adam\na1 zed\nb1 zed\n")
    p = only(validate_data_dir(d), "not sorted")
    assert (Path(p.path).name, p.line) == ("utt2spk", 2)
    assert "sort" in p.fix


def test_utterance_without_audio_and_audio_without_utterance(tmp_path):
    d = make_dir(tmp_path, wav_scp="a1 a1.wav\nb1 b1.wav\nc9 c9.wav\n")
    problems = validate_data_dir(d)
    p = only(problems, "'a2' has no audio")
    assert (Path(p.path).name, p.line) == ("text", 2)
    p = only(problems, "'c9' has no utterance")
    assert (Path(p.path).name, p.line) == ("wav.scp", 3)


def test_text_without_speaker_and_speaker_without_text(tmp_path):
    d = make_dir(tmp_path, text="a1 ONE\nb1 FOUR\n", utt2spk="a1 zed\nb1 zed\nc2 adam\n",
                 wav_scp="a1 a1.wav\nb1 b1.wav\nc2 a2.wav\n", spk2utt="adam c2\nzed a1 b1\n")
    p = only(validate_data_dir(d), "'c2' has no transcript")
    assert (Path(p.path).name, p.line) == ("utt2spk", 3)


def test_speaker_mismatch_between_utt2spk_and_spk2utt(tmp_path):
    d = make_dir(tmp_path, spk2utt="adam a2 b1\nzed a1\n")
    problems = validate_data_dir(d)
    assert {(Path(p.path).name, p.line) for p in problems} == {("spk2utt", 1), ("spk2utt", 2)}
    assert all("differ from utt2spk" in p.message for p in problems)


def test_empty_transcript_names_line(tmp_path):
    d = make_dir(tmp_path, text="a1 ONE\na2\nb1 FOUR\n")
    p = only(validate_data_dir(d), "empty transcript")
    assert (Path(p.path).name, p.line) == ("text", 2)


def test_blank_line_and_bad_segment(tmp_path):
    d = make_dir(tmp_path, wav_scp="rec a1.wav\n", segments="a1 rec 0 0.2\na2 rec 0.3 0.1\n\nb1 rec 0.2 x\n")
    problems = validate_data_dir(d)
    assert ("segments", 3) in {(Path(p.path).name, p.line) for p in problems if "empty line" in p.message}
    assert only(problems, "bad times").line == 2
    assert only(problems, "not numbers").line == 4


def test_every_problem_is_reported_and_load_raises_them_all(tmp_path):
    d = make_dir(tmp_path, text="a1 ONE\na2\na2 X\nb1 FOUR\n", utt2spk="b1 zed\na1 zed\na2 adam\n")
    problems = validate_data_dir(d)
    assert sorted(p.kind for p in problems) == ["duplicate_id", "empty_value", "unsorted"]
    with pytest.raises(DataError) as e:
        DataDir.load(d)
    for p in problems:
        assert str(p) in str(e.value)


def test_missing_required_file(tmp_path):
    d = make_dir(tmp_path, utt2spk=None, spk2utt=None)
    kinds = {(Path(p.path).name, p.kind) for p in validate_data_dir(d)}
    # spk2utt is derived from utt2spk, so only the file that cannot be derived is reported
    assert ("utt2spk", "missing_file") in kinds and all(n != "spk2utt" for n, _ in kinds)


def test_fix_keeps_consistent_intersection_and_logs(tmp_path):
    d = make_dir(tmp_path, text="b1 FOUR\na1 ONE\na2\nc3 FIVE\n",
                 utt2spk="a1 zed\na2 adam\nb1 zed\nd4 zed\n", spk2utt="zed a1\n",
                 wav_scp="a1 a1.wav\na1 again.wav\nb1 b1.wav\nd4 x.wav\ne5 e.wav\n")
    counts = fix_data_dir(d)
    assert counts["kept_utts"] == 2
    assert counts["no_transcript"] == 2 and counts["no_speaker"] == 1
    assert counts["duplicate_id"] == 1 and counts["unused_recording"] == 1
    assert validate_data_dir(d) == []
    assert DataDir.load(d).utts == ["a1", "b1"]
    log = (d / "fix_data_dir.log").read_text()
    assert "c3\tno_speaker" in log and "e5\tunused_recording" in log
    assert (d / ".backup" / "text").read_text().startswith("b1 FOUR")


def test_fix_with_audio_check_drops_missing_files(tmp_path):
    d = make_dir(tmp_path)
    (tmp_path / "a2.wav").unlink()
    counts = fix_data_dir(d, check_audio=True)
    assert counts == {"bad_audio": 1, "kept_utts": 2}


def test_ops_are_importable_from_the_data_package():
    assert acoustic_kd.data.fix_data_dir is fix_data_dir
    assert acoustic_kd.data.subset_data_dir is subset_data_dir
    assert acoustic_kd.data.combine_data_dirs is combine_data_dirs
    with pytest.raises(AttributeError):  # the tables module has no lazy re-exports (no shim)
        acoustic_kd.data.datadir.fix_data_dir


def test_subset_and_combine(tmp_path):
    d = make_dir(tmp_path)
    sub = subset_data_dir(d, tmp_path / "sub", speakers=["zed"])
    assert sub.utts == ["a1", "b1"] and validate_data_dir(tmp_path / "sub") == []
    first = subset_data_dir(d, tmp_path / "first", first=1)
    assert first.utts == ["a1"]
    with pytest.raises(DataError, match="not in the data dir"):
        subset_data_dir(d, tmp_path / "bad", utts=["zz"])
    comb = combine_data_dirs([tmp_path / "first", tmp_path / "sub"], tmp_path / "comb")
    assert comb.utts == ["a1", "b1"]
    # Relative paths became absolute, so the combined dir reads from anywhere.
    assert Path(DataDir.load(tmp_path / "comb").wav_scp["a1"]).is_absolute()
    assert validate_data_dir(tmp_path / "comb", check_audio=True) == []
    clash = make_dir(tmp_path, "clash", text="a1 OTHER\na2 THREE\nb1 FOUR\n")
    with pytest.raises(DataError, match="also in an earlier source") as e:
        combine_data_dirs([d, clash], tmp_path / "comb2")
    assert e.value.line == 1


def test_subset_keeps_features_and_reference_timings(tmp_path):
    from acoustic_kd.features import FbankConfig, FeatureSet, make_features

    d = make_dir(tmp_path)
    make_features(d, FbankConfig(sample_rate=8000))
    (d / "word_times.txt").write_text("a1 ONE 0.0 0.1\na1 TWO 0.1 0.2\nb1 FOUR 0.0 0.1\n")
    subset_data_dir(d, tmp_path / "sub", utts=["b1"])
    sub, full = FeatureSet(tmp_path / "sub", cmvn="none"), FeatureSet(d, cmvn="none")
    assert sub.utts == ["b1"]
    np.testing.assert_array_equal(sub["b1"], full["b1"])
    assert (tmp_path / "sub" / "word_times.txt").read_text() == "b1 FOUR 0.0 0.1\n"
    assert (tmp_path / "sub" / "fbank.json").read_text() == (d / "fbank.json").read_text()
    # per-speaker CMVN stats are recomputed from the kept utterances, not copied
    assert not (tmp_path / "sub" / "cmvn.scp").exists()
    assert FeatureSet(tmp_path / "sub", cmvn="speaker")["b1"].mean(0) == pytest.approx(0, abs=1e-4)


def test_segments_roundtrip(tmp_path):
    d = make_dir(tmp_path, wav_scp="rec a1.wav\n", segments="a1 rec 0 0.2\na2 rec 0.2 0.35\nb1 rec 0.35 -1\n")
    assert validate_data_dir(d, check_audio=True) == []
    data = DataDir.load(d)
    assert data.recording_of("a2") == "rec" and data.segments["b1"] == ("rec", 0.35, -1.0)
    data.save(tmp_path / "copy")
    assert (tmp_path / "copy" / "segments").read_text().splitlines()[2] == "b1 rec 0.35 -1"


def test_corpus_root_precedence(tmp_path, monkeypatch):
    d = make_dir(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert DataDir.load(d, corpus_root=other).corpus_root == other.resolve()  # explicit option wins
    assert DataDir.load(d).corpus_root == tmp_path.resolve()  # then the corpus_root file
    (d / "corpus_root").unlink()
    monkeypatch.chdir(other)
    assert DataDir.load(d).corpus_root == other.resolve()  # then the current directory
    problems = validate_data_dir(d, check_audio=True)
    assert len(problems) == 3 and all("does not exist" in p.message for p in problems)
    assert [p.line for p in problems] == [1, 2, 3]


def test_save_into_existing_dir_keeps_other_files(tmp_path):
    d = make_dir(tmp_path)
    (d / "feats.scp").write_text("a1 feats.ark:5\n")
    (d / "utt2dur").write_text("a1 0.5\na2 0.5\nb1 0.5\n")
    data = DataDir.load(d)
    data.utt2dur = None
    data.text["a1"] = "NEW WORDS"
    data.save(d)
    assert (d / "feats.scp").exists() and not (d / "utt2dur").exists()
    assert DataDir.load(d).text["a1"] == "NEW WORDS"


def test_speed_perturb_changes_tempo_and_pitch_and_prefixes_ids(tmp_path):
    from acoustic_kd.data import load_audio
    from acoustic_kd.cli import main

    d = make_dir(tmp_path)
    t = np.arange(8000) / 8000.0
    sf.write(tmp_path / "a1.wav", (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), 8000)
    assert main(["data-dir", "speed-perturb", str(d), str(tmp_path / "sp"), "--factor", "0.9",
                 "--sample-rate", "8000"]) == 0
    out = DataDir.load(tmp_path / "sp")
    assert validate_data_dir(tmp_path / "sp", check_audio=True) == []
    assert out.utts == ["sp0.9-a1", "sp0.9-a2", "sp0.9-b1"]
    assert out.utt2spk["sp0.9-a2"] == "sp0.9-adam" and out.text["sp0.9-b1"] == DataDir.load(d).text["b1"]
    y = load_audio(out, "sp0.9-a1", 8000)
    assert len(y) == round(8000 / 0.9) and out.utt2dur["sp0.9-a1"] == pytest.approx(1 / 0.9, abs=1e-3)
    peak = np.argmax(np.abs(np.fft.rfft(y))) * 8000 / len(y)
    assert peak == pytest.approx(440.0 * 0.9, abs=2.0)            # slower: the pitch drops too
    with pytest.raises(DataError, match="out of range"):
        speed_perturb_data_dir(d, tmp_path / "bad", 3.0, 8000)
    # without --sample-rate: the rate the source's features were made at (its fbank.json)
    assert main(["data-dir", "speed-perturb", str(d), str(tmp_path / "sp2"), "--factor", "1.1"]) == 1
    (d / "fbank.json").write_text('{"sample_rate": 16000}')
    assert main(["data-dir", "speed-perturb", str(d), str(tmp_path / "sp2"), "--factor", "1.1"]) == 0
    assert sf.info(DataDir.load(tmp_path / "sp2").wav_scp["sp1.1-a1"]).samplerate == 16000


def test_missing_spk2utt_is_derived_from_utt2spk_and_written(tmp_path):
    # a bring-your-own data dir without spk2utt (optional, as README says) must be accepted:
    # the table is derived from utt2spk (grouped by speaker, C-sorted) and written beside it
    # (by the loader: the validator writes nothing, not even with --check-audio)
    d = make_dir(tmp_path, spk2utt=None)
    before = sorted(p.name for p in d.iterdir())
    assert validate_data_dir(d) == [] and validate_data_dir(d, check_audio=True) == []
    assert sorted(p.name for p in d.iterdir()) == before and "spk2utt" not in before
    assert DataDir.load(d).spk2utt == {"adam": ["a2"], "zed": ["a1", "b1"]}
    assert (d / "spk2utt").read_text() == "adam a2\nzed a1 b1\n"
