"""Corpus preparation: FSDD and yesno splits, lexicon resources, bring-your-own Kaldi dirs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acoustic_kd.cli import main
from acoustic_kd.corpora import CORPORA, fsdd, yesno
from acoustic_kd.corpora.kaldi import prepare_kaldi
from acoustic_kd.lang import load_lexicon as read_lexicon
from acoustic_kd.data import DataDir, validate_data_dir
from acoustic_kd.errors import DataError


def counts(out: dict[str, Path]) -> dict[str, int]:
    return {s: len(DataDir.load(out[s]).utt2spk) for s in ("train", "dev", "test")}


@pytest.mark.corpus
def test_fsdd_official_split_with_dev(fsdd_dir, tmp_path):
    out = fsdd.prepare_fsdd(fsdd_dir, tmp_path / "fsdd")
    assert counts(out) == {"train": 2400, "dev": 300, "test": 300}
    for s in ("train", "dev", "test"):
        assert validate_data_dir(out[s]) == []
    test = DataDir.load(out["test"])
    assert {u.rsplit("_", 1)[1] for u in test.utts} == {"0", "1", "2", "3", "4"}
    assert test.text["george-7_3"] == "SEVEN" and test.utt2spk["george-7_3"] == "george"
    assert len(test.spk2utt) == 6 and set(test.spk2gender.values()) == {"m"}
    summary = json.loads((tmp_path / "fsdd" / "local" / "summary.json").read_text())
    assert 0.3 < sum(s["hours"] for s in summary["sets"].values()) < 0.4
    assert (tmp_path / "fsdd" / "local" / "oov_words.txt").read_text() == ""


@pytest.mark.corpus
def test_yesno_split(yesno_dir, tmp_path):
    out = yesno.prepare_yesno(yesno_dir, tmp_path / "yesno")
    assert counts(out) == {"train": 25, "dev": 6, "test": 29}
    for s in ("train", "dev", "test"):
        assert validate_data_dir(out[s], check_audio=True) == []
    data = DataDir.load(out["test"])
    assert data.text["1_0_0_0_0_0_0_0"] == "YES NO NO NO NO NO NO NO"
    assert all(u.startswith("1_") for u in data.utts)
    assert (tmp_path / "yesno" / "local" / "skipped_files.txt").read_text() == "README\n"


def test_fsdd_from_generated_files_skips_and_lists_strays(tmp_path):
    src = tmp_path / "recordings"
    src.mkdir()
    for digit in (3, 8):
        for idx in (0, 5, 12):
            sf.write(src / f"{digit}_ann_{idx}.wav", np.zeros(800, np.float32), 8000)
    (src / "notes.txt").write_text("x")
    out = fsdd.prepare_fsdd(tmp_path, tmp_path / "out")
    assert counts(out) == {"train": 2, "dev": 2, "test": 2}
    train = DataDir.load(out["train"])
    assert train.text == {"ann-3_12": "THREE", "ann-8_12": "EIGHT"}
    assert train.spk2gender is None  # 'ann' is not an upstream speaker: gender unknown
    assert (tmp_path / "out" / "local" / "skipped_files.txt").read_text() == "notes.txt\n"
    # Done marker: a second call skips the work and returns the same paths.
    (out["train"] / "text").write_text("changed\n")
    assert fsdd.prepare_fsdd(tmp_path, tmp_path / "out") == out
    assert (out["train"] / "text").read_text() == "changed\n"
    with pytest.raises(DataError, match="overlap the official test"):
        fsdd.prepare_fsdd(tmp_path, tmp_path / "o2", dev_indices=(3, 9))


def test_lexicon_resources():
    digits = read_lexicon(fsdd.LEXICON)
    assert set(digits) == set(fsdd.DIGIT_WORDS) | {"OH"}
    assert digits["ZERO"] == [["Z", "IH1", "R", "OW0"], ["Z", "IY1", "R", "OW0"]]
    assert read_lexicon(yesno.LEXICON) == {"NO": [["N", "OW"]], "YES": [["Y", "EH", "S"]]}
    assert read_lexicon(yesno.LEXICON_HEBREW) == {"NO": [["L", "OW"]], "YES": [["K", "EH", "N"]]}


def test_lexicon_problems_name_every_line(tmp_path):
    lex = tmp_path / "lexicon.txt"
    lex.write_text("A AH0\nB\nC 1.0 S IY1\n\nD #1\nA EY1\n")
    with pytest.raises(DataError) as e:
        read_lexicon(lex)
    msg = str(e.value)
    for line in (2, 3, 4, 5):
        assert f"{lex}:{line}:" in msg
    assert "lexiconp" in msg


def test_bring_your_own_kaldi_dirs(tmp_path):
    src = tmp_path / "src"
    for name in ("train", "test"):
        d = src / name
        d.mkdir(parents=True)
        sf.write(d / "u.wav", np.zeros(800, np.float32), 8000)
        (d / "wav.scp").write_text(f"{name}1\tu.wav\r\n")
        (d / "text").write_text(f"{name}1 HELLO WORLD\r\n")
        (d / "utt2spk").write_text(f"{name}1 spk\n")
        (d / "spk2utt").write_text(f"spk {name}1\n")
        (d / "corpus_root").write_text(".\n")
        (d / "feats.scp").write_text("stale\n")
    lex = tmp_path / "lex.txt"
    lex.write_text("HELLO HH AH0 L OW1\nHELLO HH EH0 L OW1\n")
    out = prepare_kaldi(src, tmp_path / "out", lex)
    assert sorted(out) == ["lexicon", "test", "train"]
    train = DataDir.load(out["train"])
    assert Path(train.wav_scp["train1"]).is_absolute() and not (out["train"] / "feats.scp").exists()
    assert validate_data_dir(out["train"], check_audio=True) == []
    assert read_lexicon(out["lexicon"])["HELLO"] == [["HH", "AH0", "L", "OW1"], ["HH", "EH0", "L", "OW1"]]
    assert (tmp_path / "out" / "local" / "oov_words.txt").read_text() == "WORLD\n"
    (src / "test" / "text").write_text("test1\n")
    with pytest.raises(DataError, match=r"text:1: empty transcript"):
        prepare_kaldi(src, tmp_path / "out2", lex)


def test_registry_and_cli(tmp_path, capsys):
    assert sorted(CORPORA) == ["fsdd", "kaldi", "lhotse", "librispeech", "mboshi", "synth_digits", "yesno"]
    src = tmp_path / "waves_yesno"
    src.mkdir()
    for stem in ("0_0_1", "0_1_1", "1_1_0"):
        sf.write(src / f"{stem}.wav", np.zeros(800, np.float32), 8000)
    rc = main(["prepare", "yesno", "--src", str(tmp_path), "--out", str(tmp_path / "o"),
               "--opt", "num_dev=1", "--lexicon", "hebrew"])
    assert rc == 0
    assert counts({s: tmp_path / "o" / s for s in ("train", "dev", "test")}) == {
        "train": 1, "dev": 1, "test": 1}
    assert (tmp_path / "o" / "local" / "lexicon.txt").read_text() == "NO L OW\nYES K EH N\n"
    assert main(["data-dir", "validate", str(tmp_path / "o" / "train")]) == 0
    (tmp_path / "o" / "train" / "text").write_text("0_0_1\n")
    assert main(["data-dir", "validate", str(tmp_path / "o" / "train")]) == 1
    assert "text:1: empty transcript" in capsys.readouterr().out
    assert main(["prepare", "fsdd", "--out", str(tmp_path / "x")]) == 1  # needs --src


def _mboshi_layouts(root):
    """The same 4 utterances in the staged layout and in upstream's full_corpus_newsplit layout."""
    import soundfile as sf

    utts = {"abiayi_a_1": ("train", "kyéma wó"), "abiayi_a_2": ("train", "ikóó"),
            "kouarata_b_1": ("train", "sωndω wó"), "martial_c_1": ("test", "adí")}
    staged, up = root / "staged", root / "upstream" / "full_corpus_newsplit"
    (staged / "audio").mkdir(parents=True)
    for u, (split, text) in utts.items():
        sf.write(staged / "audio" / f"{u}.flac", np.zeros(8000, np.float32), 16000)
        part = up / ("dev" if split == "test" else "train")
        part.mkdir(parents=True, exist_ok=True)
        sf.write(part / f"{u}.wav", np.zeros(8000, np.float32), 16000)
        (part / f"{u}.mb.cleaned").write_text(text + "\n", encoding="utf-8")
    (staged / "transcripts.txt").write_text("".join(f"{u} {t}\n" for u, (_, t) in utts.items()),
                                            encoding="utf-8")
    (staged / "split.txt").write_text("".join(f"{u} {s}\n" for u, (s, _) in utts.items()))
    return staged, up.parent


def test_mboshi_both_layouts_give_the_same_sets(tmp_path):
    from acoustic_kd.corpora.mboshi import graphemes, prepare_mboshi

    staged, upstream = _mboshi_layouts(tmp_path)
    a = prepare_mboshi(staged, tmp_path / "a", dev_every=3)
    b = prepare_mboshi(upstream, tmp_path / "b", dev_every=3)
    for name in ("train", "dev", "test"):
        da, db = DataDir.load(a[name]), DataDir.load(b[name])
        assert da.text == db.text and da.utt2spk == db.utt2spk
    # dev = every 3rd training id in C order; speakers are the id prefix
    assert DataDir.load(a["dev"]).utts == ["kouarata_b_1"]
    assert DataDir.load(a["test"]).utt2spk == {"martial_c_1": "martial"}
    lex = (tmp_path / "a" / "local" / "lexicon.txt").read_text(encoding="utf-8").splitlines()
    assert "kyéma k y é m a" in lex and "sωndω s ω n d ω" in lex
    # a decomposed accent (e + combining acute) is one grapheme, the same as the composed é
    assert graphemes("ke\u0301") == ["k", "é"]
    with pytest.raises(DataError, match="not a Mboshi corpus"):
        prepare_mboshi(tmp_path, tmp_path / "c")


def test_mboshi_speaker_split_holds_one_speaker_out_deterministically(tmp_path, capsys):
    """--split speaker: two speakers' upstream training utterances train; every utterance of the
    held-out speaker goes to dev and test alternately (C order); the others' upstream test
    utterances are left out (listed)."""
    utts = {"abiayi_a_1": "train", "abiayi_a_2": "train", "abiayi_a_3": "test",
            "kouarata_b_1": "train", "kouarata_b_2": "test", "kouarata_b_3": "train",
            "kouarata_b_4": "train", "kouarata_b_5": "test", "martial_c_1": "train",
            "martial_c_2": "test"}
    src = tmp_path / "staged"
    (src / "audio").mkdir(parents=True)
    for u in utts:
        sf.write(src / "audio" / f"{u}.flac", np.zeros(8000, np.float32), 16000)
    (src / "transcripts.txt").write_text("".join(f"{u} wó adí\n" for u in utts), encoding="utf-8")
    (src / "split.txt").write_text("".join(f"{u} {s}\n" for u, s in utts.items()))
    out = tmp_path / "spk"
    assert main(["prepare", "mboshi", "--src", str(src), "--out", str(out), "--split", "speaker"]) == 0
    sets = {n: DataDir.load(out / n) for n in ("train", "dev", "test")}
    assert sets["train"].utts == ["abiayi_a_1", "abiayi_a_2", "martial_c_1"]
    assert sets["dev"].utts == ["kouarata_b_1", "kouarata_b_3", "kouarata_b_5"]
    assert sets["test"].utts == ["kouarata_b_2", "kouarata_b_4"]
    assert (out / "local" / "left_out.txt").read_text() == "abiayi_a_3\nmartial_c_2\n"
    summary = json.loads((out / "local" / "summary.json").read_text())
    assert summary["split"] == "speaker" and summary["held_out"] == "kouarata"
    again = tmp_path / "again"
    assert main(["prepare", "mboshi", "--src", str(src), "--out", str(again), "--split", "speaker"]) == 0
    for n in ("train", "dev", "test"):
        assert (again / n / "wav.scp").read_text() == (out / n / "wav.scp").read_text()
    # another held-out speaker by --opt; an unknown one and a corpus without splits are refused
    assert main(["prepare", "mboshi", "--src", str(src), "--out", str(tmp_path / "m"), "--split",
                 "speaker", "--opt", "held_out=martial"]) == 0
    assert DataDir.load(tmp_path / "m" / "test").utts == ["martial_c_2"]
    assert main(["prepare", "mboshi", "--src", str(src), "--out", str(tmp_path / "x"), "--split",
                 "speaker", "--opt", "held_out=nobody"]) == 1
    assert "the speakers are ['abiayi', 'kouarata', 'martial']" in capsys.readouterr().err
    assert main(["prepare", "yesno", "--src", str(src), "--out", str(tmp_path / "y"),
                 "--split", "speaker"]) == 1
