"""Feature-space MLLR (constrained MLLR) for diagonal-covariance GMMs: one affine transform per
speaker, x' = A x + b = W [x; 1], estimated by maximum likelihood (Gales 1998, "Maximum likelihood
linear transformations for HMM-based speech recognition").

Given frames x_t with a pdf each (a Viterbi alignment) and Gaussian posteriors γ_tm within that
pdf, the auxiliary function of W = [A b] (d × d+1) is

    Q(W) = β log|det A| + Σ_i ( w_i · k_i − ½ w_i G_i w_iᵀ )

with ξ_t = [x_t; 1], β = Σ_t 1 (weighted frames), k_i = Σ_tm γ_tm μ_mi / σ²_mi ξ_t and
G_i = Σ_tm γ_tm / σ²_mi ξ_t ξ_tᵀ. Q is maximised one row at a time: with the other rows fixed,
log|det A| = log|w_i · c_i| + const where c_i is row i's cofactor vector (taken here as column i of
A⁻¹, i.e. the cofactors over det A, padded with 0 for the offset), so the maximum lies at
w_i = (α c_i + k_i) G_i⁻¹ with α a root of α² c G⁻¹cᵀ + α c G⁻¹kᵀ − β = 0; of the two real roots the
one with the higher Q is taken. Each row update can only raise Q, so repeated passes converge.

The posteriors depend on the transform: `estimate_fmllr` alternates (E) posteriors of the frames
transformed by the current W and (M) row-by-row passes over the statistics, which are always
those of the *untransformed* frames, so W maps the input features directly (no composition).
A speaker with fewer weighted frames than `min_frames` keeps the identity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..utils import atomic_path, get_logger, read_table
from .diag_gmm import DiagGmm, matmul, single_thread

log = get_logger(__name__)

CHUNK = 20000   # frames per block of the second-order statistics


@dataclass
class FmllrStats:
    """Statistics of one speaker: beta (weighted frames), k [d, d+1], g [d, d+1, d+1], and the
    weighted log-likelihood of the frames under the transform the posteriors came from (including
    β log|det A|)."""

    beta: float
    k: np.ndarray
    g: np.ndarray
    loglike: float


@dataclass
class FmllrResult:
    """One speaker's estimate: transform W [d, d+1] and how it was obtained."""

    w: np.ndarray
    frames: float
    identity: bool = False                    # too few frames: W is the identity
    aux_gain: float = 0.0                     # Σ over E-steps of the auxiliary gain, per frame
    loglike: list[float] = field(default_factory=list)    # per frame, before each E-step and after
    objective: list[list[float]] = field(default_factory=list)  # per E-step: Q before, after each pass

    @property
    def loglike_gain(self) -> float:
        """Per-frame log-likelihood (with log|det A|) after the last update minus before the first."""
        return self.loglike[-1] - self.loglike[0] if len(self.loglike) > 1 else 0.0


def identity(dim: int) -> np.ndarray:
    """The identity transform [dim, dim + 1]."""
    return np.concatenate([np.eye(dim), np.zeros((dim, 1))], axis=1)


def apply_fmllr(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A x + b for frames x [T, d] -> float32 [T, d]."""
    w = np.asarray(w, dtype=np.float32)
    return matmul(np.asarray(x, dtype=np.float32), w[:, :-1].T.copy()) + w[:, -1]


def logdet(w: np.ndarray) -> float:
    """log|det A| of a transform [d, d+1]."""
    return float(np.linalg.slogdet(np.asarray(w, dtype=np.float64)[:, :-1])[1])


def _posterior_sums(gmm: DiagGmm, xt: np.ndarray, pdf: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame of the transformed frames xt [N, d]: Σ_m γ_tm / σ²_m [N, d], Σ_m γ_tm μ_m / σ²_m
    [N, d] (Gaussian posteriors within the frame's pdf) and the frame log-likelihood [N]."""
    n, d = xt.shape
    inv_var = 1.0 / gmm.vars
    mean_iv = gmm.means * inv_var
    v, u, ll = np.zeros((n, d)), np.zeros((n, d)), np.zeros(n)
    order = np.argsort(pdf, kind="stable")
    bounds = np.searchsorted(pdf[order], np.arange(gmm.num_pdfs + 1))
    for p in np.nonzero(np.diff(bounds))[0]:
        idx = order[bounds[p]:bounds[p + 1]]
        comps = gmm.pdf_components(p)
        cl = gmm.component_loglikes(xt[idx], comps).astype(np.float64)      # [n_p, m]
        mx = cl.max(1, keepdims=True)
        lse = mx + np.log(np.exp(cl - mx).sum(1, keepdims=True))
        post = np.exp(cl - lse)
        v[idx] = post @ inv_var[comps]
        u[idx] = post @ mean_iv[comps]
        ll[idx] = lse[:, 0]
    return v, u, ll


def _weights(n: int, weight) -> np.ndarray:
    return np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)


def fmllr_loglike(gmm: DiagGmm, x: np.ndarray, pdf: np.ndarray, w: np.ndarray,
                  weight: np.ndarray | None = None) -> float:
    """Weighted log-likelihood of frames x [N, d] under their pdfs after the transform W, with the
    Jacobian: Σ_t weight_t (log p(W ξ_t | pdf_t) + log|det A|)."""
    wt = _weights(len(x), weight)
    _, _, ll = _posterior_sums(gmm, apply_fmllr(w, x), pdf)
    return float(wt @ ll) + float(wt.sum()) * logdet(w)


def fmllr_stats(gmm: DiagGmm, x: np.ndarray, pdf: np.ndarray, w: np.ndarray,
                weight: np.ndarray | None = None) -> FmllrStats:
    """Accumulate the statistics of frames x [N, d] (untransformed) with pdfs [N] and optional
    frame weights [N], taking the Gaussian posteriors within each pdf of the frames W-transformed."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    wt = _weights(n, weight)
    v, u, ll = _posterior_sums(gmm, apply_fmllr(w, x), pdf)
    v *= wt[:, None]
    u *= wt[:, None]
    xi = np.concatenate([x, np.ones((n, 1))], axis=1)
    iu = np.triu_indices(d + 1)
    g_tri = np.zeros((len(iu[0]), d))
    for s in range(0, n, CHUNK):      # G_i is symmetric: accumulate its upper triangle only
        xc = xi[s:s + CHUNK]
        g_tri += matmul((xc[:, iu[0]] * xc[:, iu[1]]).T, v[s:s + CHUNK])
    g = np.zeros((d, d + 1, d + 1))
    g[:, iu[0], iu[1]] = g_tri.T
    g[:, iu[1], iu[0]] = g_tri.T
    beta = float(wt.sum())
    return FmllrStats(beta, matmul(u.T, xi), g, float(wt @ ll) + beta * logdet(w))


def objective(w: np.ndarray, st: FmllrStats) -> float:
    """Q(W) = β log|det A| + Σ_i (w_i·k_i − ½ w_i G_i w_iᵀ) (constants left out)."""
    quad = float(np.einsum("ij,ijk,ik->", w, st.g, w))
    return st.beta * logdet(w) + float((w * st.k).sum()) - 0.5 * quad


def _row_objective(row: np.ndarray, c: np.ndarray, k: np.ndarray, g: np.ndarray, beta: float) -> float:
    return beta * np.log(abs(float(row @ c)) + 1e-300) + float(row @ k) - 0.5 * float(row @ g @ row)


def update_rows(w: np.ndarray, st: FmllrStats, passes: int) -> tuple[np.ndarray, list[float]]:
    """`passes` row-by-row sweeps from W -> (new W, Q after each sweep)."""
    w = np.array(w, dtype=np.float64)
    d = w.shape[0]
    ginv = np.linalg.inv(st.g)
    trace = []
    for _ in range(passes):
        for i in range(d):
            c = np.append(np.linalg.inv(w[:, :-1])[:, i], 0.0)   # cofactor row / det A
            gc = ginv[i] @ c
            a, b = float(c @ gc), float(st.k[i] @ gc)
            disc = np.sqrt(b * b + 4.0 * a * st.beta)
            cands = [((alpha * c + st.k[i]) @ ginv[i]) for alpha in ((-b + disc) / (2 * a),
                                                                      (-b - disc) / (2 * a))]
            w[i] = max(cands, key=lambda r: _row_objective(r, c, st.k[i], st.g[i], st.beta))
        trace.append(objective(w, st))
    return w, trace


def estimate_fmllr(gmm: DiagGmm, x: np.ndarray, pdf: np.ndarray, w0: np.ndarray | None = None,
                   weight: np.ndarray | None = None, em_iters: int = 3, passes: int = 10,
                   min_frames: float = 500.0) -> FmllrResult:
    """One speaker's transform from frames x [N, d] aligned to pdfs [N] (weights [N] optional):
    `em_iters` times, posteriors under the current W (from `w0`, default identity) then `passes`
    row-by-row sweeps. Fewer than `min_frames` weighted frames: the identity."""
    d = x.shape[1]
    frames = float(len(x) if weight is None else np.sum(weight))
    if frames < min_frames or len(x) == 0:
        return FmllrResult(identity(d), frames, identity=True)
    w = identity(d) if w0 is None else np.array(w0, dtype=np.float64)
    res = FmllrResult(w, frames)
    for _ in range(em_iters):
        st = fmllr_stats(gmm, x, pdf, w, weight)
        res.loglike.append(st.loglike / st.beta)
        start = objective(w, st)
        w, trace = update_rows(w, st, passes)
        res.objective.append([start] + trace)
        res.aux_gain += (trace[-1] - start) / st.beta
    res.w = w
    res.loglike.append(fmllr_loglike(gmm, x, pdf, w, weight) / frames)
    return res


def estimate_each(gmm: DiagGmm, x: np.ndarray, pdf: np.ndarray, spk: np.ndarray,
                  speakers: list[str], init: Mapping[str, np.ndarray] | None = None,
                  weight: np.ndarray | None = None, em_iters: int = 3, passes: int = 10,
                  min_frames: float = 500.0) -> dict[str, FmllrResult]:
    """A transform per speaker from frames x [N, d] (untransformed), pdfs [N] and speaker index
    [N] into `speakers`; frames of weight 0 are left out -> {speaker: FmllrResult}."""
    wt = _weights(len(x), weight)
    keep = wt > 0
    order = np.argsort(spk[keep], kind="stable")
    xs, ps, ss, ws = x[keep][order], pdf[keep][order], spk[keep][order], wt[keep][order]
    bounds = np.searchsorted(ss, np.arange(len(speakers) + 1))
    per = {}
    with single_thread():
        for j, name in enumerate(speakers):
            sl = slice(bounds[j], bounds[j + 1])
            per[name] = estimate_fmllr(gmm, xs[sl], ps[sl], (init or {}).get(name), ws[sl],
                                       em_iters, passes, min_frames)
    return per


def speaker_report(per: Mapping[str, FmllrResult], min_frames: float, label: str = "fMLLR") -> dict:
    """The report of speakers' estimates (logged): speakers, identity count and names, frames,
    frame-weighted aux and log-likelihood gains per frame."""
    names = sorted(per)
    used = [per[n] for n in names if not per[n].identity]
    tot = sum(r.frames for r in used)
    ident = [n for n in names if per[n].identity]
    report = {"speakers": len(names), "identity": len(ident), "identity_speakers": ident[:20],
              "frames": round(tot, 1),
              "aux_gain": round(sum(r.aux_gain * r.frames for r in used) / max(tot, 1e-9), 5),
              "loglike_gain": round(sum(r.loglike_gain * r.frames for r in used) / max(tot, 1e-9), 5)}
    log.info("%s: %d speakers, objective gain %.4f per frame (log-likelihood %+.4f) over %d "
             "frames; %d with fewer than %g frames keep the identity%s", label, len(names),
             report["aux_gain"], report["loglike_gain"], int(tot), len(ident), min_frames,
             f" ({', '.join(ident[:5])}{' ...' if len(ident) > 5 else ''})" if ident else "")
    return report


def estimate_speakers(gmm: DiagGmm, x: np.ndarray, pdf: np.ndarray, spk: np.ndarray,
                      speakers: list[str], init: dict[str, np.ndarray] | None = None,
                      weight: np.ndarray | None = None, em_iters: int = 3, passes: int = 10,
                      min_frames: float = 500.0, label: str = "fMLLR"
                      ) -> tuple[dict[str, np.ndarray], dict]:
    """`estimate_each` -> ({speaker: W}, `speaker_report`)."""
    per = estimate_each(gmm, x, pdf, spk, speakers, init, weight, em_iters, passes, min_frames)
    return {n: r.w for n, r in per.items()}, speaker_report(per, min_frames, label)


# ------------------------------------------------------------------ a set of speakers
def read_utt2spk(data_dir) -> dict[str, str]:
    """utt -> speaker from a data dir's utt2spk ({} when it has none: each utterance its own)."""
    path = Path(data_dir) / "utt2spk"
    return {u: s for u, s, _ in read_table(path)} if path.exists() else {}


def speaker_of(utt2spk: Mapping[str, str], utt: str) -> str:
    return utt2spk.get(utt, utt)


def transform_set(feats: Mapping[str, np.ndarray], utt2spk: Mapping[str, str],
                  trans: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each utterance through its speaker's transform (identity for a speaker without one)."""
    out = {}
    for u, x in feats.items():
        w = trans.get(speaker_of(utt2spk, u))
        out[u] = apply_fmllr(w, x) if w is not None else np.asarray(x, dtype=np.float32)
    return out


def avg_logdet(frames: Mapping[str, int], utt2spk: Mapping[str, str],
               trans: Mapping[str, np.ndarray]) -> float:
    """Frame-weighted mean log|det A| over utterances with `frames[u]` frames each."""
    ld = {s: logdet(w) for s, w in trans.items()}
    tot = sum(frames.values())
    return sum(n * ld.get(speaker_of(utt2spk, u), 0.0) for u, n in frames.items()) / max(tot, 1)


def frame_weights(hmm, pdf: np.ndarray, silence_weight: float) -> np.ndarray:
    """Per-frame fMLLR weight [N]: `silence_weight` on the context-independent phones' pdfs, else 1."""
    ci = [hmm.phone_id[p] for p in hmm.context_independent]
    sil = np.isin(hmm.pdf_to_phone, ci)
    return np.where(sil[pdf], silence_weight, 1.0)


def estimate_set_each(gmm: DiagGmm, hmm, feats: Mapping[str, np.ndarray],
                      pdfs: Mapping[str, np.ndarray], utt2spk: Mapping[str, str], cfg,
                      init: Mapping[str, np.ndarray] | None = None) -> dict[str, FmllrResult]:
    """`estimate_each` for every speaker of `feats` from the frames aligned in `pdfs` (utt -> pdf
    of `hmm`/`gmm` per frame; `cfg`: the AlignConfig's fmllr_* options); a speaker without
    aligned frames keeps the identity."""
    utts = sorted(u for u in pdfs if u in feats)
    speakers = sorted({speaker_of(utt2spk, u) for u in feats})
    index = {s: i for i, s in enumerate(speakers)}
    dim = next(iter(feats.values())).shape[1] if feats else 0
    if not utts:
        return {s: FmllrResult(identity(dim), 0.0, identity=True) for s in speakers}
    x = np.concatenate([feats[u] for u in utts])
    pdf = np.concatenate([pdfs[u] for u in utts]).astype(np.int64)
    spk = np.concatenate([np.full(len(pdfs[u]), index[speaker_of(utt2spk, u)]) for u in utts])
    return estimate_each(gmm, x, pdf, spk, speakers, init,
                         frame_weights(hmm, pdf, cfg.fmllr_silence_weight), cfg.fmllr_em_iters,
                         cfg.fmllr_passes, cfg.fmllr_min_frames)


def save_transforms(path, trans: dict[str, np.ndarray], report: dict | None = None) -> None:
    """Write {speaker: W} as an .npz (speakers [S], transforms [S, d, d+1], report as JSON)."""
    names = sorted(trans)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, speakers=np.array(names, dtype=str),
                     transforms=np.stack([trans[s] for s in names]) if names else np.zeros((0, 0, 0)),
                     report=np.array(json.dumps(report or {})))


def load_transforms(path) -> dict[str, np.ndarray]:
    """{speaker: W} from `save_transforms`' file."""
    z = np.load(path)
    return {str(s): z["transforms"][i] for i, s in enumerate(z["speakers"])}
