"""Decoding graph HCLG = HL ∘ G as a kaldifst transducer: ilabel = pdf + 1, olabel = word id.

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

G comes from `G.arpa` (any order; backoff arcs are epsilons, as Kaldi's arpa2fst + #0 → eps).
The graph is NOT determinized or minimized: with word-internal context and small vocabularies (digits,
yes/no) the word loop is already compact, and skipping determinization avoids disambiguation symbols
for homophones. Word insertion penalties are applied at decode time (`with_word_penalty`).

On disk (`build_graph`): `<out>/HCLG.fst`, `<out>/words.txt`, `<out>/graph.json` (fingerprint of
lang + HMM chains + config, pdf count, silence pdfs, sizes) and a `.done` marker.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import kaldifst as kf

from ..config import to_dict
from ..errors import DataError
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


# ------------------------------------------------------------------ small FST helpers
def _add_states(fst: kf.StdVectorFst, n: int) -> list[int]:
    return [fst.add_state() for _ in range(n)]


def _cost(logp: float, scale: float = 1.0) -> float:
    """Tropical cost (-log p) of a log-probability (exactly 0 for log p = 0)."""
    return 0.0 if logp == 0.0 else -scale * logp


def _add_chain(fst: kf.StdVectorFst, src: int, chain: HmmChain, olabel: int, entry_cost: float,
               scale: float) -> tuple[int, float]:
    """Add an HMM-state chain entered from `src`; return (last state, cost of leaving it)."""
    states = _add_states(fst, len(chain))
    prev, prev_cost = src, entry_cost
    for i, ((pdf, lself, lfwd), s) in enumerate(zip(chain, states)):
        fst.add_arc(prev, kf.StdArc(pdf + 1, olabel if i == 0 else 0, prev_cost, s))
        fst.add_arc(s, kf.StdArc(pdf + 1, 0, _cost(lself, scale), s))
        prev, prev_cost = s, _cost(lfwd, scale)
    return prev, prev_cost


def make_hl(prons: list[tuple[int, list[HmmChain], float]], sil_chain: HmmChain, sil_prob: float,
            transition_scale: float = 0.1) -> kf.StdVectorFst:
    """Word-level HMM∘lexicon transducer with optional silence (layout in the module docstring).

    prons: (word id, per-phone HMM chains, pron cost -log p(pron|word)) per pronunciation.
    """
    if not 0.0 <= sil_prob < 1.0:
        raise ValueError(f"sil_prob must be in [0, 1), got {sil_prob}")
    fst = kf.StdVectorFst()
    start, loop, sil_in = _add_states(fst, 3)
    fst.start = start
    fst.set_final(loop, 0.0)
    no_sil = -math.log1p(-sil_prob)
    fst.add_arc(start, kf.StdArc(0, 0, no_sil, loop))
    if sil_prob > 0.0:
        c_sil = -math.log(sil_prob)
        fst.add_arc(start, kf.StdArc(0, 0, c_sil, sil_in))
        last, leave = _add_chain(fst, sil_in, sil_chain, 0, 0.0, transition_scale)
        fst.add_arc(last, kf.StdArc(0, 0, leave, loop))
    for word_id, phone_chains, pron_cost in prons:
        chain = [st for phone in phone_chains for st in phone]
        if not chain:
            continue
        last, leave = _add_chain(fst, loop, chain, word_id, pron_cost, transition_scale)
        fst.add_arc(last, kf.StdArc(0, 0, leave + no_sil, loop))
        if sil_prob > 0.0:
            fst.add_arc(last, kf.StdArc(0, 0, leave + c_sil, sil_in))
    return fst


def arpa_to_fst(probs: list[dict], backoffs: dict, word_ids: dict[str, int],
                arpa_path: str | Path = "G.arpa") -> kf.StdVectorFst:
    """Grammar acceptor G from ARPA n-grams (log10 probs per order, log10 backoff weights).

    One state per history listed in the ARPA file (plus the empty history); an n-gram `h w` is an arc
    from state(h) to the longest listed suffix of `h w`; `</s>` becomes a final weight; backoff arcs
    are epsilon arcs to the next-shorter history weighted by -backoff(h). Start = state(<s>).
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
            fst.add_arc(s, kf.StdArc(0, 0, -backoffs.get(h, 0.0) * LN10, longest_suffix(h[1:])))
    if not has_end:
        log.warning("%s has no </s>: any word sequence may end the utterance", arpa_path)
        fst.set_final(hists[()], 0.0)
    fst.start = hists.get(("<s>",), hists[()])
    return fst


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


def graph_inputs(lang_dir: str | Path, hmm: HmmLike, cfg: GraphConfig) -> GraphInputs:
    """Read the lang dir and expand every pronunciation into HMM chains."""
    from ..lang import load_lang

    lang_dir = Path(lang_dir)
    lang = load_lang(lang_dir)
    if not (lang_dir / "G.arpa").exists():
        raise DataError(lang_dir / "G.arpa", "missing from the lang dir", "run `acoustic-kd lang`")
    word_ids = read_word_ids(lang_dir / "words.txt")
    prons = pron_chains(lang.lexicon, word_ids, hmm, lang_dir / "lexicon.txt")
    sil_chain = list(hmm.silence_hmm())
    sil_prob = lang.sil_prob if cfg.sil_prob is None else cfg.sil_prob
    fingerprint = hashlib.sha256(json.dumps({
        "files": [hashlib.sha256((lang_dir / f).read_bytes()).hexdigest()
                  for f in ("words.txt", "lexicon.txt", "G.arpa", "lang.json")],
        "prons": prons, "sil": sil_chain, "num_pdfs": int(hmm.num_pdfs), "cfg": to_dict(cfg),
    }, sort_keys=True, default=str).encode()).hexdigest()
    return GraphInputs(word_ids, prons, sil_chain, sil_prob, set(lang.lexicon), int(hmm.num_pdfs),
                       fingerprint)


def compile_graph(lang_dir: str | Path, hmm: HmmLike, cfg: GraphConfig | None = None,
                  inputs: GraphInputs | None = None) -> tuple[kf.StdVectorFst, dict]:
    """Build HCLG in memory -> (fst, info dict with fingerprint, num_pdfs, silence_pdfs, sizes)."""
    from ..lang import read_arpa

    cfg = cfg or GraphConfig()
    lang_dir = Path(lang_dir)
    inp = inputs or graph_inputs(lang_dir, hmm, cfg)
    hl = make_hl(inp.prons, inp.sil_chain, inp.sil_prob, cfg.transition_scale)
    probs, backoffs = read_arpa(lang_dir / "G.arpa")
    g = arpa_to_fst(probs, backoffs, inp.word_ids, lang_dir / "G.arpa")
    kf.arcsort(hl, sort_type="olabel")
    kf.arcsort(g, sort_type="ilabel")
    hclg = kf.compose(hl, g)
    kf.connect(hclg)
    if hclg.num_states == 0:
        raise DataError(lang_dir, "the decoding graph is empty",
                        "check that G.arpa words have pronunciations in lexicon.txt")
    kf.arcsort(hclg, sort_type="ilabel")
    g_words = {w for pn in probs for ng in pn for w in ng} - {"<s>", "</s>"}
    missing = sorted(g_words - inp.lexicon_words)
    if missing:
        log.warning("%d G.arpa words have no pronunciation and cannot be recognised: %s",
                    len(missing), missing[:10])
    num_arcs = sum(hclg.num_arcs(s) for s in range(hclg.num_states))
    info = {"fingerprint": inp.fingerprint, "num_pdfs": inp.num_pdfs, "sil_prob": inp.sil_prob,
            "silence_pdfs": sorted({p for p, _, _ in inp.sil_chain}),
            "num_states": hclg.num_states, "num_arcs": num_arcs, "lang_dir": str(lang_dir),
            "config": to_dict(cfg), "missing_pronunciations": missing}
    return hclg, info


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
    atomic_write_json(info_path, info)
    mark_done(out_dir)
    log.info("graph %s: %d states, %d arcs", out_dir, info["num_states"], info["num_arcs"])
    return out_dir / "HCLG.fst"


def with_word_penalty(fst: kf.StdFst, penalty: float) -> kf.StdVectorFst:
    """Copy of `fst` with `penalty` added to the cost of every arc that outputs a word.

    penalty > 0 discourages insertions. Each word occurrence has exactly one word-output arc
    (the graph is not determinized), so a path's cost grows by penalty × number of words.
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
