"""HmmModel: monophone construction, word HMM shapes, context trees, transitions, JSON round trip."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_kd.hmm import BOUNDARY, HmmModel
from acoustic_kd.lang import LangConfig, make_topology

PHONES = ["<eps>", "SIL", "SPN", "AH", "N", "W", "T", "UW"]


@pytest.fixture
def mono() -> HmmModel:
    return HmmModel.monophone(PHONES, make_topology(PHONES[1:], LangConfig()))


def test_monophone_layout(mono):
    assert mono.num_pdfs == 5 + 5 + 3 * 5
    assert mono.pdf_to_phone[0] == 1 and mono.pdf_to_state[4] == 4          # SIL states 0..4
    assert set(mono.pdf_to_phone.tolist()) == set(range(1, len(PHONES)))
    for k in range(mono.num_pdfs):  # each pdf belongs to exactly one (phone, state)
        p, s = PHONES[mono.pdf_to_phone[k]], mono.pdf_to_state[k]
        assert mono.pdf(BOUNDARY, p, BOUNDARY, int(s)) == k


def test_word_hmm_shapes(mono):
    w = mono.word_hmm(["W", "AH", "N"])
    assert [len(p) for p in w] == [3, 3, 3]
    pdf, ls, lf = w[1][2]
    assert mono.pdf_to_phone[pdf] == PHONES.index("AH") and mono.pdf_to_state[pdf] == 2
    assert np.isclose(np.exp(ls) + np.exp(lf), 1.0)
    assert len(mono.silence_hmm()) == 5
    assert mono.contexts(["W", "AH", "N"]) == [(BOUNDARY, "AH"), ("W", "N"), ("AH", BOUNDARY)]
    assert mono.contexts(["SPN"]) == [(BOUNDARY, BOUNDARY)]


def _tri(mono: HmmModel) -> HmmModel:
    """Split AH/1 on the left context being a stop ({T}) and then the right being N."""
    d = mono.to_dict()
    n = d["num_pdfs"]
    d["trees"]["AH/1"] = [{"pos": -1, "set": ["T"], "yes": 1, "no": 2},
                          {"pdf": d["trees"]["AH/1"][0]["pdf"]},
                          {"pos": 1, "set": ["N"], "yes": 3, "no": 4},
                          {"pdf": n}, {"pdf": n + 1}]
    d["log_self"] += [np.log(0.6)] * 2
    d["log_fwd"] += [np.log(0.4)] * 2
    return HmmModel.from_dict(d)


def test_tree_maps_any_context_to_a_leaf(mono):
    tri = _tri(mono)
    assert tri.num_pdfs == mono.num_pdfs + 2
    assert tri.pdf("T", "AH", "N", 1) == mono.pdf(BOUNDARY, "AH", BOUNDARY, 1)
    assert tri.pdf("W", "AH", "N", 1) == mono.num_pdfs
    assert tri.pdf("W", "AH", BOUNDARY, 1) == mono.num_pdfs + 1
    # contexts never seen anywhere (even unknown symbols) still land on a leaf of the right root
    for left in PHONES[1:] + [BOUNDARY, "ZH"]:
        for right in PHONES[1:] + [BOUNDARY]:
            k = tri.pdf(left, "AH", right, 1)
            assert tri.pdf_to_phone[k] == PHONES.index("AH") and tri.pdf_to_state[k] == 1
    # word-internal context: a word's pdfs do not depend on its neighbours
    assert tri.word_hmm(["W", "AH", "N"])[1][1][0] == mono.num_pdfs


def test_save_load_round_trip(mono, tmp_path):
    tri = _tri(mono)
    tri.update_transitions(np.full(tri.num_pdfs, 9.0), np.full(tri.num_pdfs, 1.0))
    tri.save(tmp_path / "final.hmm.json")
    back = HmmModel.load(tmp_path / "final.hmm.json")
    assert back.phones == tri.phones and back.num_pdfs == tri.num_pdfs
    np.testing.assert_array_equal(back.pdf_to_phone, tri.pdf_to_phone)
    np.testing.assert_array_equal(back.pdf_to_state, tri.pdf_to_state)
    np.testing.assert_allclose(back.log_self, np.log(0.9))
    assert back.word_hmm(["T", "AH", "N"]) == tri.word_hmm(["T", "AH", "N"])


def test_update_transitions_keeps_sparse_pdfs(mono):
    old = mono.log_self.copy()
    stay = np.zeros(mono.num_pdfs)
    fwd = np.zeros(mono.num_pdfs)
    stay[0], fwd[0] = 30, 10          # enough data: re-estimated to 0.75
    stay[1], fwd[1] = 1, 0            # too few: unchanged
    stay[2], fwd[2] = 100, 0          # all self-loops: floored, the forward arc survives
    mono.update_transitions(stay, fwd)
    assert np.isclose(np.exp(mono.log_self[0]), 0.75) and mono.log_self[1] == old[1]
    assert np.isclose(np.exp(mono.log_fwd[2]), 0.05)


def test_shared_pdf_rejected(mono):
    d = mono.to_dict()
    d["trees"]["AH/0"] = [{"pdf": 0}]  # pdf 0 is SIL/0
    with pytest.raises(Exception, match="shared"):
        HmmModel.from_dict(d)


def test_context_convention_saved_and_old_files_read_as_word_internal(mono, tmp_path):
    """final.hmm.json records the context convention; a file written before it existed (no key)
    is a word-internal model; an unknown value names the file and the key."""
    import json

    from acoustic_kd.errors import DataError

    cw = HmmModel.from_dict({**_tri(mono).to_dict(), "context": "cross-word"})
    cw.save(tmp_path / "cw.json")
    assert HmmModel.load(tmp_path / "cw.json").context == "cross-word"
    old = mono.to_dict()
    del old["context"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    back = HmmModel.load(tmp_path / "old.json")
    assert back.context == "word-internal" and back.context_free and not cw.context_free
    (tmp_path / "bad.json").write_text(json.dumps({**old, "context": "crossword"}))
    with pytest.raises(DataError, match=r"bad\.json: key 'context' is 'crossword'"):
        HmmModel.load(tmp_path / "bad.json")


def test_neighbours_as_each_convention_sees_them(mono):
    """Word-internal: silence / spoken noise next to a phone are the boundary; cross-word: the
    silence phone is itself (Kaldi's trees ask about it)."""
    cw = HmmModel.from_dict({**mono.to_dict(), "context": "cross-word"})
    assert [mono.neighbour(p) for p in ("SIL", "SPN", "AH")] == [BOUNDARY, BOUNDARY, "AH"]
    assert [cw.neighbour(p) for p in ("SIL", "SPN", "AH")] == ["SIL", "SPN", "AH"]
    assert mono.contexts(["W", "SPN", "N"])[0] == ("#", "#")
    assert cw.contexts(["W", "SPN", "N"])[0] == ("#", "SPN")
