"""Scoring reference values: edit distance, Kaldi WER/CER/SER lines, PARTIAL, errs files, the
score-file parser, frame accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_kd.cli import main
from acoustic_kd.decode.score import (align_words, chars_of, edit_counts, format_errs, frame_accuracy,
                                     parse_score_text, read_wer_file, score, score_files, wer)
from acoustic_kd.errors import DataError


@pytest.mark.parametrize("ref,hyp,counts", [
    ("a b c", "a b c", dict(cor=3, sub=0, ins=0, dele=0)),
    ("a b c", "a x c", dict(cor=2, sub=1, ins=0, dele=0)),
    ("", "a b", dict(cor=0, sub=0, ins=2, dele=0)),
    ("a b", "", dict(cor=0, sub=0, ins=0, dele=2)),
    ("", "", dict(cor=0, sub=0, ins=0, dele=0)),
    ("a b c d", "b c d e", dict(cor=3, sub=0, ins=1, dele=1)),
    ("a b", "x a b y z", dict(cor=2, sub=0, ins=3, dele=0)),
    ("a b c", "c", dict(cor=1, sub=0, ins=0, dele=2)),
])
def test_edit_counts_reference_values(ref, hyp, counts):
    c = edit_counts(ref.split(), hyp.split())
    assert c == {"cor": counts["cor"], "sub": counts["sub"], "ins": counts["ins"], "del": counts["dele"]}


def test_alignment_pairs_words():
    assert align_words(["a", "b", "c"], ["a", "c", "c", "d"]) == [
        ("a", "a", "C"), ("b", "c", "S"), ("c", "c", "C"), ("***", "d", "I")]
    # equal-cost alternatives (2 sub vs 1 del + 1 ins) resolve as Kaldi's compute-wer does
    assert [op for _, _, op in align_words(["a", "b", "c"], ["a", "c", "d"])] == ["C", "D", "C", "I"]
    # "***" is only the display filler: a word spelled so is still matched as a word
    assert align_words(["***", "b"], ["***"]) == [("***", "***", "C"), ("b", "***", "D")]


def test_kaldi_format_lines():
    refs = {"u1": "a b c d".split(), "u2": "e f".split(), "u3": "g".split()}
    hyps = {"u1": "a x c".split(), "u2": "e f z".split(), "u3": ["g"]}
    res, _ = score(refs, hyps)
    assert (res.ins, res.dels, res.subs, res.ref_words) == (1, 1, 1, 7)
    lines = res.kaldi_lines().splitlines()
    assert lines[0] == "%WER 42.86 [ 3 / 7, 1 ins, 1 del, 1 sub ]"
    assert lines[1] == "%SER 66.67 [ 2 / 3 ]"


def test_partial_scores_missing_as_deletions():
    res, _ = score({"u1": ["a", "b"], "u2": ["c", "d", "e"]}, {"u1": ["a", "b"]})
    assert res.missing == ["u2"]
    assert res.kaldi_lines().splitlines()[0] == "%WER 60.00 [ 3 / 5, 0 ins, 3 del, 0 sub ] [PARTIAL]"
    assert "1 not present in hyp" in res.kaldi_lines()


def test_hyp_without_ref_is_an_error():
    with pytest.raises(DataError, match="no reference"):
        score({"u1": ["a"]}, {"u1": ["a"], "u9": ["b"]})


def test_empty_reference_corpus():
    assert wer([[]], [[]])["wer"] == 0.0
    assert wer([[]], [["a"]])["wer"] == float("inf")
    assert wer([["a", "b"]], [[]])["wer"] == 100.0


def test_errs_file_layout():
    _, aligned = score({"u1": ["seven", "no"]}, {"u1": ["yes", "no", "oh"]})
    assert format_errs(aligned).splitlines() == [
        "u1 ref  seven no ***", "u1 hyp  yes   no oh", "u1 op   S     C  I", "u1 #csid 1 1 1 0"]


def test_frame_accuracy_from_posteriors_or_ids():
    alis = {"a": np.array([0, 1, 1]), "b": np.array([2, 2]), "c": np.array([0])}
    post = {"a": np.log(np.array([[.9, .1, 0], [.2, .8, 0], [.6, .4, 0]]) + 1e-9), "b": np.array([2, 0])}
    fa = frame_accuracy(post, alis)
    assert fa["acc"] == pytest.approx(3 / 5)
    assert (fa["frames"], fa["utts"], fa["missing"]) == (5, 2, 1)


def test_score_cli(tmp_path, capsys):
    (tmp_path / "ref").write_text("u1 a b c\nu2 d\nu3\n")
    (tmp_path / "hyp").write_text("u1 a c\nu3 x\n")
    assert main(["score", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("%WER 75.00 [ 3 / 4, 1 ins, 2 del, 0 sub ] [PARTIAL]")
    assert (tmp_path / "wer").read_text() + (tmp_path / "cer").read_text() == out
    assert "%CER 75.00 [ 3 / 4, 1 ins, 2 del, 0 sub ] [PARTIAL]" in out
    assert "u2 ref  d" in (tmp_path / "errs.txt").read_text()
    assert "u2 ref  d" in (tmp_path / "cer_errs.txt").read_text()
    assert (tmp_path / "missing.txt").read_text() == "u2\n"


def test_chars_of_drops_spaces_and_keeps_combining_marks():
    assert chars_of(["kyéma", "wó"]) == list("kyémawó")
    assert chars_of(["e\u0301b"]) == ["\u00e9", "b"]            # NFC composes e + acute
    assert chars_of(["\u025b\u0301"]) == ["\u025b\u0301"]          # open e + acute: no precomposed form
    assert chars_of([]) == []


def test_cer_reference_values():
    # ref "kyéma wó" = 7 characters; hyp "kyema wo": 2 substitutions
    res, aligned = score({"u1": ["kyéma", "wó"]}, {"u1": ["kyema", "wo"]}, chars=True)
    assert (res.subs, res.ins, res.dels, res.ref_words) == (2, 0, 0, 7)
    assert res.kaldi_lines().splitlines()[0] == "%CER 28.57 [ 2 / 7, 0 ins, 0 del, 2 sub ]"
    assert res.to_dict()["cer"] == pytest.approx(200 / 7)
    # a word split in two is 1 sub + 1 ins in WER but 0 errors in CER
    assert wer([["ab"]], [["a", "b"]])["wer"] == 200.0
    assert wer([["ab"]], [["a", "b"]], chars=True)["cer"] == 0.0
    # one wrong word of three characters among 12: 25 % CER and 25 % WER over 4 words
    refs, hyps = {"u": "abc def ghi jkl".split()}, {"u": "abc xyz ghi jkl".split()}
    assert score(refs, hyps)[0].rate == pytest.approx(25.0)
    assert score(refs, hyps, chars=True)[0].kaldi_lines().startswith("%CER 25.00 [ 3 / 12, 0 ins")


def test_score_file_parser_round_trip(tmp_path):
    (tmp_path / "ref").write_text("u1 a b c d\nu2 e f\n")
    (tmp_path / "hyp").write_text("u1 a x c\n")
    res = score_files(tmp_path / "ref", tmp_path / "hyp", tmp_path)
    for kind in ("wer", "cer"):
        back = read_wer_file(tmp_path / kind)
        r = res[kind]
        assert (back.label, back.errors, back.ref_tokens, back.ins, back.dels, back.subs) == \
            (r.label, r.errors, r.ref_words, r.ins, r.dels, r.subs)
        assert back.rate == pytest.approx(round(r.rate, 2)) and back.partial
        assert back.ser == 100.0
    got = parse_score_text("%WER 1.23 [ 12 / 975, 2 ins, 3 del, 7 sub ]\n")
    assert (got.rate, got.errors, got.ref_tokens, got.ins, got.dels, got.subs, got.partial, got.ser) == \
        (1.23, 12, 975, 2, 3, 7, False, None)
    assert parse_score_text("%WER inf [ 2 / 0, 2 ins, 0 del, 0 sub ]").rate == float("inf")
    assert parse_score_text("no rate here") is None
    assert read_wer_file(tmp_path / "absent") is None
