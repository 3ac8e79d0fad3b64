"""The grammar: n-gram estimation from training transcripts, ARPA reading (checked) and writing.

Order 1: a word loop with add-one smoothed unigram probabilities. Order 2-5: Witten-Bell discounting
with Katz-style backoff to the add-one unigram. Probabilities are log10, as in ARPA files.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from pathlib import Path

from ..errors import ConfigError, DataError
from ..utils import atomic_write_text, read_text_file, text_lines


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


_SECTION = re.compile(r"\\(\d+)-grams:$")
_COUNT = re.compile(r"ngram\s+(\d+)\s*=\s*(\d+)$")
_SPECIAL = {"<s>", "</s>", "<unk>"}


class _ArpaReader:
    """State of one pass over an ARPA file (see `read_arpa`): the declared counts, the n-grams read
    so far, where each section began, and the file for messages."""

    def __init__(self, path, words):
        self.path, self.words = path, words
        self.declared: dict[int, int] = {}
        self.probs: list[dict] = []
        self.backoffs: dict = {}
        self.order, self.section_line, self.last = 0, 0, 0

    def fail(self, problem: str, lineno: int, fix: str = "fix or regenerate the ARPA file") -> None:
        raise DataError(self.path, problem, fix, lineno)

    def number(self, text: str, what: str, lineno: int) -> float:
        try:
            return float(text)
        except ValueError:
            pass
        raise DataError(self.path, f"{what} '{text}' is not a number", "fix or regenerate the ARPA "
                        "file", lineno)

    def header(self, line: str, lineno: int) -> None:
        m = _COUNT.match(line)
        if not m:
            self.fail(f"expected 'ngram N=COUNT' in the \\data\\ section, got '{line}'", lineno)
        self.declared[int(m.group(1))] = int(m.group(2))

    def start_section(self, n: int, lineno: int) -> None:
        self.end_section()
        if n not in self.declared or n != len(self.probs) + 1:
            self.fail(f"section \\{n}-grams: is not the next order the \\data\\ section declares "
                      f"(declared: {sorted(self.declared)})", lineno)
        self.order, self.section_line = n, lineno
        self.probs.append({})

    def end_section(self) -> None:
        if self.order and len(self.probs[-1]) != self.declared[self.order]:
            self.fail(f"'ngram {self.order}={self.declared[self.order]}' declared, but the "
                      f"\\{self.order}-grams: section holds {len(self.probs[-1])}", self.section_line,
                      "correct the count in the \\data\\ section, or regenerate the file")

    def entry(self, line: str, lineno: int) -> None:
        parts, n = line.split(), self.order
        if len(parts) not in (n + 1, n + 2):
            self.fail(f"a {n}-gram line needs a log10 probability, {n} word(s) and an optional "
                      f"backoff weight; got {len(parts)} field(s)", lineno)
        lp = self.number(parts[0], "log10 probability", lineno)
        if lp > 0:
            self.fail(f"log10 probability {parts[0]} is positive (a probability above 1)", lineno)
        ng = tuple(parts[1:n + 1])
        if self.words is not None:
            unknown = [w for w in ng if w not in self.words and w not in _SPECIAL]
            if unknown:
                self.fail(f"word '{unknown[0]}' is not in the lexicon", lineno,
                          "add it to the lexicon or prune it from the LM")
        self.probs[n - 1][ng] = lp
        if len(parts) == n + 2:
            self.backoffs[ng] = self.number(parts[-1], "backoff weight", lineno)


def read_arpa(path, words=None) -> tuple[list[dict], dict]:
    """Read and check an ARPA file (plain or gzip) -> (log10 probs per order {ngram tuple: lp},
    backoffs {ngram: log10 a}).

    Checked, each a DataError naming file:line: the \\data\\ counts against the sections, numeric
    fields, no positive log10 probability, the closing \\end\\, and with `words` (a set) that
    every n-gram word is one of them (or <s>, </s>, <unk>). Text before \\data\\ is ignored.
    """
    r = _ArpaReader(path, words)
    state = "preamble"   # -> data -> ngrams -> end
    for lineno, raw in text_lines(path):
        line, r.last = raw.strip(), lineno
        if state == "preamble":
            state = "data" if line == "\\data\\" else state
        elif not line or state == "end":
            continue
        elif line == "\\end\\":
            r.end_section()
            state = "end"
        elif _SECTION.match(line):
            r.start_section(int(_SECTION.match(line).group(1)), lineno)
            state = "ngrams"
        elif state == "data":
            r.header(line, lineno)
        else:
            r.entry(line, lineno)
    if state != "end":
        what = "no \\data\\ section" if state == "preamble" else "no \\end\\ line"
        r.fail(f"{what} (a truncated or non-ARPA file?)", r.last or None)
    if len(r.probs) != len(r.declared) or not r.probs or not r.probs[0]:
        r.fail(f"the \\data\\ section declares orders {sorted(r.declared)} but "
               f"{len(r.probs)} n-gram section(s) follow", r.last)
    return r.probs, r.backoffs


def install_arpa(src, out_dir, words) -> None:
    """Check a user's ARPA LM (plain or gzip) against the vocabulary `words` and write it as
    out_dir/G.arpa (plain text)."""
    src = Path(src)
    if not src.is_file():
        raise DataError(src, "ARPA file does not exist", "check the --arpa path")
    read_arpa(src, set(words))
    atomic_write_text(Path(out_dir) / "G.arpa", read_text_file(src))
