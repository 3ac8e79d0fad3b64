"""LDA + MLLT feature transforms for a GMM-HMM pass (the method of Kaldi's `train_lda_mllt.sh`).

Cepstra (mean/variance normalised, no deltas) are spliced over +-`context` frames; LDA, estimated
with the tied states of the previous pass's alignment as classes (silence frames left out), projects
the splice to `dim` dimensions with unit within-class variance. During the new pass's training a
global MLLT (a semi-tied covariance transform, Gales 1999) is re-estimated on a few iterations: it
rotates the feature space so that the diagonal-covariance Gaussians fit it best. The pass's final
transform is affine, [dim, D + 1] (last column = offset), applied to every spliced frame.
"""

from __future__ import annotations

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


def estimate_lda(x: np.ndarray, cls: np.ndarray, weight: np.ndarray, dim: int,
                 within_floor: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """LDA from frames x [N, D] with class ids cls [N] and frame weights [N] (0 = leave out).

    Returns (transform [dim, D + 1] whose output has zero mean and unit within-class variance,
    eigenvalues [D], descending: the between/within variance ratio of each direction).
    """
    x = np.asarray(x, dtype=np.float64)
    keep = weight > 0
    if keep.sum() < 2 * x.shape[1]:
        raise DataError(None, f"LDA: {int(keep.sum())} weighted frames for {x.shape[1]} dimensions",
                        "align more (non-silence) training data before the LDA+MLLT stage")
    x, cls, w = x[keep], cls[keep], weight[keep]
    tot_w = w.sum()
    mean = (w[:, None] * x).sum(0) / tot_w
    xc = x - mean
    total = matmul((xc * w[:, None]).T, xc) / tot_w
    k = int(cls.max()) + 1
    n = np.bincount(cls, weights=w, minlength=k)
    s = np.zeros((k, x.shape[1]))
    np.add.at(s, cls, xc * w[:, None])
    used = n > 0
    mu = s[used] / n[used, None]
    between = matmul((mu * n[used, None]).T, mu) / tot_w
    within = total - between
    within += within_floor * np.trace(within) / len(within) * np.eye(len(within))
    chol = np.linalg.cholesky(within)
    linv = np.linalg.inv(chol)
    vals, vecs = np.linalg.eigh(linv @ between @ linv.T)
    order = np.argsort(vals)[::-1]
    if dim > x.shape[1]:
        raise DataError(None, f"LDA dim {dim} exceeds the spliced dimension {x.shape[1]}",
                        "lower align.lda_dim or raise align.lda_context")
    proj = vecs[:, order[:dim]].T @ linv                  # [dim, D]
    return np.concatenate([proj, -(proj @ mean)[:, None]], axis=1), vals[order]


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
