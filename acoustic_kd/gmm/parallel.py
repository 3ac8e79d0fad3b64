"""The GMM passes over `nj` parts of a data set: the split, the parts' jobs, the sums.

`split_speakers` cuts a data set into at most `nj` parts of whole speakers (fMLLR is per speaker;
Kaldi's split_data.sh keeps speakers whole too), balanced by feature frames, the same for every
pass and every run. `open_parts` gives each part to a worker job (pool.WorkerPool: local processes
or Slurm jobs, one thread each, started once and kept for all the passes of a run) or, for one
local part, keeps it in this process. The driver (gmm/train.py, gmm/sat.py, gmm/run.py) sends
every part the same call and adds their results up in part order (`Parts.sum`), so one part
computes exactly what the single-process code does and more parts differ only in the order of
the float additions.
"""

from __future__ import annotations

import functools
import operator
from pathlib import Path
from typing import Mapping

import numpy as np

from ..pool import InProcess, WorkerPool
from ..utils import c_sorted, get_logger, read_table
from .align import AlignResult
from .fmllr import read_utt2spk, speaker_of
from .part import Part, SetAlignment

log = get_logger(__name__)

WORKER_MODULE = "acoustic_kd.gmm"   # gmm/__main__.py: serves one part (a Part or an NnetPart)


def split_speakers(frames: Mapping[str, int], utt2spk: Mapping[str, str], nj: int
                   ) -> list[list[str]]:
    """Utterances (with `frames[u]` frames) into at most `nj` non-empty parts of whole speakers:
    speakers by decreasing frames (then name) each go to the part with the fewest frames so far
    (then the lowest index); each part's utterances C-sorted. Deterministic."""
    by_spk: dict[str, list[str]] = {}
    for u in c_sorted(frames):
        by_spk.setdefault(speaker_of(utt2spk, u), []).append(u)
    total = {s: sum(frames[u] for u in us) for s, us in by_spk.items()}
    parts: list[list[str]] = [[] for _ in range(max(1, min(nj, len(by_spk))))]
    load = [0] * len(parts)
    for s in sorted(by_spk, key=lambda s: (-total[s], s)):
        j = min(range(len(parts)), key=lambda j: (load[j], j))
        parts[j] += by_spk[s]
        load[j] += total[s]
    return [c_sorted(p) for p in parts]


def add_up(results: list):
    """The sum of the parts' results in part order (tuples added field by field); None (a part
    without frames) is left out."""
    results = [r for r in results if r is not None]
    if not results:
        return None
    if isinstance(results[0], tuple):
        return tuple(add_up(list(col)) for col in zip(*results))
    return functools.reduce(operator.add, results)


def merge_dicts(results: list[dict]) -> dict:
    """The union of the parts' dicts (disjoint keys: utterances or speakers)."""
    out: dict = {}
    for r in results:
        out.update(r)
    return out


def merge_context_stats(results: list) -> tuple:
    """tree.context_stats of the parts -> one set (keys [U, 4], n [U], s1/s2 [U, D]) over the
    union of their contexts, summed in part order."""
    results = [r for r in results if r is not None]
    if len(results) == 1:
        return results[0]
    # ordered as context_stats orders its keys: by (phone, state, left, right)
    keys = np.concatenate([r[0] for r in results])[:, [1, 3, 0, 2]]
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    uniq, inv = uniq[:, [2, 0, 3, 1]], inv.reshape(-1)
    n = np.zeros(len(uniq))
    s1 = np.zeros((len(uniq), results[0][2].shape[1]))
    s2 = np.zeros_like(s1)
    np.add.at(n, inv, np.concatenate([r[1] for r in results]))
    np.add.at(s1, inv, np.concatenate([r[2] for r in results]))
    np.add.at(s2, inv, np.concatenate([r[3] for r in results]))
    return uniq, n, s1, s2


class Parts:
    """A data set's parts, each held by a Part in a job or in this process (`pool`)."""

    def __init__(self, pool, utts: list[list[str]]):
        self.pool, self.utts = pool, utts
        self.kind: object = None   # what the parts' features are (the driver's note)

    def __enter__(self) -> "Parts":
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.pool.close(kill=exc_type is not None)

    @property
    def nj(self) -> int:
        return len(self.utts)

    def all(self, method: str, *args, **kwargs) -> list:
        """Every part runs `method`; the results in part order."""
        return self.pool.all(method, *args, **kwargs)

    def sum(self, method: str, *args, **kwargs):
        """`add_up` of every part's `method` result."""
        return add_up(self.all(method, *args, **kwargs))

    def merged(self, method: str, *args, **kwargs) -> dict:
        """`merge_dicts` of every part's `method` result."""
        return merge_dicts(self.all(method, *args, **kwargs))

    def gather(self) -> SetAlignment:
        """The whole set's alignment (each part's `result`)."""
        return SetAlignment.merge(self.all("result"))

    def local(self) -> Part:
        """The Part of a set held in this process."""
        return self.pool.objects[0]

    @classmethod
    def of(cls, feats, texts, lang, utt2spk=None, res: AlignResult | None = None) -> "Parts":
        """One part in this process holding `feats` (utt -> [T, D]) (Part.of)."""
        pool = InProcess(Part.of)
        pool.each("__init__", [(feats, texts, lang, utt2spk, res)])
        return cls(pool, [c_sorted(feats)])


def global_moments(parts: Parts) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and variance [D] of every frame of the parts' selections."""
    n, s, ss = parts.sum("global_stats")
    mean = s / n
    return mean, np.maximum(ss / n - mean ** 2, 0.0)


def set_utterances(data_dir) -> dict[str, int]:
    """The utterances of a data dir (with features or a transcript) -> feature frames (0: none)."""
    from ..features.featureset import FeatureSet

    data_dir = Path(data_dir)
    fs = FeatureSet(data_dir, cmvn="none")
    frames = {u: fs.num_frames(u) for u in fs.utts}
    for u, _, _ in read_table(data_dir / "text", min_fields=1):
        frames.setdefault(u, 0)
    return frames


def start_pool(args: list[tuple], local, backend: str = "local", slurm_opts: str = "",
               log_dir=".", name: str = "align"):
    """Part j built from `args[j]` = (kind, *rest) in a worker job each (gmm/__main__.py builds
    it; logs: `log_dir/NAME.J.log`) or, for one local part, in this process by `local(*args[0])`;
    close the pool to end the jobs."""
    if len(args) == 1 and backend == "local":
        pool = InProcess(local)
    else:
        pool = WorkerPool(WORKER_MODULE, len(args), log_dir, name, backend, slurm_opts)
        pool.start()
    try:
        pool.each("__init__", args)
    except BaseException:
        pool.close(kill=True)
        raise
    return pool


def split_set(data_dir, nj: int) -> list[list[str]]:
    """`split_speakers` of a data dir's utterances (logged when it has fewer speakers than nj)."""
    split = split_speakers(set_utterances(data_dir), read_utt2spk(data_dir), nj)
    if len(split) < nj:
        log.info("%s: %d speaker(s): %d part(s), not %d", data_dir, len(split), len(split), nj)
    return split


def open_parts(data_dir, lang_dir, front_end: dict, nj: int = 1, backend: str = "local",
               slurm_opts: str = "", log_dir=None, name: str = "align") -> Parts:
    """A data dir split into (at most) `nj` parts of whole speakers, each loaded by a worker job
    (`start_pool`); a context manager that ends the jobs. Features come with `load_features`."""
    split = split_set(data_dir, nj)
    args = [("gmm", str(data_dir), str(lang_dir), utts, dict(front_end)) for utts in split]
    return Parts(start_pool(args, load_part, backend, slurm_opts,
                            log_dir or Path(data_dir) / "log", name), split)


def load_part(kind: str, *args) -> Part:
    """A "gmm" worker's part: Part.load(*args)."""
    return Part.load(*args)
