"""Decoding graph HCLG = det(HL ∘ G) as a kaldifst transducer: ilabel = pdf + 1, olabel = word id.

Context dependency is word-internal (see `acoustic_kd.hmm.HmmModel.word_hmm`), so a pronunciation
maps to one fixed chain of HMM states whatever its neighbours are. The HMM, context and lexicon levels
are therefore built together as one word-level transducer "HL":

    start --eps/-log(1-p)--> LOOP          start --eps/-log p--> SIL-chain --eps--> LOOP
    LOOP  --(pdf(s1)+1):word--> s1 ... sN  (one chain per pronunciation; entering consumes a frame)
    sN    --eps/-log(1-p)--> LOOP          sN    --eps/-log p--> SIL-chain        LOOP is final.

Each FST state `s` of a chain means "a frame of HMM state s was just consumed": its self-loop arc and
the arc into the next state both consume a frame (Kaldi's transition-on-arc convention, so n frames in
state s cost (n-1)·self + 1·forward). Transition log-probs are multiplied by `transition_scale` (0.1
by default, as Kaldi's `--self-loop-scale 0.1` for left-to-right HMMs). `p` = lang.json `sil_prob`.

G comes from `G.arpa` (any order, e.g. a trigram or 4-gram estimated by `acoustic-kd lang` or given
with `--arpa`); one state per listed history, backoff arcs to the shorter history.

Determinized graph (the default, `determinize`), built as Kaldi's mkgraph.sh builds HCLG:
1. L: the HL above without self-loops, its input labels HMM-state units (pdf, self-loop prob); a
   disambiguation symbol #k after each pronunciation whose unit sequence is a prefix of another's
   or identical to another's (homophones: Kaldi's add_lex_disambig rule, applied to tied states);
   a #0:#0 loop at LOOP. G carries #0 on its backoff arcs (Kaldi's arpa2fst --disambig-symbol).
2. L∘G determinized (`determinize_star`, tropical: each input sequence keeps its best word
   sequence and cost, so Viterbi decoding is unchanged) and minimized (`minimize_encoded`) with
   the symbols still in, which makes the lexicon a tree/graph shared across words.
3. Disambiguation symbols become ε; every state gets a single preceding unit (a state entered by
   several units is split, as Kaldi's MakePrecedingInputSymbolsSame) and that unit's self-loop is
   added (Kaldi's add-self-loops); units are relabelled to pdf + 1.
Cross-word context (`context="cross-word"`) is Kaldi's full H∘C∘L∘G instead: L over phones
(disambiguation symbols, optional silence) ∘ G determinized and minimized, the triphone context
transducer composed on its left (`kaldifst.compose_context`), H (one HMM-state chain per context
window, from the HMM's trees with the real neighbours; C's #-1 and the disambiguation symbols pass
through) on the left of that, the result determinized and minimized, then step 3. The HMM's trees
are trained with word-internal contexts (a word edge sees '#'), which is why word-internal stays the
default; with context-free pdfs both graphs decode identically.
Optionally (`remove_eps`) ε arcs are removed afterwards. graph.json records the sizes after each
step, build times and peak memory. On Mboshi (4.8k graphemic words, monophone letters), the
bigram graph shrinks from 122k states / 255k arcs to 78k / 177k and the trigram from 341k / 693k
to 214k / 478k (bench/bench_graph.py).

Word labels of a determinized graph are no longer on the words' first arcs (determinization moves
them to where the word becomes certain), so word times are recovered from the best path's pdfs
with the pronunciations' pdf chains (`align_lexicon.json`, `word_frames`). A word's label still
occurs once per word on every path, so the word insertion penalty (`with_word_penalty`, applied at
decode time) still adds exactly penalty × number of words. `determinize=False` gives the plain
composition HL∘G (label on the first arc, ε backoff arcs).

On disk (`build_graph`): `<out>/HCLG.fst`, `<out>/words.txt`, `<out>/align_lexicon.json`,
`<out>/graph.json` (fingerprint of lang + HMM chains + config, pdf count, silence pdfs, sizes) and a
`.done` marker.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import kaldifst as kf

from ..config import to_dict
from ..errors import ConfigError, DataError
from ..utils import atomic_path, atomic_write_json, get_logger, is_done, mark_done, read_table

log = get_logger(__name__)

LN10 = math.log(10.0)
HmmChain = list[tuple[int, float, float]]          # per HMM state: (pdf, log p(self), log p(fwd))


class HmmLike(Protocol):
    """The part of `acoustic_kd.hmm.HmmModel` the graph needs."""

    num_pdfs: int

    def word_hmm(self, phones: list[str]) -> list[HmmChain]: ...

    def silence_hmm(self) -> HmmChain: ...


@dataclass
class GraphConfig:
    """Options of `acoustic-kd mkgraph`."""

    transition_scale: float = field(default=0.1, metadata={
        "help": "scale on HMM transition log-probs (Kaldi's --self-loop-scale)"})
    sil_prob: float | None = field(default=None, metadata={
        "help": "optional-silence probability (default: lang.json sil_prob)"})
    determinize: bool = field(default=True, metadata={
        "help": "determinize and minimize the graph (Kaldi's mkgraph: disambiguation symbols, "
                "self-loops added after); false = the plain composition"})
    remove_eps: bool = field(default=False, metadata={
        "help": "remove ε arcs from the finished graph (on Mboshi it multiplies the arcs by "
                "1.7-2.3, so it is off)"})
    context: str = field(default="word-internal", metadata={
        "help": "phonetic context across words: 'word-internal' (the HMM's training convention: "
                "a word edge sees the boundary '#') or 'cross-word' (a C transducer, "
                "kaldifst.compose_context: word edges see the neighbouring words' phones)"})


# ------------------------------------------------------------------ small FST helpers
def _add_states(fst: kf.StdVectorFst, n: int) -> list[int]:
    return [fst.add_state() for _ in range(n)]


def _cost(logp: float, scale: float = 1.0) -> float:
    """Tropical cost (-log p) of a log-probability (exactly 0 for log p = 0)."""
    return 0.0 if logp == 0.0 else -scale * logp


def _add_chain(fst: kf.StdVectorFst, src: int, chain: HmmChain, olabel: int, entry_cost: float,
               scale: float, units: dict[tuple[int, float], int] | None = None) -> tuple[int, float]:
    """Add an HMM-state chain entered from `src`; return (last state, cost of leaving it).

    Without `units`: input labels pdf + 1 and a self-loop per state; with: input labels
    units[(pdf, log p(self))] and no self-loops (the graph to determinize)."""
    states = _add_states(fst, len(chain))
    prev, prev_cost = src, entry_cost
    for i, ((pdf, lself, lfwd), s) in enumerate(zip(chain, states)):
        label = pdf + 1 if units is None else units[(pdf, lself)]
        fst.add_arc(prev, kf.StdArc(label, olabel if i == 0 else 0, prev_cost, s))
        if units is None:
            fst.add_arc(s, kf.StdArc(label, 0, _cost(lself, scale), s))
        prev, prev_cost = s, _cost(lfwd, scale)
    return prev, prev_cost


def make_hl(prons: list[tuple[int, list[HmmChain], float]], sil_chain: HmmChain, sil_prob: float,
            transition_scale: float = 0.1, units: dict[tuple[int, float], int] | None = None,
            disambig_base: int = 0, word_disambig0: int = 0) -> kf.StdVectorFst:
    """Word-level HMM∘lexicon transducer with optional silence (layout in the module docstring).

    prons: (word id, per-phone HMM chains, pron cost -log p(pron|word)) per pronunciation.
    With `units` (`_units`) it is the L to determinize: unit input labels, no self-loops, a
    disambiguation symbol `disambig_base + k` after each pronunciation that needs one
    (`lexicon_disambig`) and a #0 loop (input `disambig_base`, output `word_disambig0`) at LOOP
    that lets G's backoff symbol through.
    """
    if not 0.0 <= sil_prob < 1.0:
        raise ValueError(f"sil_prob must be in [0, 1), got {sil_prob}")
    fst = kf.StdVectorFst()
    start, loop, sil_in = _add_states(fst, 3)
    fst.start = start
    fst.set_final(loop, 0.0)
    no_sil = -math.log1p(-sil_prob)
    c_sil = -math.log(sil_prob) if sil_prob > 0.0 else None
    fst.add_arc(start, kf.StdArc(0, 0, no_sil, loop))
    if units is not None:
        fst.add_arc(loop, kf.StdArc(disambig_base, word_disambig0, 0.0, loop))
    if c_sil is not None:
        fst.add_arc(start, kf.StdArc(0, 0, c_sil, sil_in))
        last, leave = _add_chain(fst, sil_in, sil_chain, 0, 0.0, transition_scale, units)
        fst.add_arc(last, kf.StdArc(0, 0, leave, loop))
    flat = [[st for phone in phone_chains for st in phone] for _, phone_chains, _ in prons]
    ks = [0] * len(flat) if units is None else \
        lexicon_disambig([tuple(units[(p, ls)] for p, ls, _ in c) for c in flat])
    for (word_id, _, pron_cost), chain, k in zip(prons, flat, ks):
        if not chain:
            continue
        last, leave = _add_chain(fst, loop, chain, word_id, pron_cost, transition_scale, units)
        if k:
            d = fst.add_state()
            fst.add_arc(last, kf.StdArc(disambig_base + k, 0, 0.0, d))
            last = d
        fst.add_arc(last, kf.StdArc(0, 0, leave + no_sil, loop))
        if c_sil is not None:
            fst.add_arc(last, kf.StdArc(0, 0, leave + c_sil, sil_in))
    return fst


def arpa_to_fst(probs: list[dict], backoffs: dict, word_ids: dict[str, int],
                arpa_path: str | Path = "G.arpa", backoff_label: int = 0) -> kf.StdVectorFst:
    """Grammar acceptor G from ARPA n-grams (log10 probs per order, log10 backoff weights).

    One state per history listed in the ARPA file (plus the empty history); an n-gram `h w` is an arc
    from state(h) to the longest listed suffix of `h w`; `</s>` becomes a final weight; backoff arcs
    are arcs to the next-shorter history weighted by -backoff(h), with input `backoff_label`
    (0 = ε; Kaldi's #0 for a graph that is determinized) and output ε. Start = state(<s>).
    """
    order = len(probs)
    hists: dict[tuple[str, ...], int] = {}
    fst = kf.StdVectorFst()

    def state(h: tuple[str, ...]) -> int:
        if h not in hists:
            hists[h] = fst.add_state()
        return hists[h]

    state(())
    for n in range(order - 1):
        for ng in probs[n]:
            if ng[-1] != "</s>":
                state(ng)

    def longest_suffix(h: tuple[str, ...]) -> int:
        h = h[-(order - 1):] if order > 1 else ()
        while h not in hists:
            h = h[1:]
        return hists[h]

    unknown = sorted({w for pn in probs for ng in pn for w in ng
                      if w not in word_ids and w not in ("<s>", "</s>")})
    if unknown:
        raise DataError(arpa_path, f"words not in words.txt: {unknown[:10]}",
                        "rebuild G.arpa and words.txt together (acoustic-kd lang)")
    has_end = any(ng[-1] == "</s>" for pn in probs for ng in pn)
    for pn in probs:
        for ng, lp in pn.items():
            h, w = ng[:-1], ng[-1]
            if w == "<s>" or h not in hists:   # an n-gram whose history is not listed is unreachable
                continue
            if w == "</s>":
                fst.set_final(hists[h], -lp * LN10)
            else:
                fst.add_arc(hists[h], kf.StdArc(word_ids[w], word_ids[w], -lp * LN10,
                                                longest_suffix(ng)))
    for h, s in list(hists.items()):
        if h:
            fst.add_arc(s, kf.StdArc(backoff_label, 0, -backoffs.get(h, 0.0) * LN10,
                                     longest_suffix(h[1:])))
    if not has_end:
        log.warning("%s has no </s>: any word sequence may end the utterance", arpa_path)
        fst.set_final(hists[()], 0.0)
    fst.start = hists.get(("<s>",), hists[()])
    return fst


# ------------------------------------------------------------------ determinized graph (mkgraph)
def _units(prons: list[tuple[int, list[HmmChain], float]], sil_chain: HmmChain
           ) -> tuple[dict[tuple[int, float], int], list[tuple[int, float]]]:
    """Input units of the graph before self-loops: one per (pdf, log p(self)), ids from 1."""
    table: dict[tuple[int, float], int] = {}
    for chain in [sil_chain] + [phone for _, phones, _ in prons for phone in phones]:
        for pdf, lself, _ in chain:
            table.setdefault((pdf, lself), len(table) + 1)
    return table, list(table)


def lexicon_disambig(seqs: list[tuple[int, ...]]) -> list[int]:
    """Kaldi's add_lex_disambig rule on unit sequences: a pronunciation that is a proper prefix of
    another, or identical to another, gets a disambiguation symbol #k (k >= 1, distinct among
    identical ones); 0 = none needed. The prefix test is on HMM-state units, so pronunciations
    that differ in phones but not in tied states are told apart too."""
    prefixes = {s[:i] for s in seqs for i in range(1, len(s))}
    counts: dict[tuple[int, ...], int] = {}
    for s in seqs:
        counts[s] = counts.get(s, 0) + 1
    next_k: dict[tuple[int, ...], int] = {}
    out = []
    for s in seqs:
        if s in prefixes or counts[s] > 1:
            next_k[s] = next_k.get(s, 0) + 1
            out.append(next_k[s])
        else:
            out.append(0)
    return out


def _arcs(fst: kf.StdFst) -> list[list[tuple[int, int, float, int]]]:
    return [[(a.ilabel, a.olabel, a.weight.value, a.nextstate) for a in kf.ArcIterator(fst, s)]
            for s in range(fst.num_states)]


def add_unit_self_loops(fst: kf.StdFst, first_disambig: int, self_cost: dict[int, float],
                        unit_pdf: dict[int, int]) -> kf.StdVectorFst:
    """Remove disambiguation symbols (inputs >= first_disambig become ε), give every state one
    preceding input unit (Kaldi's MakePrecedingInputSymbolsSame: a state entered by arcs of several
    units is split, one copy per unit), add each unit's self-loop (cost `self_cost[unit]`) on the
    states it enters, and relabel units to pdf + 1. States entered by ε or at the start get none:
    the frame before an ε arc already looped on the state before it."""
    arcs = _arcs(fst)
    n = fst.num_states
    for s in range(n):
        arcs[s] = [(0 if il >= first_disambig else il, ol, w, d) for il, ol, w, d in arcs[s]]
    classes: list[set[int]] = [set() for _ in range(n)]
    classes[fst.start].add(0)
    for s in range(n):
        for il, _, _, d in arcs[s]:
            classes[d].add(il)
    copy_of: dict[tuple[int, int], int] = {}
    total = n
    for s in range(n):
        cl = sorted(classes[s])
        for c in cl[1:]:
            copy_of[(s, c)] = total
            total += 1
    owner = list(range(n)) + [s for (s, _c) in sorted(copy_of, key=copy_of.get)]
    unit_of = [min(classes[s]) if classes[s] else 0 for s in range(n)] + \
        [c for (_s, c) in sorted(copy_of, key=copy_of.get)]
    out = kf.StdVectorFst()
    for _ in range(total):
        out.add_state()
    out.start = fst.start
    for q in range(total):
        s = owner[q]
        final = fst.final(s).value
        if math.isfinite(final):
            out.set_final(q, final)
        u = unit_of[q]
        if u:
            out.add_arc(q, kf.StdArc(unit_pdf[u] + 1, 0, self_cost[u], q))
        for il, ol, w, d in arcs[s]:
            dest = copy_of.get((d, il), d)
            out.add_arc(q, kf.StdArc(unit_pdf[il] + 1 if il else 0, ol, w, dest))
    return out


def num_arcs(fst: kf.StdFst) -> int:
    return sum(fst.num_arcs(s) for s in range(fst.num_states))


# ------------------------------------------------------------------ lang dir -> graph
def read_word_ids(path: str | Path) -> dict[str, int]:
    """words.txt -> {word: id}."""
    out = {}
    for w, rest, lineno in read_table(path):
        try:
            out[w] = int(rest)
        except ValueError:
            raise DataError(path, f"word id '{rest}' is not an integer", "fix words.txt", lineno)
    return out


def pron_chains(lexicon: dict[str, list[list[str]]], word_ids: dict[str, int], hmm: HmmLike,
                lexicon_path: str | Path = "lexicon.txt") -> list[tuple[int, list[HmmChain], float]]:
    """HMM chains of every pronunciation: (word id, chains per phone, -log p(pron|word)).

    Pronunciations of one word are equally likely (Kaldi's lexicon.txt convention).
    """
    out = []
    for word in sorted(lexicon):
        if word not in word_ids:
            raise DataError(lexicon_path, f"word '{word}' is not in words.txt",
                            "rebuild the lang dir (acoustic-kd lang)")
        prons = lexicon[word]
        for pron in prons:
            out.append((word_ids[word], hmm.word_hmm(list(pron)), math.log(len(prons))))
    return out


@dataclass
class GraphInputs:
    """Everything the graph is built from, and its fingerprint (what the cache compares)."""

    word_ids: dict[str, int]
    prons: list[tuple[int, list[HmmChain], float]]
    sil_chain: HmmChain
    sil_prob: float
    lexicon_words: set[str]
    num_pdfs: int
    fingerprint: str
    phone_prons: list[tuple[int, list[str], float]] = field(default_factory=list)
    hmm: object = None
    pdf_key: list[int] | None = None       # pdf -> (phone, state) key, for word times


def graph_inputs(lang_dir: str | Path, hmm: HmmLike, cfg: GraphConfig) -> GraphInputs:
    """Read the lang dir and expand every pronunciation into HMM chains."""
    from ..lang.langdir import load_lang

    lang_dir = Path(lang_dir)
    lang = load_lang(lang_dir)
    if not (lang_dir / "G.arpa").exists():
        raise DataError(lang_dir / "G.arpa", "missing from the lang dir", "run `acoustic-kd lang`")
    word_ids = read_word_ids(lang_dir / "words.txt")
    prons = pron_chains(lang.lexicon, word_ids, hmm, lang_dir / "lexicon.txt")
    sil_chain = list(hmm.silence_hmm())
    sil_prob = lang.sil_prob if cfg.sil_prob is None else cfg.sil_prob
    if cfg.context not in ("word-internal", "cross-word"):
        raise ConfigError(f"context must be 'word-internal' or 'cross-word', got {cfg.context!r}")
    if cfg.context == "cross-word" and not (cfg.determinize and hasattr(hmm, "phone_hmm")):
        raise ConfigError("cross-word context needs --determinize true and an HMM model")
    whole_hmm = hmm.to_dict() if cfg.context == "cross-word" and hasattr(hmm, "to_dict") else None
    fingerprint = hashlib.sha256(json.dumps({
        "files": [hashlib.sha256((lang_dir / f).read_bytes()).hexdigest()
                  for f in ("words.txt", "lexicon.txt", "G.arpa", "lang.json")],
        "prons": prons, "sil": sil_chain, "num_pdfs": int(hmm.num_pdfs), "cfg": to_dict(cfg),
        "hmm": whole_hmm,
    }, sort_keys=True, default=str).encode()).hexdigest()
    phone_prons = [(word_ids[w], list(pron), math.log(len(lang.lexicon[w])))
                   for w in sorted(lang.lexicon) for pron in lang.lexicon[w]]
    pdf_key = None
    if hasattr(hmm, "pdf_to_phone") and hasattr(hmm, "pdf_to_state"):
        width = max(int(n) for n in hmm.num_states.values()) if hasattr(hmm, "num_states") else 64
        pdf_key = [int(ph) * width + int(st) for ph, st in zip(hmm.pdf_to_phone, hmm.pdf_to_state)]
    return GraphInputs(word_ids, prons, sil_chain, sil_prob, set(lang.lexicon), int(hmm.num_pdfs),
                       fingerprint, phone_prons, hmm, pdf_key)


def _size(fst: kf.StdFst) -> list[int]:
    return [fst.num_states, num_arcs(fst)]


def _max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _determinized_hclg(inp: "GraphInputs", g: kf.StdVectorFst, w0: int, cfg: GraphConfig
                       ) -> tuple[kf.StdVectorFst, dict]:
    """mkgraph's recipe on the word-internal HL: L with disambiguation symbols (no self-loops) ∘ G
    with #0 on its backoff arcs, determinized (tropical, so every path keeps its Viterbi cost) and
    minimized (encoded) with the symbols in, then symbols removed and self-loops added."""
    t0 = time.perf_counter()
    units, unit_list = _units(inp.prons, inp.sil_chain)
    first_disambig = len(units) + 1
    l_fst = make_hl(inp.prons, inp.sil_chain, inp.sil_prob, cfg.transition_scale, units,
                    first_disambig, w0)
    lg = _compose(l_fst, g)
    stats = {"L": _size(l_fst), "G": _size(g), "LG": _size(lg)}
    times = {"compose_s": time.perf_counter() - t0}
    _det_min(lg, stats, times, "LG")
    hclg = _with_self_loops(lg, unit_list, cfg.transition_scale, times)
    stats["disambig_symbols"] = max(lexicon_disambig(
        [tuple(units[(p, s)] for ph in c for p, s, _ in ph) for _, c, _ in inp.prons]) or [0])
    stats["units"] = len(units)
    return hclg, {"sizes": stats, "times": times}


def _compose(a: kf.StdVectorFst, b: kf.StdVectorFst) -> kf.StdVectorFst:
    """a ∘ b (arcs sorted for it), trimmed."""
    kf.arcsort(a, sort_type="olabel")
    kf.arcsort(b, sort_type="ilabel")
    out = kf.compose(a, b)
    kf.connect(out)
    return out


def _with_self_loops(fst: kf.StdVectorFst, unit_list: list[tuple[int, float]], scale: float,
                     times: dict) -> kf.StdVectorFst:
    """`add_unit_self_loops` with the units' self-loop costs and pdfs; disambiguation symbols are
    the labels after the units."""
    t0 = time.perf_counter()
    self_cost = {i + 1: _cost(lself, scale) for i, (_, lself) in enumerate(unit_list)}
    unit_pdf = {i + 1: pdf for i, (pdf, _) in enumerate(unit_list)}
    out = add_unit_self_loops(fst, len(unit_list) + 1, self_cost, unit_pdf)
    times["self_loops_s"] = time.perf_counter() - t0
    return out


def _det_min(fst: kf.StdVectorFst, stats: dict, times: dict, tag: str) -> None:
    """determinize_star (tropical) then minimize_encoded, in place, recording sizes and times."""
    t0 = time.perf_counter()
    if kf.determinize_star(fst):                 # True = stopped early (it has no state limit here)
        raise DataError(None, "the graph's determinization stopped early",
                        "rebuild with --determinize false")
    stats[f"{tag}_det"] = _size(fst)
    times[f"{tag}_determinize_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    kf.minimize_encoded(fst)
    stats[f"{tag}_min"] = _size(fst)
    times[f"{tag}_minimize_s"] = time.perf_counter() - t0


def _crossword_hclg(inp: "GraphInputs", g: kf.StdVectorFst, w0: int, cfg: GraphConfig
                    ) -> tuple[kf.StdVectorFst, dict]:
    """Kaldi's full recipe with cross-word triphone context: L over phones (disambiguation
    symbols, optional silence) ∘ G, determinized and minimized; C composed on the left
    (`kaldifst.compose_context`, width 3, centre 1); H (one HMM-state chain per context window,
    the HMM's tree queried with the real neighbours; a context-independent phone, and the edge of
    the utterance, count as the boundary '#') composed on the left of that; H∘C∘L∘G determinized
    and minimized; symbols removed and self-loops added as for the word-internal graph."""
    from ..hmm import BOUNDARY

    hmm = inp.hmm
    t0 = time.perf_counter()
    times: dict = {}
    pid = hmm.phone_id
    d0 = len(hmm.phones)                         # phone-level #0; #k = d0 + k
    one = lambda ph: [[(pid[ph], 0.0, 0.0)]]     # noqa: E731  a phone as a one-"state" chain
    l_prons = [(w, [one(ph)[0] for ph in phones], cost) for w, phones, cost in inp.phone_prons]
    identity = {(i, 0.0): i for i in range(1, d0)}
    sil = pid[hmm.silence_phone]
    l_fst = make_hl(l_prons, one(hmm.silence_phone)[0], inp.sil_prob, 1.0, identity, d0, w0)
    max_k = max(lexicon_disambig([tuple(pid[ph] for ph in phones)
                                  for _, phones, _ in inp.phone_prons]) or [0])
    lg = _compose(l_fst, g)
    stats: dict = {"L": _size(l_fst), "G": _size(g), "LG": _size(lg)}
    times["compose_s"] = time.perf_counter() - t0
    _det_min(lg, stats, times, "LG")
    t0 = time.perf_counter()
    phone_disambig = list(range(d0, d0 + max_k + 1))
    clg, windows = kf.compose_context(phone_disambig, 3, 1, lg)
    stats["CLG"] = _size(clg)
    ci = set(hmm.context_independent)
    name = {i: p for p, i in pid.items()}

    def ctx(i: int) -> str:
        return BOUNDARY if i <= 0 or i >= d0 or name[i] in ci else name[i]

    chains: dict[int, HmmChain] = {}
    for i, win in enumerate(windows):
        if len(win) == 3 and 0 < win[1] < d0:
            c = name[win[1]]
            chains[i] = hmm.phone_hmm(c) if c in ci else hmm.phone_hmm(c, ctx(win[0]), ctx(win[2]))
    units: dict[tuple[int, float], int] = {}
    for chain in chains.values():
        for pdf, lself, _ in chain:
            units.setdefault((pdf, lself), len(units) + 1)
    unit_list = list(units)
    first_disambig = len(units) + 1
    h = kf.StdVectorFst()
    h.add_state()
    h.start = 0
    h.set_final(0, 0.0)
    for i, win in enumerate(windows):
        if i in chains:
            last, leave = _add_chain(h, 0, chains[i], i, 0.0, cfg.transition_scale, units)
            h.add_arc(last, kf.StdArc(0, 0, leave, 0))
        elif len(win) == 1 and -win[0] >= d0:      # a disambiguation symbol: passed through
            h.add_arc(0, kf.StdArc(first_disambig + (-win[0] - d0), i, 0.0, 0))
        elif win == [0]:                           # C's "#-1" (an ε input of C): as Kaldi's H
            h.add_arc(0, kf.StdArc(first_disambig + max_k + 1, i, 0.0, 0))
    hclg = _compose(h, clg)
    stats["H"] = _size(h)
    stats["HCLG_a"] = _size(hclg)
    times["context_s"] = time.perf_counter() - t0
    _det_min(hclg, stats, times, "HCLG_a")
    out = _with_self_loops(hclg, unit_list, cfg.transition_scale, times)
    stats.update({"disambig_symbols": max_k, "units": len(units), "context_windows": len(chains),
                  "silence_phone": sil})
    return out, {"sizes": stats, "times": times}


def compile_graph(lang_dir: str | Path, hmm: HmmLike, cfg: GraphConfig | None = None,
                  inputs: GraphInputs | None = None) -> tuple[kf.StdVectorFst, dict]:
    """Build HCLG in memory -> (fst, info dict with fingerprint, num_pdfs, silence_pdfs, sizes)."""
    from ..lang.arpa import read_arpa

    cfg = cfg or GraphConfig()
    lang_dir = Path(lang_dir)
    inp = inputs or graph_inputs(lang_dir, hmm, cfg)
    t_start = time.perf_counter()
    probs, backoffs = read_arpa(lang_dir / "G.arpa")
    extra: dict = {}
    if cfg.determinize:
        w0 = inp.word_ids.get("#0", max(inp.word_ids.values(), default=0) + 1)
        g = arpa_to_fst(probs, backoffs, inp.word_ids, lang_dir / "G.arpa", backoff_label=w0)
        build = _crossword_hclg if cfg.context == "cross-word" else _determinized_hclg
        hclg, extra = build(inp, g, w0, cfg)
    else:
        hl = make_hl(inp.prons, inp.sil_chain, inp.sil_prob, cfg.transition_scale)
        g = arpa_to_fst(probs, backoffs, inp.word_ids, lang_dir / "G.arpa")
        kf.arcsort(hl, sort_type="olabel")
        kf.arcsort(g, sort_type="ilabel")
        hclg = kf.compose(hl, g)
    kf.connect(hclg)
    if hclg.num_states == 0:
        raise DataError(lang_dir, "the decoding graph is empty",
                        "check that G.arpa words have pronunciations in lexicon.txt")
    if cfg.remove_eps:
        before = _size(hclg)
        kf.rmepsilon(hclg)
        extra.setdefault("sizes", {})["before_rmeps"] = before
    kf.arcsort(hclg, sort_type="ilabel")
    g_words = {w for pn in probs for ng in pn for w in ng} - {"<s>", "</s>"}
    missing = sorted(g_words - inp.lexicon_words)
    if missing:
        log.warning("%d G.arpa words have no pronunciation and cannot be recognised: %s",
                    len(missing), missing[:10])
    info = {"fingerprint": inp.fingerprint, "num_pdfs": inp.num_pdfs, "sil_prob": inp.sil_prob,
            "silence_pdfs": sorted({p for p, _, _ in inp.sil_chain}),
            "num_states": hclg.num_states, "num_arcs": num_arcs(hclg), "lang_dir": str(lang_dir),
            "config": to_dict(cfg), "missing_pronunciations": missing,
            "lm_order": len(probs), "determinized": bool(cfg.determinize),
            "build_s": time.perf_counter() - t_start, "max_rss_mb": _max_rss_mb(), **extra}
    return hclg, info


def align_lexicon(inp: GraphInputs) -> dict:
    """What word times are recovered from on a determinized graph (whose word labels are not at
    the word starts): the HMM-state chain of every pronunciation and of the optional silence.
    With the HMM's pdf -> (phone, state) map the chains are of (phone, state) keys (`pdf_key`, so
    that cross-word context, which changes the pdfs at word edges, matches too); else of pdfs."""
    key = inp.pdf_key or list(range(inp.num_pdfs))
    words: dict[str, list[list[int]]] = {}
    for word_id, phones, _ in inp.prons:
        chain = [key[pdf] for phone in phones for pdf, _, _ in phone]
        if chain:
            words.setdefault(str(word_id), []).append(chain)
    out = {"silence": [key[pdf] for pdf, _, _ in inp.sil_chain], "words": words}
    if inp.pdf_key is not None:
        out["pdf_key"] = inp.pdf_key
    return out


def build_graph(lang_dir: str | Path, hmm: HmmLike, out_dir: str | Path,
                cfg: GraphConfig | None = None, force: bool = False,
                hmm_path: str | Path | None = None) -> Path:
    """Build (or reuse when lang, HMM and config are unchanged) `<out_dir>/HCLG.fst`; return its path.

    hmm_path (the HMM's JSON file) is recorded in graph.json, so that variants of the graph (e.g.
    other transition scales tried on dev) can be rebuilt from it.
    """
    cfg = cfg or GraphConfig()
    out_dir = Path(out_dir)
    inp = graph_inputs(lang_dir, hmm, cfg)
    info_path = out_dir / "graph.json"
    if not force and is_done(out_dir) and info_path.exists() and (out_dir / "HCLG.fst").exists():
        info = json.loads(info_path.read_text())
        if info.get("fingerprint") == inp.fingerprint:
            log.info("graph %s is up to date", out_dir)
            if hmm_path is not None and info.get("hmm") != str(hmm_path):
                atomic_write_json(info_path, {**info, "hmm": str(hmm_path)})
            return out_dir / "HCLG.fst"
    fst, info = compile_graph(lang_dir, hmm, cfg, inp)
    if hmm_path is not None:
        info["hmm"] = str(hmm_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    if is_done(out_dir):
        (out_dir / ".done").unlink()
    with atomic_path(out_dir / "HCLG.fst") as tmp:
        if not fst.write(str(tmp)):
            raise DataError(out_dir / "HCLG.fst", "could not write the graph", "check disk space")
    with atomic_path(out_dir / "words.txt") as tmp:
        shutil.copyfile(Path(lang_dir) / "words.txt", tmp)
    atomic_write_json(out_dir / "align_lexicon.json", align_lexicon(inp))
    atomic_write_json(info_path, info)
    mark_done(out_dir)
    log.info("graph %s: %d states, %d arcs", out_dir, info["num_states"], info["num_arcs"])
    return out_dir / "HCLG.fst"


def with_word_penalty(fst: kf.StdFst, penalty: float) -> kf.StdVectorFst:
    """Copy of `fst` with `penalty` added to the cost of every arc that outputs a word.

    penalty > 0 discourages insertions. Each word occurrence has exactly one word-output arc (also
    after determinization, which moves labels but keeps one per word), so a path's cost grows by
    penalty × number of words.
    """
    out = kf.StdVectorFst()
    for s in range(fst.num_states):
        out.add_state()
    for s in range(fst.num_states):
        final = fst.final(s).value
        if math.isfinite(final):
            out.set_final(s, final)
        for a in kf.ArcIterator(fst, s):
            w = a.weight.value + (penalty if a.olabel != 0 else 0.0)
            out.add_arc(s, kf.StdArc(a.ilabel, a.olabel, w, a.nextstate))
    out.start = fst.start
    return out


def graph_variant(graph_dir: str | Path, transition_scale: float) -> Path:
    """The graph of `graph_dir` rebuilt with another HMM transition scale, in
    `<graph_dir>/ts<scale>` (reused when up to date); `graph_dir` itself when the scale is its own."""
    from ..hmm import HmmModel

    graph_dir = Path(graph_dir)
    info = json.loads((graph_dir / "graph.json").read_text())
    cfg = GraphConfig(**info.get("config", {}))
    if math.isclose(cfg.transition_scale, transition_scale):
        return graph_dir
    hmm, lang = info.get("hmm"), info.get("lang_dir")
    if not hmm or not Path(hmm).exists() or not lang or not Path(lang).exists():
        raise DataError(graph_dir / "graph.json", f"cannot rebuild the graph with transition scale "
                        f"{transition_scale:g}: its HMM ({hmm}) or lang dir ({lang}) is not recorded "
                        "or not found from here", "rebuild the graph with `acoustic-kd mkgraph --force` "
                        "(it records both) and decode from the directory it was built in")
    out = graph_dir / f"ts{transition_scale:g}"
    build_graph(lang, HmmModel.load(hmm), out, replace(cfg, transition_scale=transition_scale),
                hmm_path=hmm)
    return out
