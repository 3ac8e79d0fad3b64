"""A set of diagonal-covariance GMMs, one per pdf, stored as flat component arrays (numpy, vectorised).

Components of all pdfs live in one table: `means` [C, D], `vars` [C, D], `log_weights` [C] and
`comp_pdf` [C] (owning pdf). Likelihoods use the expanded quadratic form so a whole utterance is one
matrix product: log N(x; m, v) = x^2 . (-1/2v) + x . (m/v) + const.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import DataError
from ..utils import atomic_path

LOG_2PI = float(np.log(2 * np.pi))
MIN_OCC = 3.0   # frames below which a Gaussian is not re-estimated (dropped unless its pdf's heaviest)
# MKL multiplies a matrix of few rows, or by a single column, along other paths whose rounding
# differs: padded to this many rows and two columns, a frame's float32 log-likelihoods do not depend
# on the frames computed with it (the split over `--nj` jobs; checked with torch's MKL: 1 to 1000
# rows in any order, 1 to 33 components, 13 to 60 dimensions)
MIN_ROWS = 32


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a [N, K] @ b [K, M] through torch, whose thread count can be changed at run time (numpy's
    BLAS threads cannot, and spinning threads make the many small products here 30x slower on a
    busy machine); see `single_thread`."""
    return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(np.ascontiguousarray(b))).numpy()


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the enclosed GMM/Viterbi code with one torch thread (the matrices are small), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class GmmStats:
    """Sufficient statistics per component: occ [C], first [C, D], second [C, D]; total loglike;
    frames in all and per pdf [P] (the pdf's occupancy, counted: sums of posteriors that are
    whole numbers only up to rounding would tip decisions on thresholds one way or the other)."""

    occ: np.ndarray
    first: np.ndarray
    second: np.ndarray
    loglike: float
    frames: int
    pdf_frames: np.ndarray

    @property
    def avg_loglike(self) -> float:
        return self.loglike / max(self.frames, 1)

    def __add__(self, o: "GmmStats") -> "GmmStats":
        return GmmStats(self.occ + o.occ, self.first + o.first, self.second + o.second,
                        self.loglike + o.loglike, self.frames + o.frames,
                        self.pdf_frames + o.pdf_frames)


def gaussian_stats_loglike(n: np.ndarray, s1: np.ndarray, s2: np.ndarray, var_floor: np.ndarray
                           ) -> np.ndarray:
    """Log-likelihood of data under its own ML diagonal Gaussian. n [..], s1/s2 [.., D] -> [..]."""
    n_safe = np.maximum(n, 1e-10)[..., None]
    mean = s1 / n_safe
    var = np.maximum(s2 / n_safe - mean ** 2, var_floor)
    d = s1.shape[-1]
    return -0.5 * n * (d * LOG_2PI + np.log(var).sum(-1) + d)


class DiagGmm:
    """GMMs for `num_pdfs` pdfs (each with >= 1 component)."""

    def __init__(self, means: np.ndarray, vars_: np.ndarray, log_weights: np.ndarray,
                 comp_pdf: np.ndarray, num_pdfs: int):
        self.means = np.asarray(means, dtype=np.float64)
        self.vars = np.asarray(vars_, dtype=np.float64)
        self.log_weights = np.asarray(log_weights, dtype=np.float64)
        self.comp_pdf = np.asarray(comp_pdf, dtype=np.int64)
        self.num_pdfs = int(num_pdfs)
        self.removed_gauss = 0
        self._refresh()

    @classmethod
    def from_stats(cls, n: np.ndarray, s1: np.ndarray, s2: np.ndarray, var_floor: np.ndarray,
                   fallback_mean: np.ndarray, fallback_var: np.ndarray) -> "DiagGmm":
        """One Gaussian per pdf from stats n [P], s1/s2 [P, D]; pdfs without data get the fallback."""
        n_safe = np.maximum(n, 1e-10)[:, None]
        mean = s1 / n_safe
        var = np.maximum(s2 / n_safe - mean ** 2, var_floor)
        empty = n <= 0
        mean[empty] = fallback_mean[empty] if np.ndim(fallback_mean) == 2 else fallback_mean
        var[empty] = fallback_var[empty] if np.ndim(fallback_var) == 2 else fallback_var
        p = len(n)
        return cls(mean, var, np.zeros(p), np.arange(p), p)

    @property
    def num_gauss(self) -> int:
        return len(self.comp_pdf)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _refresh(self) -> None:
        """Precompute the quadratic-form terms and the [P, M] padded component index."""
        inv = 1.0 / self.vars
        self._a = (-0.5 * inv).astype(np.float32)                       # [C, D]
        self._b = (self.means * inv).astype(np.float32)                 # [C, D]
        self._c = (self.log_weights - 0.5 * (self.dim * LOG_2PI + np.log(self.vars).sum(1)
                                             + (self.means ** 2 * inv).sum(1))).astype(np.float32)
        counts = np.bincount(self.comp_pdf, minlength=self.num_pdfs)
        if (counts == 0).any():
            raise DataError(None, f"GMM of {self.num_pdfs} pdfs: pdf {int(np.argmin(counts))} has no "
                            "Gaussian (a damaged or hand-edited final.gmm.npz)",
                            "re-run the align stage with --force")
        m = int(counts.max())
        order = np.argsort(self.comp_pdf, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._order, self._first, self._count = order, starts, counts
        slot = np.arange(len(order)) - np.repeat(starts, counts)
        self._pad = np.full((self.num_pdfs, m), -1, dtype=np.int64)      # [P, M], -1 = padding
        self._pad[self.comp_pdf[order], slot] = order

    def component_loglikes(self, x: np.ndarray, comps: np.ndarray) -> np.ndarray:
        """log(w_c N(x_t; c)) for frames x [T, D] and component ids comps [K] -> [T, K] float32."""
        x = np.asarray(x, dtype=np.float32)
        n, k = len(x), len(comps)
        if n < MIN_ROWS:
            x = np.concatenate([x, np.zeros((MIN_ROWS - n, x.shape[1]), dtype=np.float32)])
        w = np.concatenate([self._a[comps], self._b[comps]], axis=1)    # [K, 2D]
        if k < 2:
            w = np.concatenate([w, np.zeros_like(w)])
        return matmul(np.concatenate([x * x, x], axis=1), w.T)[:n, :k] + self._c[comps]

    def loglikes(self, x: np.ndarray, pdfs: np.ndarray | None = None) -> np.ndarray:
        """Per-frame log-likelihood of each pdf: x [T, D], pdfs [K] (default all) -> [T, K] float32."""
        pdfs = np.arange(self.num_pdfs) if pdfs is None else np.asarray(pdfs, dtype=np.int64)
        counts = self._count[pdfs]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        # component ids of the selected pdfs, contiguous per pdf (no padding)
        comps = self._order[np.repeat(self._first[pdfs] - starts, counts) + np.arange(counts.sum())]
        ll = self.component_loglikes(x, comps)                           # [T, sum(counts)]
        mx = np.maximum.reduceat(ll, starts, axis=1)                     # [T, K]
        tot = np.add.reduceat(np.exp(ll - np.repeat(mx, counts, axis=1)), starts, axis=1)
        return mx + np.log(tot)

    def pdf_components(self, p: int) -> np.ndarray:
        """Component ids of pdf `p` [m]."""
        return self._pad[p][self._pad[p] >= 0]

    # ------------------------------------------------------------ EM
    def posteriors(self, x: np.ndarray, pdf: np.ndarray
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per pdf with frames: (its frames float64 [n, D], its component ids [m], component
        posteriors within the pdf [n, m], frame log-likelihoods [n]), given a pdf per frame."""
        order = np.argsort(pdf, kind="stable")
        bounds = np.searchsorted(pdf[order], np.arange(self.num_pdfs + 1))
        for p in np.nonzero(np.diff(bounds))[0]:
            xp = x[order[bounds[p]:bounds[p + 1]]].astype(np.float64)
            comps = self.pdf_components(p)
            ll = self.component_loglikes(xp, comps).astype(np.float64)  # [n, m]
            mx = ll.max(1, keepdims=True)
            lse = mx + np.log(np.exp(ll - mx).sum(1, keepdims=True))
            yield xp, comps, np.exp(ll - lse), lse[:, 0]

    def accumulate(self, x: np.ndarray, pdf: np.ndarray) -> GmmStats:
        """E-step given a hard pdf per frame: x [N, D], pdf [N] -> component statistics."""
        c, d = self.num_gauss, self.dim
        occ, first, second = np.zeros(c), np.zeros((c, d)), np.zeros((c, d))
        total = 0.0
        for xp, comps, post, lse in self.posteriors(x, pdf):
            total += float(lse.sum())
            occ[comps] += post.sum(0)
            first[comps] += matmul(post.T, xp)
            second[comps] += matmul(post.T, xp * xp)
        return GmmStats(occ, first, second, total, int(len(pdf)),
                        np.bincount(pdf, minlength=self.num_pdfs).astype(np.float64))

    def update(self, stats: GmmStats, var_floor: np.ndarray, min_occ: float = MIN_OCC) -> None:
        """M-step: ML weights, means and (floored) variances; starved components are removed.

        A component with occupancy below `min_occ` is dropped (and not updated), but every pdf
        keeps at least its heaviest component (as Kaldi's gmm-est --min-gaussian-occupancy): a pdf
        with no data, or whose data is spread thinly over its components, keeps its old
        parameters. `removed_gauss` counts the components dropped.
        """
        occ_pdf = np.bincount(self.comp_pdf, weights=stats.occ, minlength=self.num_pdfs)
        frames = stats.pdf_frames[self.comp_pdf]
        heaviest = np.zeros(self.num_gauss, dtype=bool)
        # sort by (pdf, occupancy): the last component of each pdf's run is its heaviest
        order = np.lexsort((stats.occ, self.comp_pdf))
        last = np.r_[self.comp_pdf[order][1:] != self.comp_pdf[order][:-1], True]
        heaviest[order[last]] = True
        keep = (stats.occ >= min_occ) | heaviest | (frames < min_occ)
        self.removed_gauss = int((~keep).sum())
        upd = stats.occ >= min_occ
        n = np.maximum(stats.occ, 1e-10)[:, None]
        mean = stats.first / n
        var = np.maximum(stats.second / n - mean ** 2, var_floor)
        self.means[upd] = mean[upd]
        self.vars[upd] = var[upd]
        trained = frames >= min_occ
        self.log_weights[trained] = np.log(np.maximum(stats.occ[trained], 1e-10)
                                           / occ_pdf[self.comp_pdf][trained])
        self._select(keep)

    def _select(self, keep: np.ndarray) -> None:
        self.means, self.vars = self.means[keep], self.vars[keep]
        self.comp_pdf = self.comp_pdf[keep]
        lw = self.log_weights[keep]
        # renormalise weights per pdf after dropping components
        norm = np.zeros(self.num_pdfs)
        np.add.at(norm, self.comp_pdf, np.exp(lw))
        self.log_weights = lw - np.log(norm[self.comp_pdf])
        self._refresh()

    def split(self, target_total: int, occ_pdf: np.ndarray, power: float = 0.2,
              min_frames_per_gauss: float = 20.0, perturb: float = 0.2) -> None:
        """Mix up towards `target_total` Gaussians, shared out in proportion to occupancy^power.

        Each pdf splits its heaviest components (mean +- perturb * stddev, weight halved) until it
        reaches its share, never beyond occupancy / min_frames_per_gauss components.
        """
        cur = np.bincount(self.comp_pdf, minlength=self.num_pdfs)
        if target_total <= cur.sum():
            return
        share = np.maximum(occ_pdf, 0) ** power
        want = np.floor(target_total * share / max(share.sum(), 1e-10) + 0.5).astype(np.int64)
        want = np.minimum(want, np.maximum(1, (occ_pdf / min_frames_per_gauss).astype(np.int64)))
        means, vars_, lws, pdfs = [self.means], [self.vars], [self.log_weights.copy()], [self.comp_pdf]
        lw_all = lws[0]
        for p in np.nonzero(want > cur)[0]:
            comps = self._pad[p][self._pad[p] >= 0]
            for _ in range(int(want[p] - cur[p])):
                c = comps[np.argmax(lw_all[comps])]
                lw_all[c] -= np.log(2.0)
                delta = perturb * np.sqrt(self.vars[c])
                means.append((self.means[c] + delta)[None])
                self.means[c] = self.means[c] - delta
                vars_.append(self.vars[c][None].copy())
                lws.append(np.array([lw_all[c]]))
                pdfs.append(np.array([p]))
        self.means = np.concatenate(means)
        self.vars = np.concatenate(vars_)
        self.log_weights = np.concatenate(lws)
        self.comp_pdf = np.concatenate(pdfs)
        self._refresh()

    # ------------------------------------------------------------ I/O
    def save(self, path) -> None:
        """Write `means`, `vars`, `log_weights`, `comp_pdf`, `num_pdfs` to an .npz file."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, means=self.means, vars=self.vars, log_weights=self.log_weights,
                         comp_pdf=self.comp_pdf, num_pdfs=np.array(self.num_pdfs))

    @classmethod
    def load(cls, path) -> "DiagGmm":
        path = Path(path)
        if not path.exists():
            raise DataError(path, "GMM file not found", "run `acoustic-kd align` first")
        z = np.load(path)
        try:
            return cls(z["means"], z["vars"], z["log_weights"], z["comp_pdf"], int(z["num_pdfs"]))
        except DataError as e:
            raise DataError(path, e.problem, e.fix) from None
