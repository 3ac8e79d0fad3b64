"""LibriSpeech preparation on a tiny generated LibriSpeech tree (FLAC written here, never downloaded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acoustic_kd.cli import main
from acoustic_kd.corpora import CORPORA
from acoustic_kd.corpora.librispeech import download_url, prepare_librispeech, read_speakers
from acoustic_kd.data import DataDir, validate_data_dir
from acoustic_kd.errors import DataError

SR = 16000
SPEAKERS = """; comment line
;ID  |SEX| SUBSET           |MINUTES| NAME
19   | F | train-clean-5    | 25.19 | Kara Shallenberg
26   | M | train-clean-5    | 25.08 | Denny Sayers
1272 | M | dev-clean-2      |  8.08 | John Rose
1462 | F | dev-clean-2      |  8.08 | E. Tavano
2035 | F | dev-clean-2      |  8.08 | Sharon Bautista
2412 | M | dev-clean-2      |  8.08 | Daniel|Anonymous
"""
# (set, speaker, chapter): transcripts, one per utterance
TREE = {
    ("train-clean-5", "19", "198"): ["HELLO WORLD", "DON'T STOP", "ZYXWQ HELLO"],
    ("train-clean-5", "26", "495"): ["THE CAT", "ZYXWQ"],
    ("dev-clean-2", "1272", "128104"): ["A DOG"],
    ("dev-clean-2", "1462", "170138"): ["THE END"],
    ("dev-clean-2", "2035", "147960"): ["GOOD NIGHT"],
    ("dev-clean-2", "2412", "153948"): ["HELLO AGAIN"],
}


def make_tree(root: Path, speakers: bool = True) -> Path:
    """A LibriSpeech/ folder as the OpenSLR tarballs unpack, 0.1-0.3 s FLACs of noise."""
    src = root / "LibriSpeech"
    rng = np.random.default_rng(0)
    for (subset, spk, chap), texts in TREE.items():
        d = src / subset / spk / chap
        d.mkdir(parents=True)
        lines = []
        for i, text in enumerate(texts):
            utt = f"{spk}-{chap}-{i:04d}"
            noise = 0.1 * rng.standard_normal(SR // 10 * (i + 1))
            sf.write(d / f"{utt}.flac", noise.astype(np.float32), SR)
            lines.append(f"{utt} {text}\n")
        (d / f"{spk}-{chap}.trans.txt").write_text("".join(lines))
    if speakers:
        (src / "SPEAKERS.TXT").write_text(SPEAKERS)
    return src


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path / "corpus")


def test_prepare_mini_librispeech_carves_test_by_speaker(tree, tmp_path):
    out = prepare_librispeech(tree.parent, tmp_path / "data")
    assert set(out) == {"train", "dev", "test", "lexicon"}
    sets = {s: DataDir.load(out[s]) for s in ("train", "dev", "test")}
    for s in sets:
        assert validate_data_dir(out[s]) == []
    train = sets["train"]
    assert train.utts == ["19-198-0000", "19-198-0001", "19-198-0002", "26-495-0000", "26-495-0001"]
    assert train.text["19-198-0001"] == "DON'T STOP" and train.utt2spk["26-495-0000"] == "26"
    assert train.spk2gender == {"19": "f", "26": "m"}
    wav = Path(train.wav_scp["19-198-0002"])
    assert wav.is_absolute() and wav == (tree / "train-clean-5/19/198/19-198-0002.flac").resolve()
    assert train.utt2dur["19-198-0002"] == pytest.approx(0.3)
    # dev speakers in (gender, id) order f:1462 f:2035 m:1272 m:2412 -> every second one to test
    assert set(sets["dev"].utt2spk.values()) == {"1462", "1272"}
    assert set(sets["test"].utt2spk.values()) == {"2035", "2412"}
    assert sorted(sets["test"].spk2gender.values()) == ["f", "m"]
    lex = (tmp_path / "data/local/lexicon.txt").read_text().splitlines()
    assert "DON'T D OW1 N T" in lex and "HELLO HH AH0 L OW1" in lex
    assert {ln.split()[0] for ln in lex} >= {"A", "AGAIN", "DOG", "END", "GOOD", "NIGHT", "THE"}
    assert (tmp_path / "data/local/oov_words.txt").read_text() == "ZYXWQ 2\n"
    summary = json.loads((tmp_path / "data/local/summary.json").read_text())
    assert summary["test_carved_from_dev"] and summary["oov_tokens"] == 2
    assert summary["sets"]["train"]["utts"] == 5 and summary["sets"]["test"]["speakers"] == 2
    assert (tmp_path / "data/local/skipped_files.txt").read_text() == ""
    assert validate_data_dir(out["test"], check_audio=True) == []


def test_rerun_is_skipped_unless_forced(tree, tmp_path):
    prepare_librispeech(tree, tmp_path / "data")
    (tmp_path / "data/train/text").write_text("changed\n")
    prepare_librispeech(tree, tmp_path / "data")
    assert (tmp_path / "data/train/text").read_text() == "changed\n"
    prepare_librispeech(tree, tmp_path / "data", force=True)
    assert (tmp_path / "data/train/text").read_text().startswith("19-198-0000 HELLO WORLD\n")


def test_strays_are_listed_and_genders_optional(tmp_path):
    src = make_tree(tmp_path / "c", speakers=False)
    chap = src / "train-clean-5/19/198"
    (chap / "19-198-0000.flac").unlink()          # transcript line without audio
    sf.write(chap / "19-198-0009.flac", np.zeros(800, np.float32), SR)  # audio without transcript
    (src / "train-clean-5" / "19" / "notes.txt").write_text("x")  # stray file beside a chapter
    out = prepare_librispeech(src, tmp_path / "data", train_sets="train-clean-5",
                              dev_sets=["dev-clean-2"], test_sets=())
    train = DataDir.load(out["train"])
    assert train.spk2gender is None and "19-198-0000" not in train.utt2spk
    skipped = (tmp_path / "data/local/skipped_files.txt").read_text().splitlines()
    assert len(skipped) == 3 and "notes.txt\tnot a <spk>/<chapter>/ folder" in skipped[0]
    assert "FLAC is missing" in skipped[1] and "no transcript line" in skipped[2]


def test_named_test_set_is_used_as_is(tree, tmp_path):
    shutil.copytree(tree / "dev-clean-2", tree / "test-clean")
    out = prepare_librispeech(tree, tmp_path / "data", test_sets="test-clean")
    dev, test = DataDir.load(out["dev"]), DataDir.load(out["test"])
    assert len(dev.utt2spk) == len(test.utt2spk) == 4
    assert test.wav_scp["1272-128104-0000"].endswith("test-clean/1272/128104/1272-128104-0000.flac")


def test_errors_name_the_fix(tree, tmp_path):
    with pytest.raises(DataError, match="resources/12/test-clean.tar.gz"):
        prepare_librispeech(tree, tmp_path / "o", test_sets=["test-clean"])
    with pytest.raises(DataError, match="more than one role"):
        prepare_librispeech(tree, tmp_path / "o", dev_sets="train-clean-5")
    bad = tree / "dev-clean-2/1272/128104/1272-128104.trans.txt"
    bad.write_text("9999-1-0000 WRONG ID\n")
    with pytest.raises(DataError, match=r"trans.txt:1: expected '1272-128104-<n> WORDS"):
        prepare_librispeech(tree, tmp_path / "o")
    assert download_url("dev-clean-2") == "https://www.openslr.org/resources/31/dev-clean-2.tar.gz"
    assert read_speakers(tree / "SPEAKERS.TXT")["2412"] == "m"


def test_cli_prepare_librispeech(tree, tmp_path, capsys):
    assert "librispeech" in CORPORA
    rc = main(["prepare", "librispeech", "--src", str(tree.parent), "--out", str(tmp_path / "data"),
               "--opt", "train_sets=train-clean-5", "--opt", "dev_sets=[dev-clean-2]"])
    assert rc == 0 and "prepared librispeech" in capsys.readouterr().out
    assert (tmp_path / "data" / ".prepare_librispeech.done").exists()
