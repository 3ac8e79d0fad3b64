"""LDA + MLLT feature transforms for a GMM-HMM pass (the method of Kaldi's `train_lda_mllt.sh`).

Cepstra (mean/variance normalised, no deltas) are spliced over +-`context` frames; LDA, estimated
with the tied states of the previous pass's alignment as classes (silence frames left out), projects
the splice to `dim` dimensions with unit within-class variance. During the new pass's training a
global MLLT (a semi-tied covariance transform, Gales 1999) is re-estimated on a few iterations: it
rotates the feature space so that the diagonal-covariance Gaussians fit it best. The pass's final
transform is affine, [dim, D + 1] (last column = offset), applied to every spliced frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import DataError
from .diag_gmm import DiagGmm, matmul


def splice(x: np.ndarray, context: int) -> np.ndarray:
    """Stack each frame with its +-`context` neighbours (edges replicated): [T, D] -> [T, D(2c+1)]."""
    x = np.asarray(x, dtype=np.float32)
    t = len(x)
    padded = np.pad(x, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([padded[i:i + t] for i in range(2 * context + 1)], axis=1)


def apply_transform(m: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Affine transform [d, D + 1] (or linear [d, D]) of frames [T, D] -> float32 [T, d]."""
    m = np.asarray(m, dtype=np.float32)
    if m.shape[1] == x.shape[1] + 1:
        return matmul(np.asarray(x, dtype=np.float32), m[:, :-1].T.copy()) + m[:, -1]
    return matmul(np.asarray(x, dtype=np.float32), m.T.copy())


@dataclass
class LdaStats:
    """Additive LDA statistics of weighted frames: frames with weight > 0, total weight, weighted
    sum [D] and scatter [D, D] (uncentred), per class weight [K] and weighted sum [K, D]."""

    frames: int
    weight: float
    sum: np.ndarray
    scatter: np.ndarray
    class_weight: np.ndarray
    class_sum: np.ndarray

    def __add__(self, o: "LdaStats") -> "LdaStats":
        return LdaStats(self.frames + o.frames, self.weight + o.weight, self.sum + o.sum,
                        self.scatter + o.scatter, self.class_weight + o.class_weight,
                        self.class_sum + o.class_sum)


def lda_stats(x: np.ndarray, cls: np.ndarray, weight: np.ndarray, num_classes: int) -> LdaStats:
    """LDA statistics of frames x [N, D] with class ids cls [N] < num_classes and weights [N]."""
    x = np.asarray(x, dtype=np.float64)
    keep = weight > 0
    x, cls, w = x[keep], cls[keep], weight[keep]
    xw = x * w[:, None]
    s = np.zeros((num_classes, x.shape[1]))
    np.add.at(s, cls, xw)
    return LdaStats(int(keep.sum()), float(w.sum()), xw.sum(0), matmul(xw.T, x),
                    np.bincount(cls, weights=w, minlength=num_classes), s)


def lda_from_stats(st: LdaStats, dim: int, within_floor: float = 1e-6
                   ) -> tuple[np.ndarray, np.ndarray]:
    """LDA from summed statistics -> (transform [dim, D + 1] whose output has zero mean and unit
    within-class variance, eigenvalues [D], descending: the between/within variance ratio of each
    direction)."""
    d = len(st.sum)
    if st.frames < 2 * d:
        raise DataError(None, f"LDA: {st.frames} weighted frames for {d} dimensions",
                        "align more (non-silence) training data before the LDA+MLLT stage")
    if dim > d:
        raise DataError(None, f"LDA dim {dim} exceeds the spliced dimension {d}",
                        "lower align.lda_dim or raise align.lda_context")
    mean = st.sum / st.weight
    used = st.class_weight > 0
    mu = st.class_sum[used] / st.class_weight[used, None]
    class_scatter = matmul((mu * st.class_weight[used, None]).T, mu)
    # within = total - between, both about the global mean (which cancels in the difference)
    within = (st.scatter - class_scatter) / st.weight
    between = class_scatter / st.weight - np.outer(mean, mean)
    within += within_floor * np.trace(within) / len(within) * np.eye(len(within))
    linv = np.linalg.inv(np.linalg.cholesky(within))
    vals, vecs = np.linalg.eigh(linv @ between @ linv.T)
    order = np.argsort(vals)[::-1]
    proj = vecs[:, order[:dim]].T @ linv                  # [dim, D]
    return np.concatenate([proj, -(proj @ mean)[:, None]], axis=1), vals[order]


def estimate_lda(x: np.ndarray, cls: np.ndarray, weight: np.ndarray, dim: int,
                 within_floor: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """LDA from frames x [N, D] with class ids cls [N] and frame weights [N] (0 = leave out):
    `lda_from_stats` of their `lda_stats`."""
    return lda_from_stats(lda_stats(x, cls, weight, int(np.max(cls)) + 1 if len(cls) else 1),
                          dim, within_floor)


def mllt_stats(gmm: DiagGmm, x: np.ndarray, pdf: np.ndarray) -> tuple[np.ndarray, float]:
    """Semi-tied covariance statistics G [D, D, D] (G[i] = sum over frames and Gaussians of
    posterior / var_i * (x - mean)(x - mean)^T) and the total count, given a pdf per frame."""
    d = gmm.dim
    g = np.zeros((d, d, d))
    count = 0.0
    for xp, comps, post, _ in gmm.posteriors(x, pdf):
        for j, c in enumerate(comps):
            diff = xp - gmm.means[c]
            scatter = matmul((diff * post[:, j:j + 1]).T, diff)          # [D, D]
            g += (1.0 / gmm.vars[c])[:, None, None] * scatter[None]
        count += float(len(xp))
    return g, count


def estimate_mllt(g: np.ndarray, count: float, iters: int = 100) -> tuple[np.ndarray, float]:
    """Row-by-row maximisation of count·log|det A| − ½ Σ_i a_i G_i a_iᵀ from A = I -> (A [D, D],
    objective gain per frame over the identity)."""
    d = len(g)
    a = np.eye(d)
    ginv = np.linalg.inv(g)

    def objective(m):
        return count * np.linalg.slogdet(m)[1] - 0.5 * float(np.einsum("id,ide,ie->", m, g, m))

    before = objective(a)
    for _ in range(iters):
        for i in range(d):
            c = np.linalg.inv(a)[:, i]          # the cofactor row up to a scale (which cancels)
            v = c @ ginv[i]
            a[i] = v * np.sqrt(count / float(v @ c))
    return a, (objective(a) - before) / max(count, 1.0)


def transform_gmm(gmm: DiagGmm, a: np.ndarray) -> None:
    """Move a GMM into the space x' = A x: means A m, variances diag(A diag(v) Aᵀ) (a starting
    point; the next EM update re-estimates them)."""
    gmm.means = gmm.means @ a.T
    gmm.vars = np.maximum(gmm.vars @ (a ** 2).T, 1e-6)
    gmm._refresh()


def transform_features(feats: Mapping[str, np.ndarray], m: np.ndarray, context: int
                       ) -> dict[str, np.ndarray]:
    """Cepstra per utterance -> spliced and transformed float32 [T, dim]."""
    return {u: apply_transform(m, splice(x, context)) for u, x in feats.items()}
