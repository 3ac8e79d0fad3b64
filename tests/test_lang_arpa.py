"""ARPA files (acoustic_kd.lang.arpa.read_arpa / install_arpa): gzip read as plain text, and every
defect a one-line error with file:line, from `acoustic-kd lang --arpa` before any graph is built."""

from __future__ import annotations

import gzip

import pytest

from acoustic_kd.cli import main
from acoustic_kd.errors import DataError
from acoustic_kd.lang import read_arpa

GOOD = """\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-0.5 </s>
-99 <s> -0.2
-0.3 YES -0.1
-0.3 NO -0.1

\\2-grams:
-0.2 <s> YES
-0.4 YES NO

\\end\\
"""

# (what is wrong, the edit, the line named, words of the message)
BAD = [
    ("non-numeric log-probability", ("-0.3 YES -0.1", "x0.3 YES -0.1"), 8,
     "log10 probability 'x0.3' is not a number"),
    ("non-numeric backoff weight", ("-0.3 NO -0.1", "-0.3 NO abc"), 9, "backoff weight 'abc' is not a number"),
    ("positive log-probability", ("-0.4 YES NO", "0.4 YES NO"), 13, "log10 probability 0.4 is positive"),
    ("wrong ngram 1= count", ("ngram 1=4", "ngram 1=5"), 5, "'ngram 1=5' declared, but the \\1-grams: section holds 4"),
    ("wrong ngram 2= count", ("ngram 2=2", "ngram 2=3"), 11, "'ngram 2=3' declared, but the \\2-grams: section holds 2"),
    ("missing \\end\\", ("\\end\\\n", ""), 14, "no \\end\\ line"),
    ("missing \\data\\", ("\\data\\\n", ""), 14, "no \\data\\ section"),
    ("too many fields", ("-0.4 YES NO", "-0.4 YES NO NO -1 -2"), 13, "a 2-gram line needs"),
    ("undeclared order", ("\\2-grams:", "\\3-grams:"), 11, "section \\3-grams: is not the next order"),
    ("bad count line", ("ngram 2=2", "ngram two=2"), 3, "expected 'ngram N=COUNT'"),
]


def test_a_good_arpa_reads_plain_and_gzip(tmp_path):
    plain = tmp_path / "lm.arpa"
    plain.write_text(GOOD)
    with gzip.open(tmp_path / "lm.arpa.gz", "wt") as f:
        f.write(GOOD)
    probs, backoffs = read_arpa(plain)
    assert probs[1][("YES", "NO")] == -0.4 and backoffs[("<s>",)] == -0.2
    assert read_arpa(tmp_path / "lm.arpa.gz") == (probs, backoffs)


@pytest.mark.parametrize("what,edit,line,message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_arpa_names_file_and_line(tmp_path, what, edit, line, message):
    p = tmp_path / "lm.arpa"
    text = GOOD.replace(*edit)
    assert text != GOOD
    p.write_text(text)
    with pytest.raises(DataError) as e:
        read_arpa(p)
    assert e.value.line == line and e.value.path == str(p), str(e.value)
    assert message in str(e.value) and str(e.value).startswith(f"{p}:{line}: ")


def lang_args(tmp_path, arpa):
    d = tmp_path / "train"
    d.mkdir(exist_ok=True)
    (d / "text").write_text("u1 YES NO\nu2 NO\n")
    (tmp_path / "lex.txt").write_text("YES K EH N\nNO L OW\n")
    return ["lang", "--data", str(d), "--lexicon", str(tmp_path / "lex.txt"), "--arpa", str(arpa)]


def test_lang_installs_a_gzip_arpa_as_plain_text(tmp_path):
    with gzip.open(tmp_path / "lm.arpa.gz", "wt") as f:
        f.write(GOOD)
    assert main([*lang_args(tmp_path, tmp_path / "lm.arpa.gz"), "--out", str(tmp_path / "lang")]) == 0
    assert (tmp_path / "lang" / "G.arpa").read_text() == GOOD


@pytest.mark.parametrize("line,edit", [(8, ("-0.3 YES -0.1", "-0.3 MAYBE -0.1")),
                                       (13, ("-0.4 YES NO", "-0.4 YES PERHAPS"))])
def test_lang_refuses_an_lm_word_missing_from_the_lexicon_with_its_line(tmp_path, capsys, line, edit):
    arpa = tmp_path / "lm.arpa"
    arpa.write_text(GOOD.replace(*edit))
    assert main([*lang_args(tmp_path, arpa), "--out", str(tmp_path / "lang")]) == 1
    err = capsys.readouterr().err
    word = edit[1].split()[-2] if line == 8 else edit[1].split()[-1]
    assert f"{arpa}:{line}: word '{word}' is not in the lexicon (fix: add it to the lexicon" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "lang" / ".done").exists()
