"""How much of a dense soft-target store a top-k store keeps, and what the remainder mass should be.

Input: a DENSE store (`acoustic-kd soft-targets --dense true`, e.g. the 3 % subset of Mboshi) and,
for the neighbour-mixture tail, a top-k store over a larger transfer set made by the same members
(its frames give each pdf's "neighbours"). Prints, over the dense store's frames: the probability
mass the top k hold, and the KL(dense ‖ approximation) of
  * uniform:  top k + the remainder spread evenly over the other classes (the store's `tail: uniform`),
  * mixture:  top k + the remainder spread as λ·Σ_j p_j·S[idx_j] + (1−λ)·uniform, where S[c] is the
              mean top-k vector of the --profile store's frames whose most probable pdf is c.
With --write K:TAIL[:λ] ... it writes dense stores holding those approximations next to the input
(`<dense>_top<K>`, `<dense>_top<K>_mix<λ>`), to train students on them with `acoustic-kd distill
--soft ...` exactly as on the dense store: a uniform-tail reconstruction gives the same loss as
the top-k store itself (`tests/test_distill_loss.py::test_topk_remainder_spread_uniformly`).

Usage: python bench/topk_tail.py --dense exp/ensemble/soft_3pct_dense [--profile exp/ensemble/soft_all]
           [--k 20 50 100] [--lam 0.5] [--write 50:uniform 100:uniform 20:mix:0.5]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from acoustic_kd.distill.store import SoftTargetStore
from acoustic_kd.distill.targets import densify


def load_dense(path: Path) -> torch.Tensor:
    store = SoftTargetStore(path)
    if not store.dense:
        raise SystemExit(f"{path} is a top-k store; --dense needs one made with --dense true")
    return store.lookup(torch.arange(store.num_frames)).float()


def neighbour_profile(path: Path, num_pdfs: int) -> torch.Tensor:
    """S [P, P]: the mean top-k vector (zeros outside it) of the frames whose top-1 pdf is c."""
    store = SoftTargetStore(path)
    if store.dense or store.num_pdfs != num_pdfs:
        raise SystemExit(f"{path}: --profile needs a top-k store over {num_pdfs} pdfs")
    sums = torch.zeros(num_pdfs * num_pdfs, dtype=torch.float64)
    count = torch.zeros(num_pdfs, dtype=torch.float64)
    step = 200_000
    for b in range(0, store.num_frames, step):
        idx, p = store.lookup(torch.arange(b, min(b + step, store.num_frames)))
        idx, p = idx.long(), p.double()
        top1 = idx[:, 0]
        sums += torch.bincount((top1[:, None] * num_pdfs + idx).flatten(), weights=p.flatten(),
                               minlength=num_pdfs * num_pdfs)
        count += torch.bincount(top1, minlength=num_pdfs).double()
    prof = sums.view(num_pdfs, num_pdfs) / count.clamp_min(1.0)[:, None]
    return prof.float()


def approximate(dense: torch.Tensor, k: int, prof: torch.Tensor | None = None,
                lam: float = 0.0) -> torch.Tensor:
    """Dense [N, P] rebuilt from its top k (fp16, as stored) and a uniform or mixture tail."""
    p, idx = dense.topk(k, dim=-1)
    p = p.half().float()
    if prof is None or lam == 0.0:
        return densify(idx, p, dense.shape[-1])
    r = (1.0 - p.sum(-1, keepdim=True)).clamp_min(0.0)
    w = torch.zeros_like(dense)
    for j in range(k):                     # Σ_j p_j·S[idx_j] without an [N, k, P] intermediate
        w.add_(p[:, j:j + 1] * prof[idx[:, j]])
    w = w.scatter(-1, idx, 0.0)
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    u = torch.ones_like(dense).scatter(-1, idx, 0.0)
    u = u / u.sum(-1, keepdim=True)
    return (r * (lam * w + (1.0 - lam) * u)).scatter(-1, idx, p)


def kl(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * (a.clamp_min(1e-12).log() - b.clamp_min(1e-12).log())).sum(-1).mean())


def write_store(src: Path, out: Path, probs: torch.Tensor, note: str) -> None:
    """A copy of the dense store `src` holding `probs` instead (same frames, meta and markers)."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    shards = sorted(out.glob("shard-*.prob.npy"))
    start = 0
    for s in shards:
        n = np.load(s, mmap_mode="r").shape[0]
        np.save(s, probs[start:start + n].numpy().astype(np.float32))
        start += n
    meta = json.loads((out / "meta.json").read_text())
    meta["approximation"] = note
    (out / "meta.json").write_text(json.dumps(meta))
    print(f"wrote {out} ({note})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dense", type=Path, required=True)
    ap.add_argument("--profile", type=Path, help="top-k store over a larger set (mixture tail)")
    ap.add_argument("--k", type=int, nargs="+", default=[20, 50, 100])
    ap.add_argument("--lam", type=float, default=0.5)
    ap.add_argument("--write", nargs="*", default=[], help="K:uniform or K:mix:LAMBDA")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)
    dense = load_dense(a.dense)
    prof = neighbour_profile(a.profile, dense.shape[-1]) if a.profile else None
    mass = dense.sort(-1, descending=True).values.cumsum(-1)
    out = {"frames": dense.shape[0], "num_pdfs": dense.shape[-1], "rows": []}
    for k in a.k:
        row = {"k": k, "mass": float(mass[:, k - 1].mean()),
               "kl_uniform": kl(dense, approximate(dense, k))}
        if prof is not None:
            row["kl_mixture"] = kl(dense, approximate(dense, k, prof, a.lam))
        out["rows"].append(row)
        print(f"top-{k}: mass {row['mass']:.3f}, KL(dense ‖ uniform tail) {row['kl_uniform']:.3f}"
              + (f", KL(dense ‖ mixture tail, λ {a.lam:g}) {row['kl_mixture']:.3f}" if prof is not None else ""))
    for spec in a.write:
        k, tail, *lam = spec.split(":")
        if tail == "uniform":
            write_store(a.dense, Path(f"{a.dense}_top{k}"), approximate(dense, int(k)),
                        f"top-{k}, uniform tail")
        elif tail == "mix" and prof is not None and lam:
            write_store(a.dense, Path(f"{a.dense}_top{k}_mix{lam[0]}"),
                        approximate(dense, int(k), prof, float(lam[0])),
                        f"top-{k}, mixture tail λ {lam[0]} from {a.profile}")
        else:
            raise SystemExit(f"--write {spec}: give K:uniform or K:mix:LAMBDA (with --profile)")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
