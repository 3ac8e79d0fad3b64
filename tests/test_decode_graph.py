"""Graph building: ARPA -> G, HL with optional silence, composed graph accepts the right words."""

from __future__ import annotations

import math

import kaldifst as kf
import numpy as np
import pytest

from acoustic_kd.decode.decoder import Graph, decode_utterance
from acoustic_kd.decode.grammar_fst import arpa_to_fst
from acoustic_kd.decode.graph import build_graph, with_word_penalty
from acoustic_kd.errors import ConfigError
from acoustic_kd.lang import read_arpa
from test_decode_fakes import FakeHmm, alignment, perfect_loglikes, unigram_arpa, write_lang

LEX = {"NO": [["N", "OW"]], "YES": [["Y", "EH", "S"]], "TWO": [["T", "UW"], ["T", "OW"]]}
PHONES = ["SIL", "EH", "N", "OW", "S", "T", "UW", "Y"]
BIGRAM = """\\data\\
ngram 1=5
ngram 2=3

\\1-grams:
-1.0\t</s>
-99\t<s>\t-0.3
-0.5\tNO\t-0.2
-0.6\tYES\t-0.1
-0.7\tTWO\t-0.4

\\2-grams:
-0.05\t<s> YES
-0.2\tYES NO
-0.3\tNO </s>

\\end\\
"""


def path_cost(g: kf.StdVectorFst, word_ids: list[int]) -> float:
    """Cost of the best path of G that accepts exactly `word_ids`."""
    text = "".join(f"{i} {i + 1} {w} {w}\n" for i, w in enumerate(word_ids)) + f"{len(word_ids)}\n"
    lin = kf.compile(text)
    kf.arcsort(lin, sort_type="olabel")
    kf.arcsort(g, sort_type="ilabel")
    best = kf.shortest_path(kf.compose(lin, g))
    return kf.get_linear_symbol_sequence(best)[3].value


def test_arpa_bigram_costs(tmp_path):
    (tmp_path / "G.arpa").write_text(BIGRAM)
    ids = {"NO": 1, "TWO": 2, "YES": 3}
    g = arpa_to_fst(*read_arpa(tmp_path / "G.arpa"), ids)
    ln = math.log(10)
    # <s> YES NO </s>: all explicit bigrams
    assert path_cost(g, [3, 1]) == pytest.approx((0.05 + 0.2 + 0.3) * ln, abs=1e-4)
    # <s> NO: backoff(<s>) + p(NO); NO TWO: backoff(NO) + p(TWO); TWO </s>: backoff(TWO) + p(</s>)
    assert path_cost(g, [1, 2]) == pytest.approx((0.3 + 0.5 + 0.2 + 0.7 + 0.4 + 1.0) * ln, abs=1e-4)


def test_arpa_unigram_word_loop(tmp_path):
    (tmp_path / "G.arpa").write_text(unigram_arpa(["NO", "YES"], end_lp=-0.5))
    g = arpa_to_fst(*read_arpa(tmp_path / "G.arpa"), {"NO": 1, "YES": 2})
    assert g.num_states == 1
    assert path_cost(g, [2, 1, 1]) == pytest.approx((3 * math.log10(2) + 0.5) * math.log(10), abs=1e-4)


def test_arpa_unknown_word_is_an_error(tmp_path):
    (tmp_path / "G.arpa").write_text(unigram_arpa(["NO", "MAYBE"]))
    with pytest.raises(Exception, match="MAYBE"):
        arpa_to_fst(*read_arpa(tmp_path / "G.arpa"), {"NO": 1})


@pytest.fixture
def graph(tmp_path):
    hmm = FakeHmm(PHONES)
    lang = write_lang(tmp_path / "lang", LEX, BIGRAM, sil_prob=0.3)
    build_graph(lang, hmm, tmp_path / "graph")
    return Graph.load(tmp_path / "graph"), hmm


@pytest.mark.parametrize("phones,words", [
    (["SIL", "Y", "EH", "S", "N", "OW", "SIL"], ["YES", "NO"]),
    (["Y", "EH", "S", "SIL", "N", "OW"], ["YES", "NO"]),
    (["T", "OW", "T", "UW", "SIL"], ["TWO", "TWO"]),
    (["SIL"], []),
])
def test_perfect_loglikes_decode_to_the_words(graph, phones, words):
    g, hmm = graph
    ali = alignment(hmm, phones, frames_per_state=2)
    res = decode_utterance(g.fst, perfect_loglikes(ali, hmm.num_pdfs),
                           silence_pdfs=g.info["silence_pdfs"])
    assert res.reached_final
    assert [g.words[i] for i in res.word_ids] == words
    assert res.acoustic_cost == pytest.approx(0.0, abs=1e-4)
    if words == ["YES", "NO"] and phones[0] == "SIL":
        assert res.word_frames == [(6, 24), (24, 36)]     # SIL 3 states x 2 frames first


def test_graph_is_cached_and_rebuilt_on_change(tmp_path):
    hmm = FakeHmm(PHONES)
    lang = write_lang(tmp_path / "lang", LEX, BIGRAM)
    fst = build_graph(lang, hmm, tmp_path / "graph")
    mtime = fst.stat().st_mtime_ns
    assert build_graph(lang, hmm, tmp_path / "graph").stat().st_mtime_ns == mtime
    (lang / "G.arpa").write_text(unigram_arpa(["NO", "TWO", "YES"]))
    build_graph(lang, hmm, tmp_path / "graph")
    assert fst.stat().st_mtime_ns != mtime
    assert (tmp_path / "graph" / "words.txt").read_text() == (lang / "words.txt").read_text()


def test_word_penalty_adds_per_word(graph):
    g, hmm = graph
    ll = perfect_loglikes(alignment(hmm, ["Y", "EH", "S", "N", "OW"]), hmm.num_pdfs)
    base = decode_utterance(g.fst, ll)
    pen = decode_utterance(with_word_penalty(g.fst, 1.5), ll)
    assert pen.word_ids == base.word_ids
    assert pen.graph_cost == pytest.approx(base.graph_cost + 1.5 * 2, abs=1e-4)


def test_mkgraph_cli_with_real_lang_and_hmm(tmp_path, capsys):
    """`acoustic-kd lang` output + a monophone HmmModel -> graph that decodes perfect loglikes."""
    from acoustic_kd.cli import main
    from acoustic_kd.hmm import HmmModel
    from acoustic_kd.lang import prepare_lang

    (tmp_path / "lexicon.txt").write_text("NO N OW\nYES Y EH S\n")
    lang = prepare_lang({"u1": "YES NO", "u2": "NO NO YES"}, str(tmp_path / "lexicon.txt"),
                        tmp_path / "lang")
    hmm = HmmModel.monophone(lang.phones, lang.topo, lang.silence_phone)
    hmm.save(tmp_path / "final.hmm.json")
    assert main(["mkgraph", "--lang", str(tmp_path / "lang"), "--model",
                 str(tmp_path / "final.hmm.json")]) == 0
    assert "states" in capsys.readouterr().out
    g = Graph.load(tmp_path / "graph")
    ali = [p for st in hmm.silence_hmm() for p in [st[0]] * 2]
    for w in ("NO", "YES", "YES"):
        ali += [st[0] for ph in hmm.word_hmm(lang.lexicon[w][0]) for st in ph for _ in range(2)]
    res = decode_utterance(g.fst, perfect_loglikes(ali, hmm.num_pdfs), silence_pdfs=g.info["silence_pdfs"])
    assert [g.words[i] for i in res.word_ids] == ["NO", "YES", "YES"]


# ------------------------------------------------------------------ determinized graph
def test_lexicon_disambig_marks_prefixes_and_homophones():
    from acoustic_kd.decode.lexicon_fst import lexicon_disambig

    seqs = [(1, 2), (1, 2), (1, 2, 3), (4,), (1,), (5, 6)]
    # (1, 2) twice: #1 and #2 (and a prefix of (1, 2, 3)); (1,) is a prefix; the rest need none
    assert lexicon_disambig(seqs) == [1, 2, 0, 0, 1, 0]


def _trigram_lang(tmp_path, rng):
    from acoustic_kd.lang import write_arpa

    lex = {"NO": [["N", "OW"]], "KNOW": [["N", "OW"]], "NOT": [["N", "OW", "T"]],
           "TWO": [["T", "UW"], ["T", "OW"]], "YES": [["Y", "EH", "S"]], "OWE": [["OW"]]}
    words = sorted(lex)
    sents = [list(rng.choice(words, size=int(rng.integers(1, 5)))) for _ in range(40)]
    write_arpa(tmp_path / "lm.arpa", sents, words, order=3)
    return write_lang(tmp_path / "lang", lex, (tmp_path / "lm.arpa").read_text(), sil_prob=0.4)


@pytest.mark.parametrize("seed", range(4))
def test_determinized_graph_decodes_like_the_plain_composition(tmp_path, seed):
    """Same best cost and words as HL∘G on random scores (homophones, prefix words, trigram,
    random self-loop probabilities), and fewer states."""
    from acoustic_kd.decode.graph import GraphConfig

    rng = np.random.default_rng(seed)
    hmm = FakeHmm(PHONES, rng=rng)
    lang = _trigram_lang(tmp_path, rng)
    det = Graph.load(build_graph(lang, hmm, tmp_path / "det").parent)
    plain = Graph.load(build_graph(lang, hmm, tmp_path / "plain", GraphConfig(determinize=False)).parent)
    assert det.info["determinized"] and not plain.info["determinized"]
    assert det.fst.num_states < plain.fst.num_states
    assert det.info["sizes"]["LG_min"][0] <= det.info["sizes"]["LG_det"][0]
    for _ in range(3):
        ll = rng.normal(0, 3, size=(int(rng.integers(8, 40)), hmm.num_pdfs)).astype(np.float32)
        a = decode_utterance(det.fst, ll, beam=1e4, max_active=10**6)
        b = decode_utterance(plain.fst, ll, beam=1e4, max_active=10**6)
        assert a.reached_final == b.reached_final
        # minimization quantizes weights to 1/1024 (Kaldi's delta): a few such steps per path
        assert a.cost == pytest.approx(b.cost, abs=0.01)
        assert [det.words[w] for w in a.word_ids] == [plain.words[w] for w in b.word_ids]


def test_determinized_graph_word_times_are_exact(tmp_path):
    rng = np.random.default_rng(0)
    hmm = FakeHmm(PHONES)
    g = Graph.load(build_graph(_trigram_lang(tmp_path, rng), hmm, tmp_path / "det").parent)
    phones = ["SIL", "N", "OW", "T", "T", "UW", "SIL", "Y", "EH", "S", "SIL"]
    ali = alignment(hmm, phones, frames_per_state=2)
    res = decode_utterance(g.fst, perfect_loglikes(ali, hmm.num_pdfs), align=g.align)
    assert [g.words[w] for w in res.word_ids] == ["NOT", "TWO", "YES"]
    assert res.word_frames == [(6, 24), (24, 36), (42, 60)]


def test_word_frames_matches_chains_with_optional_silence():
    from acoustic_kd.decode.search import word_frames

    lex = {"silence": [0, 1], "words": {"5": [[2, 3]], "6": [[4], [2]]}}
    # SIL SIL | w5: 2 2 3 | w6 (pron [2]): 2 | SIL 0 1 1
    pdfs = [0, 1, 2, 2, 3, 2, 0, 1, 1]
    assert word_frames(pdfs, [5, 6], lex) == [(2, 5), (5, 6)]
    assert word_frames(pdfs[:4], [5], lex) is None                 # stops inside the word
    assert word_frames(pdfs[:4], [5], lex, partial=True) == [(2, 4)]
    assert word_frames([0, 1], [], lex) == []
    assert word_frames([4, 4], [5], lex) is None


def test_cross_word_graph_equals_word_internal_for_a_monophone_hmm(tmp_path):
    """With context-free (monophone) pdfs, cross-word context changes nothing: same best cost,
    words and word times as the word-internal graph on random scores."""
    from acoustic_kd.decode.graph import GraphConfig
    from acoustic_kd.hmm import HmmModel

    rng = np.random.default_rng(3)
    lang = _trigram_lang(tmp_path, rng)
    phones = ["<eps>"] + PHONES
    topo = {p: {"num_states": 3, "self_loop_prob": list(rng.uniform(0.3, 0.9, 3)),
                "context_independent": p == "SIL"} for p in PHONES}
    hmm = HmmModel.monophone(phones, topo)
    wi = Graph.load(build_graph(lang, hmm, tmp_path / "wi").parent)
    cw = Graph.load(build_graph(lang, hmm, tmp_path / "cw", GraphConfig(context="cross-word")).parent)
    assert "CLG" in cw.info["sizes"] and "pdf_key" in cw.align
    for _ in range(4):
        ll = rng.normal(0, 3, size=(int(rng.integers(8, 40)), hmm.num_pdfs)).astype(np.float32)
        a = decode_utterance(cw.fst, ll, beam=1e4, max_active=10**6, align=cw.align)
        b = decode_utterance(wi.fst, ll, beam=1e4, max_active=10**6, align=wi.align)
        assert a.cost == pytest.approx(b.cost, abs=0.01)
        assert [cw.words[w] for w in a.word_ids] == [wi.words[w] for w in b.word_ids]
        assert a.word_frames == b.word_frames


def test_cross_word_graph_uses_the_neighbouring_words_phones(tmp_path):
    """OW's first state is tied by its left phone (N vs anything else). After a word ending in N,
    only the cross-word graph (of the tree as a cross-word HMM) lets the word OWE use the after-N
    pdf; its word times are exact. The same tree as a word-internal HMM gets HL∘G by default,
    and a graph of the other context is refused for either."""
    from acoustic_kd.decode.graph import GraphConfig
    from acoustic_kd.hmm import HmmModel

    lex = {"EHN": [["EH", "N"]], "OWE": [["OW"]], "NO": [["N", "OW"]]}
    lang = write_lang(tmp_path / "lang", lex, unigram_arpa(sorted(lex)), sil_prob=0.3)
    topo = {p: {"num_states": 3, "self_loop_prob": [0.6] * 3, "context_independent": p == "SIL"}
            for p in PHONES}
    d = HmmModel.monophone(["<eps>"] + PHONES, topo).to_dict()
    after_n = len(d["log_self"])
    d["trees"]["OW/0"] = [{"pos": -1, "set": ["N"], "yes": 1, "no": 2}, {"pdf": after_n},
                          d["trees"]["OW/0"][0]]
    d["log_self"].append(d["log_self"][0])
    d["log_fwd"].append(d["log_fwd"][0])
    hmm = HmmModel.from_dict({**d, "context": "cross-word"})
    word_internal = HmmModel.from_dict(d)      # a file without the key: word-internal
    chain = lambda ph, left="#": [k for k, _, _ in hmm.phone_hmm(ph, left, "#")]  # noqa: E731
    ali = [k for k in chain("SIL") for _ in range(2)] + \
        [k for k in chain("EH") + chain("N", "EH") + chain("OW", "N") + chain("SIL") for _ in range(2)]
    ll = perfect_loglikes(ali, hmm.num_pdfs, low=-8.0)
    cw = Graph.load(build_graph(lang, hmm, tmp_path / "cw").parent)
    wi = Graph.load(build_graph(lang, word_internal, tmp_path / "wi").parent)
    assert "CLG" in cw.info["sizes"] and "CLG" not in wi.info["sizes"]
    assert (cw.info["config"]["context"], wi.info["config"]["context"]) == ("cross-word",
                                                                            "word-internal")
    for model, other in ((hmm, "word-internal"), (word_internal, "cross-word")):
        with pytest.raises(ConfigError, match=f"trained with {model.context} context but a {other}"):
            build_graph(lang, model, tmp_path / "x", GraphConfig(context=other))
    a = decode_utterance(cw.fst, ll, align=cw.align)
    assert [cw.words[w] for w in a.word_ids] == ["EHN", "OWE"]
    assert a.acoustic_cost == pytest.approx(0.0, abs=1e-4)
    assert a.word_frames == [(6, 18), (18, 24)]
    b = decode_utterance(wi.fst, ll, align=wi.align)
    assert b.acoustic_cost > 1.0                 # word-internal: OWE's OW never follows N
