"""Scoring: WER/SER in Kaldi's format, per-utterance aligned errors, frame accuracy.

`%WER 1.23 [ 12 / 975, 2 ins, 3 del, 7 sub ]` counts errors over reference words (Kaldi's
compute-wer). Utterances with a reference but no hypothesis are scored as all deletions and the
result is marked ` [PARTIAL]`; a hypothesis without a reference is an error (nothing is dropped).
With zero reference words the WER is 0 when there are no errors and inf otherwise.
`errs.txt` follows Kaldi's per_utt layout: `utt ref`, `utt hyp`, `utt op` (C/S/I/D), `utt #csid`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..utils import atomic_write_text, c_sorted, read_table

EPS = "***"


def align_words(ref: list[str], hyp: list[str]) -> list[tuple[str, str, str]]:
    """Minimum-edit-distance alignment -> [(ref word | ***, hyp word | ***, op in C/S/I/D)].

    Among alignments with the fewest errors, prefers substitutions, then deletions, then insertions
    on the backtrace (deterministic).
    """
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), dtype=np.int64)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]), d[i - 1, j] + 1, d[i, j - 1] + 1)
    out = []
    i, j = n, m
    while i or j:
        if i and j and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            out.append((ref[i - 1], hyp[j - 1], "C" if ref[i - 1] == hyp[j - 1] else "S"))
            i, j = i - 1, j - 1
        elif i and d[i, j] == d[i - 1, j] + 1:
            out.append((ref[i - 1], EPS, "D"))
            i -= 1
        else:
            out.append((EPS, hyp[j - 1], "I"))
            j -= 1
    return out[::-1]


def edit_counts(ref: list[str], hyp: list[str]) -> dict[str, int]:
    """{'cor', 'sub', 'ins', 'del'} counts of the alignment of hyp against ref."""
    ops = [op for _, _, op in align_words(ref, hyp)]
    return {"cor": ops.count("C"), "sub": ops.count("S"), "ins": ops.count("I"), "del": ops.count("D")}


@dataclass
class WerResult:
    """Corpus-level error counts."""

    ins: int = 0
    dels: int = 0
    subs: int = 0
    ref_words: int = 0
    sentences: int = 0
    sentence_errors: int = 0
    missing: list[str] = field(default_factory=list)    # refs without a hypothesis

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def wer(self) -> float:
        """Percent word error rate."""
        if self.ref_words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.ref_words

    @property
    def ser(self) -> float:
        return 100.0 * self.sentence_errors / self.sentences if self.sentences else 0.0

    def kaldi_lines(self) -> str:
        """`%WER ...`, `%SER ...` and `Scored ...` lines as Kaldi's compute-wer prints them."""
        partial = " [PARTIAL]" if self.missing else ""
        return (f"%WER {self.wer:.2f} [ {self.errors} / {self.ref_words}, {self.ins} ins, "
                f"{self.dels} del, {self.subs} sub ]{partial}\n"
                f"%SER {self.ser:.2f} [ {self.sentence_errors} / {self.sentences} ]\n"
                f"Scored {self.sentences} sentences, {len(self.missing)} not present in hyp.\n")

    def to_dict(self) -> dict:
        return {"wer": self.wer, "ser": self.ser, "errors": self.errors, "ins": self.ins,
                "del": self.dels, "sub": self.subs, "ref_words": self.ref_words,
                "sentences": self.sentences, "sentence_errors": self.sentence_errors,
                "missing": len(self.missing)}


def score(refs: dict[str, list[str]], hyps: dict[str, list[str]]
          ) -> tuple[WerResult, dict[str, list[tuple[str, str, str]]]]:
    """Score hypotheses against references -> (totals, {utt: word alignment}).

    Raises DataError for hypotheses whose utterance has no reference.
    """
    extra = c_sorted(set(hyps) - set(refs))
    if extra:
        raise DataError("hyp", f"{len(extra)} hypotheses have no reference (e.g. {extra[0]})",
                        "score against the text of the decoded set")
    res = WerResult()
    aligned = {}
    for utt in c_sorted(refs):
        ref = refs[utt]
        if utt not in hyps:
            res.missing.append(utt)
        ali = align_words(ref, hyps.get(utt, []))
        aligned[utt] = ali
        ops = [op for _, _, op in ali]
        res.ins += ops.count("I")
        res.dels += ops.count("D")
        res.subs += ops.count("S")
        res.ref_words += len(ref)
        res.sentences += 1
        res.sentence_errors += any(op != "C" for op in ops)
    return res, aligned


def wer(ref: list[list[str]], hyp: list[list[str]]) -> dict:
    """WER of parallel lists of word sequences -> `WerResult.to_dict()`."""
    if len(ref) != len(hyp):
        raise ValueError(f"{len(ref)} references but {len(hyp)} hypotheses")
    keys = [f"{i:08d}" for i in range(len(ref))]
    return score(dict(zip(keys, ref)), dict(zip(keys, hyp)))[0].to_dict()


def format_errs(aligned: dict[str, list[tuple[str, str, str]]]) -> str:
    """Kaldi per_utt style text: ref / hyp / op lines (columns padded) and `#csid` counts."""
    lines = []
    for utt, ali in aligned.items():
        widths = [max(len(r), len(h)) for r, h, _ in ali]
        row = lambda xs: " ".join(x.ljust(w) for x, w in zip(xs, widths)).rstrip()  # noqa: E731
        ops = [op for _, _, op in ali]
        lines += [f"{utt} ref  {row([r for r, _, _ in ali])}", f"{utt} hyp  {row([h for _, h, _ in ali])}",
                  f"{utt} op   {row(ops)}",
                  f"{utt} #csid {' '.join(str(ops.count(c)) for c in 'CSID')}"]
    return "".join(line.rstrip() + "\n" for line in lines)


def read_text(path: str | Path, allow_empty: bool = True) -> dict[str, list[str]]:
    """Kaldi `text` file -> {utt: words}; a line with only the utterance id is an empty transcript."""
    return {utt: rest.split() for utt, rest, _ in read_table(path, min_fields=1 if allow_empty else 2)}


def score_files(ref_path: str | Path, hyp_path: str | Path, out_dir: str | Path | None = None
                ) -> WerResult:
    """Score a hyp text file against a ref text file; write `wer` and `errs.txt` into out_dir."""
    res, aligned = score(read_text(ref_path), read_text(hyp_path))
    if out_dir is not None:
        write_scores(out_dir, res, aligned)
    return res


def write_scores(out_dir: str | Path, res: WerResult, aligned: dict) -> None:
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "wer", res.kaldi_lines())
    atomic_write_text(out_dir / "errs.txt", format_errs(aligned))
    if res.missing:
        atomic_write_text(out_dir / "missing.txt", "".join(f"{u}\n" for u in res.missing))


def frame_accuracy(pred: dict[str, np.ndarray], alis: dict[str, np.ndarray]) -> dict:
    """Frame accuracy of predictions against alignments.

    pred: utt -> log-posteriors [T, P] (argmax taken) or pdf ids [T]. alis: utt -> int32 [T].
    Utterances missing on either side or with a length mismatch are counted, not scored.
    Returns {'acc' (fraction), 'frames', 'utts', 'missing', 'length_mismatch'}.
    """
    correct = frames = utts = mismatch = 0
    for utt, p in pred.items():
        if utt not in alis:
            continue
        a = np.asarray(alis[utt])
        ids = np.asarray(p).argmax(axis=1) if np.ndim(p) == 2 else np.asarray(p)
        if len(ids) != len(a):
            mismatch += 1
            continue
        correct += int((ids == a).sum())
        frames += len(a)
        utts += 1
    return {"acc": correct / frames if frames else 0.0, "frames": frames, "utts": utts,
            "missing": len(set(alis) ^ set(pred)), "length_mismatch": mismatch}
