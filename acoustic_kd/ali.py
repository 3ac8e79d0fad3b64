"""Frame-level alignments: int32 [T] tied-state (pdf) ids per utterance, Kaldi ark/scp on disk.

An alignment dir holds `ali.scp` + `ali.*.ark` (kaldiio int32 vectors), `num_pdfs` (one integer),
`priors.txt` (normalised pdf counts, one float per line, with add-one smoothing) and, when some
utterances failed, `failed.txt` (`utt reason` lines).
"""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np

from .errors import DataError
from .utils import atomic_path, atomic_write_text, c_sorted, read_table


def write_alignments(ali_dir, alis: dict[str, np.ndarray], num_pdfs: int,
                     failed: dict[str, str] | None = None) -> None:
    """Write alignments (utt -> int32 [T]) with num_pdfs, priors and the failed list, atomically."""
    ali_dir = Path(ali_dir)
    ali_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(ali_dir / "ali.1.ark") as tmp_ark:
        scp_tmp = ali_dir / ".ali.scp.building"
        with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{scp_tmp}") as w:
            for utt in c_sorted(alis):
                a = np.asarray(alis[utt], dtype=np.int32)
                if a.size and (a.min() < 0 or a.max() >= num_pdfs):
                    raise DataError(ali_dir, f"utterance {utt}: pdf id out of range [0, {num_pdfs})",
                                    "check num_pdfs against the model that made the alignment")
                w[utt] = a
    # the scp written above points at the temporary ark name: rewrite it to the final name
    text = scp_tmp.read_text().replace(str(tmp_ark), str(ali_dir / "ali.1.ark"))
    scp_tmp.unlink()
    atomic_write_text(ali_dir / "ali.scp", text)
    atomic_write_text(ali_dir / "num_pdfs", f"{num_pdfs}\n")
    priors = compute_priors(alis.values(), num_pdfs)
    atomic_write_text(ali_dir / "priors.txt", "".join(f"{p:.8e}\n" for p in priors))
    fail_path = ali_dir / "failed.txt"
    if failed:
        atomic_write_text(fail_path, "".join(f"{u} {r}\n" for u, r in sorted(failed.items())))
    elif fail_path.exists():
        fail_path.unlink()


def read_alignments(ali_dir) -> dict[str, np.ndarray]:
    """Read `ali.scp` of an alignment dir -> {utt: int32 [T]}."""
    scp = Path(ali_dir) / "ali.scp"
    if not scp.exists():
        raise DataError(scp, "alignment scp not found", "run the align stage (acoustic-kd align) first")
    return {k: np.asarray(v, dtype=np.int32) for k, v in kaldiio.load_scp(str(scp)).items()}


def read_num_pdfs(ali_dir) -> int:
    p = Path(ali_dir) / "num_pdfs"
    if not p.exists():
        raise DataError(p, "num_pdfs not found", "alignment dirs must record their pdf count")
    return int(p.read_text().split()[0])


def read_priors(ali_dir) -> np.ndarray:
    return np.loadtxt(Path(ali_dir) / "priors.txt", dtype=np.float64, ndmin=1)


def compute_priors(alis, num_pdfs: int) -> np.ndarray:
    """Normalised pdf counts with add-one smoothing (so no pdf has prior 0). [num_pdfs] float64."""
    counts = np.ones(num_pdfs, dtype=np.float64)
    for a in alis:
        counts += np.bincount(np.asarray(a, dtype=np.int64), minlength=num_pdfs)[:num_pdfs]
    return counts / counts.sum()


def import_kaldi_alignments(src, num_pdfs: int) -> dict[str, np.ndarray]:
    """Import Kaldi `ali-to-pdf` output: an ark/scp (binary or text ark) or a text file `utt p1 p2 ...`."""
    src = str(src)
    out = {}
    if src.endswith(".scp"):
        items = kaldiio.load_scp(src).items()
    else:
        try:
            items = list(kaldiio.load_ark(src))
        except Exception:  # not an ark: plain text table
            items = [(u, np.array(rest.split(), dtype=np.int64)) for u, rest, _ in read_table(src)]
    for utt, a in items:
        a = np.asarray(a)
        if a.ndim != 1:
            raise DataError(src, f"utterance {utt}: expected a vector of pdf ids, got shape {a.shape}",
                            "pass the output of ali-to-pdf, not transition ids or posteriors")
        if a.size and (a.min() < 0 or a.max() >= num_pdfs):
            raise DataError(src, f"utterance {utt}: pdf id {int(a.max())} outside [0, {num_pdfs})",
                            "give the pdf count of the model that produced these alignments")
        out[utt] = a.astype(np.int32)
    return out


def check_lengths(alis: dict[str, np.ndarray], num_frames: dict[str, int], where="alignments",
                  tolerance: int = 0) -> None:
    """Raise if an alignment's length differs from its feature length (beyond `tolerance` frames)."""
    for utt, a in alis.items():
        if utt in num_frames and abs(len(a) - num_frames[utt]) > tolerance:
            raise DataError(where, f"utterance {utt}: alignment has {len(a)} frames but features "
                            f"have {num_frames[utt]}", "re-align with the same feature config "
                            "(frame shift, snip-edges) used to compute these features")
