"""Decoding graph HCLG = det(HL ∘ G) as a kaldifst transducer: ilabel = pdf + 1, olabel = word id.

The levels are built by `lexicon_fst` (the word-level HMM∘lexicon "HL", or the L to determinize),
`grammar_fst` (G from `G.arpa`) and `hclg` (L∘G determinized and minimized, the optional cross-word
H∘C∘L∘G, disambiguation symbols removed and self-loops added); this module reads the lang dir and
the HMM, composes the levels (`compile_graph`) and caches the result on disk (`build_graph`).
The graph follows the HMM's context convention (`HmmModel.context`): HL∘G for a word-internal
HMM, H∘C∘L∘G for a cross-word one (`graph_context`: a graph that does not match is refused).

Optionally (`remove_eps`) ε arcs are removed afterwards. graph.json records the sizes after each
step, build times and peak memory (sizes on Mboshi: recipes/mboshi/RESULTS.md, "Decoding graph
sizes").

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

import kaldifst as kf

from ..config import load_config, to_dict
from ..config_types import check_fields
from ..errors import ConfigError, DataError
from ..hmm import CONTEXTS, WORD_INTERNAL, HmmModel
from ..lang.arpa import read_arpa
from ..lang.langdir import load_lang
from ..stage import Stage
from ..utils import atomic_path, atomic_write_json, get_logger, is_done, mark_done, read_table
from .grammar_fst import arpa_to_fst
from .hclg import crossword_hclg, determinized_hclg
from .lexicon_fst import HmmChain, HmmLike, fst_size, make_hl, num_arcs

log = get_logger(__name__)

@dataclass
class GraphConfig:
    """Options of `acoustic-kd mkgraph`."""

    transition_scale: float = field(default=0.1, metadata={
        "help": "scale on HMM transition log-probs (Kaldi's --self-loop-scale)", "range": "[0, inf)"})
    sil_prob: float | None = field(default=None, metadata={
        "help": "optional-silence probability (default: lang.json sil_prob)", "range": "[0, 1)"})
    determinize: bool = field(default=True, metadata={
        "help": "determinize and minimize the graph (Kaldi's mkgraph: disambiguation symbols, "
                "self-loops added after); false = the plain composition"})
    remove_eps: bool = field(default=False, metadata={
        "help": "remove ε arcs from the finished graph (on Mboshi it multiplies the arcs by "
                "1.7-2.3, so it is off)"})
    context: str = field(default="model", metadata={
        "help": "phonetic context across words: 'model' (the convention the HMM was trained with, "
                "final.hmm.json 'context'), 'word-internal' (a word edge sees the boundary '#': "
                "HL∘G) or 'cross-word' (H∘C∘L∘G with a context transducer, "
                "kaldifst.compose_context: word edges see the neighbouring words' phones); a graph "
                "that does not match a context-dependent HMM is refused",
        "choices": ("model", *CONTEXTS)})

    def __post_init__(self):
        check_fields(self)


def graph_context(cfg: GraphConfig, hmm: HmmLike, where=None) -> GraphConfig:
    """`cfg` with its context resolved against the HMM ('model': the HMM's convention; an object
    without one is word-internal). ConfigError when the graph asked for does not match an HMM whose
    trees ask about context (a monophone HMM fits either graph)."""
    trained = getattr(hmm, "context", WORD_INTERNAL)
    if cfg.context == "model":
        return replace(cfg, context=trained)
    if cfg.context != trained and not getattr(hmm, "context_free", True):
        raise ConfigError(f"the HMM{' ' + str(where) if where else ''} was trained with {trained} "
                          f"context but a {cfg.context} graph was asked for (mkgraph context); "
                          f"build the graph that matches it (--context model, the default, or "
                          f"{trained}) or train the GMM passes with `align --context {cfg.context}`")
    return cfg


# ------------------------------------------------------------------ lang dir -> graph inputs
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
    cfg = graph_context(cfg, hmm)
    lang_dir = Path(lang_dir)
    lang = load_lang(lang_dir)
    if not (lang_dir / "G.arpa").exists():
        raise DataError(lang_dir / "G.arpa", "missing from the lang dir", "run `acoustic-kd lang`")
    word_ids = read_word_ids(lang_dir / "words.txt")
    prons = pron_chains(lang.lexicon, word_ids, hmm, lang_dir / "lexicon.txt")
    sil_chain = list(hmm.silence_hmm())
    sil_prob = lang.sil_prob if cfg.sil_prob is None else cfg.sil_prob
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


# ------------------------------------------------------------------ the graph
def _max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def compile_graph(lang_dir: str | Path, hmm: HmmLike, cfg: GraphConfig | None = None,
                  inputs: GraphInputs | None = None) -> tuple[kf.StdVectorFst, dict]:
    """Build HCLG in memory -> (fst, info dict with fingerprint, num_pdfs, silence_pdfs, sizes)."""
    cfg = graph_context(cfg or GraphConfig(), hmm)
    lang_dir = Path(lang_dir)
    inp = inputs or graph_inputs(lang_dir, hmm, cfg)
    t_start = time.perf_counter()
    probs, backoffs = read_arpa(lang_dir / "G.arpa")
    extra: dict = {}
    if cfg.determinize:
        w0 = inp.word_ids.get("#0", max(inp.word_ids.values(), default=0) + 1)
        g = arpa_to_fst(probs, backoffs, inp.word_ids, lang_dir / "G.arpa", backoff_label=w0)
        if cfg.context == "cross-word":
            hclg, extra = crossword_hclg(inp.hmm, inp.phone_prons, inp.sil_prob, g, w0,
                                         cfg.transition_scale)
        else:
            hclg, extra = determinized_hclg(inp.prons, inp.sil_chain, inp.sil_prob, g, w0,
                                            cfg.transition_scale)
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
        before = fst_size(hclg)
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
    cfg = graph_context(cfg or GraphConfig(), hmm, hmm_path)
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


def graph_pdfs(graph_dir: str | Path) -> int:
    """The pdf count a graph dir's graph.json records."""
    path = Path(graph_dir) / "graph.json"
    try:
        return int(json.loads(path.read_text())["num_pdfs"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(path, f"cannot read the graph's pdf count ({e})",
                        "build the graph with `acoustic-kd mkgraph`") from None


def graph_sources(graph_dir: str | Path, variant: str) -> tuple[str, str, GraphConfig]:
    """(HMM file, lang dir, options) a graph dir was built from (its graph.json), to build a
    `variant` of it (e.g. "with transition scale 0.5"): both must be recorded and found."""
    graph_dir = Path(graph_dir)
    info = json.loads((graph_dir / "graph.json").read_text())
    hmm, lang = info.get("hmm"), info.get("lang_dir")
    if not hmm or not Path(hmm).exists() or not lang or not Path(lang).exists():
        raise DataError(graph_dir / "graph.json", f"cannot build the graph {variant}: its HMM "
                        f"({hmm}) or lang dir ({lang}) is not recorded or not found from here",
                        "rebuild the graph with `acoustic-kd mkgraph --force` (it records both) and "
                        "decode from the directory it was built in")
    return hmm, lang, GraphConfig(**info.get("config", {}))


def graph_variant(graph_dir: str | Path, transition_scale: float) -> Path:
    """The graph of `graph_dir` rebuilt with another HMM transition scale, in
    `<graph_dir>/ts<scale>` (reused when up to date); `graph_dir` itself when the scale is its own."""
    graph_dir = Path(graph_dir)
    info = json.loads((graph_dir / "graph.json").read_text())
    cfg = GraphConfig(**info.get("config", {}))
    if math.isclose(cfg.transition_scale, transition_scale):
        return graph_dir
    hmm, lang, cfg = graph_sources(graph_dir, f"with transition scale {transition_scale:g}")
    out = graph_dir / f"ts{transition_scale:g}"
    build_graph(lang, HmmModel.load(hmm), out, replace(cfg, transition_scale=transition_scale),
                hmm_path=hmm)
    return out


@dataclass
class GraphJob:
    """One graph dir (`acoustic-kd mkgraph`): a lang dir and an HMM (JSON) in, OUT out; `options`
    holds the command-line values of the GraphConfig fields (None = not given)."""

    lang: str
    model: str
    out: str | None = None
    config: str | None = None
    force: bool = False
    options: dict = field(default_factory=dict)

    def out_dir(self) -> Path:
        """OUT, by default the HMM's dir / graph."""
        return Path(self.out) if self.out else Path(self.model).parent / "graph"

    def stage(self, cfg: GraphConfig):
        """The mkgraph stage: the lang dir, the HMM and the options in, the graph dir out."""
        return Stage("mkgraph", self.out_dir(), {"mkgraph": to_dict(cfg)},
                     inputs=[self.lang, self.model], code=__name__, outputs=[self.out_dir()],
                     marker="", resumable=False)

    def run(self) -> dict:
        """Build the graph (or keep it when up to date); its graph.json content."""
        hmm = HmmModel.load(self.model)
        cfg = graph_context(load_config(GraphConfig, self.config, "mkgraph", self.options), hmm,
                            self.model)
        st = self.stage(cfg)
        if st.begin(self.force):
            build_graph(self.lang, hmm, self.out_dir(), cfg, force=True, hmm_path=self.model)
            st.finish()
        return json.loads((self.out_dir() / "graph.json").read_text())
