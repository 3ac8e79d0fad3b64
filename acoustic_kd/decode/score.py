"""Scoring: WER, CER and SER in Kaldi's format, per-utterance aligned errors, frame accuracy.

`%WER 1.23 [ 12 / 975, 2 ins, 3 del, 7 sub ]` counts errors over reference words (Kaldi's
compute-wer); the alignment is Kaldi's Levenshtein alignment (the `kaldialign` package), so the
ins/del/sub split is the one compute-wer reports. Utterances with a reference but no hypothesis are
scored as all deletions and the result is marked ` [PARTIAL]`; a hypothesis without a reference is
an error (nothing is dropped). With zero reference words the rate is 0 when there are no errors and
inf otherwise.

The character error rate (`%CER ...`, same layout) scores the characters of the words, spaces
dropped (the usual CER of graphemic and unsegmented languages); a combining mark counts with the
character it follows, after NFC normalisation.

Files (`write_scores`): `wer` and `cer` (the Kaldi lines), `errs.txt` and `cer_errs.txt` in Kaldi's
per_utt layout (`utt ref`, `utt hyp`, `utt op` (C/S/I/D), `utt #csid`) and `missing.txt` when PARTIAL.
`read_wer_file` is the one parser of such files.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import kaldialign
import numpy as np

from ..errors import DataError
from ..utils import atomic_write_text, c_sorted, read_table

EPS = "***"
_ALIGN_EPS = "\x00<eps>"    # never a word: a real "***" in a transcript stays a word


def align_words(ref: list[str], hyp: list[str]) -> list[tuple[str, str, str]]:
    """Kaldi's minimum-edit-distance alignment -> [(ref word | ***, hyp word | ***, op in C/S/I/D)]."""
    out = []
    for r, h in kaldialign.align(list(ref), list(hyp), _ALIGN_EPS):
        if r == _ALIGN_EPS:
            out.append((EPS, h, "I"))
        elif h == _ALIGN_EPS:
            out.append((r, EPS, "D"))
        else:
            out.append((r, h, "C" if r == h else "S"))
    return out


def edit_counts(ref: list[str], hyp: list[str]) -> dict[str, int]:
    """{'cor', 'sub', 'ins', 'del'} counts of the alignment of hyp against ref."""
    ops = [op for _, _, op in align_words(ref, hyp)]
    return {"cor": ops.count("C"), "sub": ops.count("S"), "ins": ops.count("I"), "del": ops.count("D")}


def chars_of(words: list[str]) -> list[str]:
    """Characters of a word sequence for CER: spaces dropped, NFC, combining marks kept on their base."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", "".join(words)):
        if out and unicodedata.combining(ch):
            out[-1] += ch
        else:
            out.append(ch)
    return out


@dataclass
class WerResult:
    """Corpus-level error counts (of words, or of characters when `label` is "CER")."""

    ins: int = 0
    dels: int = 0
    subs: int = 0
    ref_words: int = 0                                   # reference tokens (words or characters)
    sentences: int = 0
    sentence_errors: int = 0
    missing: list[str] = field(default_factory=list)    # refs without a hypothesis
    label: str = "WER"

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def rate(self) -> float:
        """Percent error rate (WER or CER)."""
        if self.ref_words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.ref_words

    @property
    def wer(self) -> float:
        return self.rate

    @property
    def ser(self) -> float:
        return 100.0 * self.sentence_errors / self.sentences if self.sentences else 0.0

    def kaldi_lines(self) -> str:
        """`%WER ...` (or `%CER ...`), `%SER ...` and `Scored ...` lines as compute-wer prints them."""
        partial = " [PARTIAL]" if self.missing else ""
        return (f"%{self.label} {self.rate:.2f} [ {self.errors} / {self.ref_words}, {self.ins} ins, "
                f"{self.dels} del, {self.subs} sub ]{partial}\n"
                f"%SER {self.ser:.2f} [ {self.sentence_errors} / {self.sentences} ]\n"
                f"Scored {self.sentences} sentences, {len(self.missing)} not present in hyp.\n")

    def to_dict(self) -> dict:
        """Counts; the rate is under 'wer' or 'cer' (the label, lower case)."""
        return {self.label.lower(): self.rate, "ser": self.ser, "errors": self.errors,
                "ins": self.ins, "del": self.dels, "sub": self.subs, "ref_words": self.ref_words,
                "sentences": self.sentences, "sentence_errors": self.sentence_errors,
                "missing": len(self.missing)}


Alignment = dict[str, list[tuple[str, str, str]]]


def score(refs: dict[str, list[str]], hyps: dict[str, list[str]], chars: bool = False
          ) -> tuple[WerResult, Alignment]:
    """Score hypotheses against references -> (totals, {utt: alignment}).

    chars: score characters (`chars_of`) instead of words, i.e. the CER.
    Raises DataError for hypotheses whose utterance has no reference.
    """
    extra = c_sorted(set(hyps) - set(refs))
    if extra:
        raise DataError("hyp", f"{len(extra)} hypotheses have no reference (e.g. {extra[0]})",
                        "score against the text of the decoded set")
    tokens = chars_of if chars else list
    res = WerResult(label="CER" if chars else "WER")
    aligned = {}
    for utt in c_sorted(refs):
        ref = tokens(refs[utt])
        if utt not in hyps:
            res.missing.append(utt)
        ali = align_words(ref, tokens(hyps.get(utt, [])))
        aligned[utt] = ali
        ops = [op for _, _, op in ali]
        res.ins += ops.count("I")
        res.dels += ops.count("D")
        res.subs += ops.count("S")
        res.ref_words += len(ref)
        res.sentences += 1
        res.sentence_errors += any(op != "C" for op in ops)
    return res, aligned


def score_both(refs: dict[str, list[str]], hyps: dict[str, list[str]]
               ) -> dict[str, tuple[WerResult, Alignment]]:
    """{'wer': score(...), 'cer': score(..., chars=True)}."""
    return {"wer": score(refs, hyps), "cer": score(refs, hyps, chars=True)}


def wer(ref: list[list[str]], hyp: list[list[str]], chars: bool = False) -> dict:
    """WER (or CER) of parallel lists of word sequences -> `WerResult.to_dict()`."""
    if len(ref) != len(hyp):
        raise ValueError(f"{len(ref)} references but {len(hyp)} hypotheses")
    keys = [f"{i:08d}" for i in range(len(ref))]
    return score(dict(zip(keys, ref)), dict(zip(keys, hyp)), chars)[0].to_dict()


def format_errs(aligned: Alignment) -> str:
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
                ) -> dict[str, WerResult]:
    """Score a hyp text file against a ref text file -> {'wer': ..., 'cer': ...}; write the score
    files (`write_scores`) into out_dir."""
    both = score_both(read_text(ref_path), read_text(hyp_path))
    if out_dir is not None:
        write_scores(out_dir, both)
    return {k: res for k, (res, _) in both.items()}


ERRS_FILES = {"wer": "errs.txt", "cer": "cer_errs.txt"}


def write_scores(out_dir: str | Path, scored: dict[str, tuple[WerResult, Alignment]]) -> None:
    """Write `wer` / `cer` (Kaldi lines), `errs.txt` / `cer_errs.txt` and `missing.txt` (PARTIAL)."""
    out_dir = Path(out_dir)
    for kind, (res, aligned) in scored.items():
        atomic_write_text(out_dir / kind, res.kaldi_lines())
        atomic_write_text(out_dir / ERRS_FILES[kind], format_errs(aligned))
        if res.missing:
            atomic_write_text(out_dir / "missing.txt", "".join(f"{u}\n" for u in res.missing))


# ------------------------------------------------------------------ reading score files back
_RATE_RE = re.compile(r"^%(WER|CER)\s+([0-9.]+|nan|inf)\s+\[\s*(\d+)\s*/\s*(\d+),\s*(\d+)\s+ins,"
                      r"\s*(\d+)\s+del,\s*(\d+)\s+sub\s*\](.*)$", re.M)
_SER_RE = re.compile(r"^%SER\s+([0-9.]+|nan|inf)\s+\[\s*(\d+)\s*/\s*(\d+)\s*\]", re.M)


@dataclass
class ScoreFile:
    """What a `wer` / `cer` file says."""

    label: str            # "WER" or "CER"
    rate: float           # percent
    errors: int
    ref_tokens: int
    ins: int
    dels: int
    subs: int
    partial: bool
    ser: float | None = None


def parse_score_text(text: str) -> ScoreFile | None:
    """Parse Kaldi compute-wer output (`%WER 1.23 [ 12 / 975, 2 ins, 3 del, 7 sub ] [PARTIAL]`,
    `%CER ...` alike, optional `%SER` line) -> ScoreFile, or None without such a line."""
    m = _RATE_RE.search(text)
    if not m:
        return None
    s = _SER_RE.search(text)
    return ScoreFile(m.group(1), float(m.group(2)), int(m.group(3)), int(m.group(4)),
                     int(m.group(5)), int(m.group(6)), int(m.group(7)), "[PARTIAL]" in m.group(8),
                     float(s.group(1)) if s else None)


def read_wer_file(path: str | Path) -> ScoreFile | None:
    """Read a `wer` or `cer` file -> ScoreFile; None when the file is absent or has no rate line."""
    path = Path(path)
    if not path.exists():
        return None
    return parse_score_text(path.read_text())


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
