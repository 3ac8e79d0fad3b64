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
from dataclasses import dataclass, field
from pathlib import Path

from ..config import from_dict, to_dict
from ..config_types import check_fields
from ..errors import ConfigError, DataError
from ..utils import atomic_write_json, atomic_write_text, c_sorted, get_logger, read_table
from .arpa import write_arpa
from .lexicon import (ARPABET, MAX_OOV_RATE, SIL, SPN, UNK, Lexicon, base_phone, check_oov_rate,
                      cmudict_lexicon, load_lexicon, oov_report, position_dependent)

log = get_logger(__name__)


@dataclass
class LangConfig:
    """Options of `acoustic-kd lang`."""

    strip_stress: bool = field(default=True, metadata={"help": "drop stress digits (AH0 -> AH)"})
    position_dependent: bool = field(default=False, metadata={
        "help": "word-position-dependent phones (_B begin, _I internal, _E end, _S singleton)"})
    sil_prob: float = field(default=0.5, metadata={
        "help": "probability of optional silence between words and at utterance edges",
        "range": "[0, 1)"})
    oov_policy: str = field(default="unk", metadata={
        "help": "'unk': map OOV words to <unk> (SPN garbage model); 'skip': skip those utterances",
        "choices": ("unk", "skip")})
    phone_states: int = field(default=3, metadata={"help": "HMM states per speech phone",
                                                   "range": "[1, inf)"})
    sil_states: int = field(default=5, metadata={
        "help": "HMM states of silence / spoken noise", "range": "[1, inf)"})
    self_loop_prob: float = field(default=0.75, metadata={
        "help": "initial self-loop probability", "range": "(0, 1)"})
    lm_order: int = field(default=3, metadata={
        "help": "G.arpa order: 1 word loop (digit strings), 2 to 5 n-gram (a trigram: dev WER 38.2 "
                "vs 41.5 %% with the bigram, recipes/mboshi/RESULTS.md)", "range": "[1, 5]"})

    def __post_init__(self):
        check_fields(self)


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


# ------------------------------------------------------------------ lang dir I/O
def prepare_lang(texts: dict[str, str], lexicon_source: str, out_dir, cfg: LangConfig | None = None,
                 extra_texts: dict[str, str] | None = None,
                 max_oov_rate: float = MAX_OOV_RATE) -> Lang:
    """Build and write a lang dir from training transcripts (+ extra sets' words for the vocabulary).

    `lexicon_source` is a lexicon file path or the string "cmudict". The grammar is estimated from
    `texts` only. More than `max_oov_rate` of the running words (all transcripts) out of the
    lexicon is an error (`lexicon.check_oov_rate`). Returns the Lang that `load_lang(out_dir)` would give.
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
    check_oov_rate(all_texts, oov_counts, lexicon, lexicon_source, max_oov_rate)
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
