"""Text encodings (acoustic_kd.utils.text_lines, the one text reader): a UTF-8 byte-order mark is
dropped wherever a text file is read, and bytes that are not UTF-8 are a one-line error with
file:line and the conversion to run, for every reader of a data dir, lexicon or ARPA file."""

from __future__ import annotations

import gzip

import pytest

from acoustic_kd.data import DataDir, fix_data_dir, validate_data_dir
from acoustic_kd.errors import DataError
from acoustic_kd.lang import load_lexicon, read_arpa
from acoustic_kd.utils import read_table, text_lines

BOM = b"\xef\xbb\xbf"
TABLES = {"wav.scp": b"a1 a1.wav\nb1 b1.wav\n", "text": b"a1 ONE TWO\nb1 CAF\xc3\x89\n",
          "utt2spk": b"a1 spk\nb1 spk\n", "spk2utt": b"spk a1 b1\n"}
LEXICON = b"CAF\xc3\x89 K AE F EY\nONE W AH N\nTWO T UW\n"
ARPA = b"\\data\\\nngram 1=3\n\n\\1-grams:\n-0.5 </s>\n-99 <s>\n-0.3 ONE\n\n\\end\\\n"


def data_dir(tmp_path, name: str, body: bytes):
    d = tmp_path / "d"
    d.mkdir()
    for f, b in TABLES.items():
        (d / f).write_bytes(body if f == name else b)
    return d


READERS = {   # file -> (its good bytes, how it is read, what a correct read gives)
    "text": (TABLES["text"], lambda p: DataDir.load(p.parent, corpus_root=p.parent).text["a1"],
             "ONE TWO"),
    "utt2spk": (TABLES["utt2spk"], lambda p: read_table(p)[0][:2], ("a1", "spk")),
    "wav.scp": (TABLES["wav.scp"], lambda p: validate_data_dir(p.parent), []),
    "lexicon.txt": (LEXICON, lambda p: sorted(load_lexicon(p))[0], "CAFÉ"),
    "lm.arpa": (ARPA, lambda p: sorted(read_arpa(p)[0][0]), [("</s>",), ("<s>",), ("ONE",)]),
}


def place(tmp_path, name: str, body: bytes):
    return data_dir(tmp_path, name, body) / name if name in TABLES else _write(tmp_path / name, body)


def _write(path, body: bytes):
    path.write_bytes(body)
    return path


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_byte_order_mark_is_dropped(tmp_path, name):
    good, read, expect = READERS[name]
    assert read(place(tmp_path, name, BOM + good)) == expect


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_latin1_byte_names_file_line_and_the_conversion(tmp_path, name):
    good, read, _ = READERS[name]
    lines = good.split(b"\n")
    lines[1] = lines[1] + b" caf\xe9"     # é in Latin-1: not UTF-8
    path = place(tmp_path, name, b"\n".join(lines))
    with pytest.raises(DataError) as e:
        read(path)
    assert str(e.value).startswith(f"{path}:2: not UTF-8: byte 0xe9 at column ")
    assert f"iconv -f latin1 -t utf-8 {name} > {name}.utf8" in str(e.value)
    assert "\n" not in str(e.value)


def test_bom_in_lexicon_keeps_its_first_word(tmp_path):
    """The first word of a lexicon saved with a BOM is the word, not '\\ufeffCAFÉ' (which made every
    CAFÉ of the transcripts an OOV)."""
    lex = load_lexicon(_write(tmp_path / "lex.txt", BOM + LEXICON))
    assert "CAFÉ" in lex and not any(w.startswith("\ufeff") for w in lex)


def test_bom_in_text_is_valid_and_fix_keeps_every_utterance(tmp_path):
    d = data_dir(tmp_path, "text", BOM + TABLES["text"])
    assert validate_data_dir(d, corpus_root=d) == []      # was: "not sorted" and an unknown id
    counts = fix_data_dir(d, corpus_root=d)
    assert counts == {"kept_utts": 2}
    assert (d / "text").read_bytes() == TABLES["text"]


def test_crlf_cr_and_gzip_read_the_same_lines(tmp_path):
    want = [(1, "a b"), (2, "c d")]
    for body in (b"a b\r\nc d\r\n", b"a b\rc d\r", BOM + b"a b\nc d"):
        assert list(text_lines(_write(tmp_path / "t", body))) == want
    with gzip.open(tmp_path / "t.gz", "wb") as f:
        f.write(BOM + b"a b\nc d\n")
    assert list(text_lines(tmp_path / "t.gz")) == want
