"""The grammar: n-gram estimation from training transcripts and ARPA reading / writing.

Order 1: a word loop with add-one smoothed unigram probabilities. Order 2-5: Witten-Bell discounting
with Katz-style backoff to the add-one unigram. Probabilities are log10, as in ARPA files.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from pathlib import Path

from ..errors import ConfigError, DataError
from ..utils import atomic_write_text


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


def install_arpa(src: str | Path, out_dir: str | Path, words: set[str]) -> None:
    """Validate a user's ARPA LM against the vocabulary and install it as out_dir/G.arpa."""
    src = Path(src)
    if not src.exists():
        raise DataError(src, "ARPA file does not exist", "check the --arpa path")
    probs, _ = read_arpa(src)
    if not probs or not probs[0]:
        raise DataError(src, "no 1-grams found", "give an ARPA file (\\data\\, \\1-grams:, ...)")
    unknown = sorted({w for ng in probs[0] for w in ng} - words - {"<s>", "</s>", "<unk>"})
    if unknown:
        raise DataError(src, f"{len(unknown)} LM word(s) not in the lexicon, e.g. {unknown[:5]}",
                        "add them to the lexicon or prune them from the LM")
    atomic_write_text(Path(out_dir) / "G.arpa", src.read_text(encoding="utf-8"))
