"""Lexicon parsing, OOV policy, lang dir files and the ARPA grammar."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from acoustic_kd.errors import DataError
from acoustic_kd.lang import (LangConfig, cmudict_lexicon, estimate_ngram, load_lang, load_lexicon,
                              oov_report, position_dependent, prepare_lang, read_arpa, strip_stress)

TEXTS = {"u1": "ZERO ONE TWO", "u2": "TWO TWO OH", "u3": "ONE BANANA", "u4": "ZERO"}
OOV_OK = 0.2   # TEXTS holds 1 OOV in 9 running words on purpose: above the default ceiling of 10 %


@pytest.fixture
def lexfile(tmp_path):
    p = tmp_path / "lex.txt"
    p.write_text("ZERO Z IH1 R OW0\nZERO\tZ IY1 R OW0\nONE W AH1 N\nTWO T UW1\nOH OW1\n"
                 "ZERO Z IH1 R OW0\r\n")
    return p


def test_load_lexicon_multiple_prons_and_stress(lexfile):
    lex = load_lexicon(lexfile)
    assert lex["ZERO"] == [["Z", "IH1", "R", "OW0"], ["Z", "IY1", "R", "OW0"]]  # duplicate merged
    assert lex["TWO"] == [["T", "UW1"]]
    stripped = load_lexicon(lexfile, strip=True)
    assert stripped["ZERO"][1] == ["Z", "IY", "R", "OW"]
    assert strip_stress("AH0") == "AH" and strip_stress("T") == "T"


def test_lexiconp_probabilities_dropped_only_when_every_line_has_one(tmp_path):
    p = tmp_path / "lexiconp.txt"
    p.write_text("ONE 1.0 W AH1 N\nTWO 0.5 T UW1\nTWO 0.5 T UH1\n")
    assert load_lexicon(p) == {"ONE": [["W", "AH1", "N"]], "TWO": [["T", "UW1"], ["T", "UH1"]]}
    p.write_text("ONE 1.0 W AH1 N\nTWO T UW1\n")
    with pytest.raises(DataError, match=r"lexiconp.txt:1: '1.0' looks like a pronunciation probability"):
        load_lexicon(p)


def test_lexicon_errors_name_the_line(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("ONE W AH N\n\nTWO T UW\n")
    with pytest.raises(DataError, match=r"bad.txt:2"):
        load_lexicon(p)


def test_cmudict_lexicon_and_oov_report():
    lex, missing = cmudict_lexicon(["ZERO", "HELLO", "QWXZZ"])
    assert ["Z", "IH", "R", "OW"] in lex["ZERO"] and "HELLO" in lex
    assert missing == ["QWXZZ"]
    counts, per_utt = oov_report({"a": "ZERO QWXZZ QWXZZ", "b": "HELLO"}, lex)
    assert counts == {"QWXZZ": 2} and per_utt == {"a": ["QWXZZ", "QWXZZ"]}


def test_position_dependent():
    assert position_dependent(["K", "AE", "T"]) == ["K_B", "AE_I", "T_E"]
    assert position_dependent(["OW"]) == ["OW_S"]


def test_prepare_lang_unk_policy(tmp_path, lexfile):
    lang = prepare_lang(TEXTS, str(lexfile), tmp_path / "lang", max_oov_rate=OOV_OK)
    d = tmp_path / "lang"
    assert (d / "oov.txt").read_text() == "BANANA 1\n"
    assert (d / "oov_utts.txt").read_text() == "u3 BANANA\n"
    phones = [line.split()[0] for line in (d / "phones.txt").read_text().splitlines()]
    assert phones[:3] == ["<eps>", "SIL", "SPN"] and "IH" in phones and "IH1" not in phones
    words = (d / "words.txt").read_text().split()
    assert words[:2] == ["<eps>", "0"] and "<unk>" in words and "#0" in words
    assert lang.map_oov(["ONE", "BANANA"]) == (["ONE", "<unk>"], ["BANANA"])
    loaded = load_lang(d)
    assert loaded.phones == lang.phones and loaded.lexicon == lang.lexicon
    assert loaded.topo["SIL"]["num_states"] == 5 and loaded.topo["AH"]["num_states"] == 3
    assert loaded.topo["SIL"]["context_independent"] and loaded.unk_word == "<unk>"


def test_prepare_lang_skip_policy_and_positions(tmp_path, lexfile):
    cfg = LangConfig(oov_policy="skip", position_dependent=True)
    lang = prepare_lang(TEXTS, str(lexfile), tmp_path / "lang", cfg, max_oov_rate=OOV_OK)
    assert "SPN" not in lang.phones and lang.unk_word is None
    assert lang.map_oov(["ONE", "BANANA"]) == (["ONE", "BANANA"], ["BANANA"])
    assert lang.lexicon["ONE"] == [["W_B", "AH_I", "N_E"]] and lang.lexicon["OH"] == [["OW_S"]]


def _prob(probs, backoffs, w, hist):
    """log10 P(w | hist) under an ARPA backoff model."""
    ng = tuple(hist) + (w,)
    if ng in probs[len(ng) - 1]:
        return probs[len(ng) - 1][ng]
    return backoffs.get(tuple(hist), 0.0) + _prob(probs, backoffs, w, hist[1:])


@pytest.mark.parametrize("order", [1, 2, 3])
def test_arpa_normalised(tmp_path, lexfile, order):
    prepare_lang(TEXTS, str(lexfile), tmp_path / "lang", LangConfig(lm_order=order),
                 max_oov_rate=OOV_OK)
    probs, backoffs = read_arpa(tmp_path / "lang" / "G.arpa")
    assert len(probs) == order
    events = [ng[0] for ng in probs[0] if ng[0] != "<s>"]
    assert math.isclose(sum(10 ** probs[0][(w,)] for w in events), 1.0, rel_tol=1e-4)
    text = (tmp_path / "lang" / "G.arpa").read_text()
    assert text.lstrip().startswith("\\data\\") and text.rstrip().endswith("\\end\\")
    for n in range(2, order + 1):  # every history's backoff distribution sums to one
        hists = {ng[:-1] for ng in probs[n - 1]}
        for h in hists:
            total = sum(10 ** _prob(probs, backoffs, w, list(h)) for w in events)
            assert math.isclose(total, 1.0, rel_tol=1e-4), (h, total)


def test_unigram_is_add_one():
    probs, _ = estimate_ngram([["A", "A"], ["B"]], ["A", "B", "C"], 1)
    # counts A2 B1 C0 </s>2 (+1 each) over total 5 + 4
    assert math.isclose(10 ** probs[0][("C",)], 1 / 9) and math.isclose(10 ** probs[0][("A",)], 3 / 9)


def test_lang_cli_installs_a_user_arpa_and_rejects_unknown_words(tmp_path):
    from acoustic_kd.cli import main

    d = tmp_path / "train"
    d.mkdir()
    (d / "text").write_text("u1 YES NO\nu2 NO\n")
    lex = tmp_path / "lex.txt"
    lex.write_text("YES K EH N\nNO L OW\n")
    arpa = tmp_path / "lm.arpa"
    arpa.write_text("\\data\\\nngram 1=4\n\n\\1-grams:\n-0.5 </s>\n-99 <s>\n-0.3 YES\n-0.3 NO\n\n\\end\\\n")
    assert main(["lang", "--data", str(d), "--lexicon", str(lex), "--out", str(tmp_path / "lang"),
                 "--arpa", str(arpa)]) == 0
    assert (tmp_path / "lang" / "G.arpa").read_text() == arpa.read_text()
    bad = tmp_path / "bad.arpa"
    bad.write_text(arpa.read_text().replace("-0.3 NO", "-0.3 MAYBE"))
    assert main(["lang", "--data", str(d), "--lexicon", str(lex), "--out", str(tmp_path / "lang2"),
                 "--arpa", str(bad)]) == 1
    assert not (tmp_path / "lang2" / ".done").exists()


def lang_cli(tmp_path, text: str, lexicon: str, *extra: str) -> int:
    from acoustic_kd.cli import main

    d = tmp_path / "train"
    d.mkdir(exist_ok=True)
    (d / "text").write_text(text)
    (tmp_path / "lex.txt").write_text(lexicon)
    return main(["lang", "--data", str(d), "--lexicon", str(tmp_path / "lex.txt"),
                 "--out", str(tmp_path / "lang"), *extra])


@pytest.mark.parametrize("text,lexicon,hint", [
    ("u1 YES NO\nu2 NO NO\n", "yes K EH N\nno L OW\n", "in case only"),      # 100 %: lower-case lexicon
    ("u1 YES NO MAYBE\nu2 PERHAPS NO\n", "YES K EH N\nNO L OW\n", ""),        # 40 %: other words
])
def test_lang_stops_above_the_oov_rate_naming_rate_and_words(tmp_path, capsys, text, lexicon, hint):
    assert lang_cli(tmp_path, text, lexicon) == 1
    err = capsys.readouterr().err
    total = len(text.split()) - 2
    oov = [w for w in text.split() if not w.startswith("u") and w not in lexicon.split()]
    rate = 100 * len(oov) / total
    assert f"lex.txt: {rate:.1f} % of the {total} running transcript words are not in the lexicon" in err
    top = Counter(oov).most_common(1)[0][0]
    assert f"most frequent: {top}" in err and "--max-oov-rate (now 0.1)" in err
    assert (hint in err) and not (tmp_path / "lang" / ".done").exists()
    assert lang_cli(tmp_path, text, lexicon, "--max-oov-rate", "1") == 0   # allowed on purpose


def test_lang_passes_below_the_oov_rate_and_checks_the_option(tmp_path, capsys):
    text = "".join(f"u{i} YES NO YES NO YES\n" for i in range(4)) + "u9 YES NO MAYBE\n"
    assert lang_cli(tmp_path, text, "YES K EH N\nNO L OW\n") == 0           # 1 in 23 words: 4.3 %
    assert (tmp_path / "lang" / "oov.txt").read_text() == "MAYBE 1\n"
    with pytest.raises(SystemExit) as e:   # an option out of range: argparse's exit 2, one line
        lang_cli(tmp_path, text, "YES K EH N\nNO L OW\n", "--max-oov-rate", "5", "--force")
    assert e.value.code == 2
    assert "argument --max-oov-rate: '5': expected a number in [0, 1]" in capsys.readouterr().err
