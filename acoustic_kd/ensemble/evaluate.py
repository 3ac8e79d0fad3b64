"""Ensemble evaluation: every member and each combination rule scored on aligned sets.

Scores are frame accuracy and cross-entropy (nats) against the alignments; `evaluate` writes
`eval.json` + a small text table `eval.txt`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from ..ali import read_alignments
from ..errors import DataError
from ..model_meta import CheckpointMeta, same_features
from ..nnet.checkpoint import load_checkpoint
from ..nnet.stream import StreamingFrameDataset
from ..utils import atomic_write_json, atomic_write_text, get_logger
from .combine import RULES, combine
from .runner import TeacherEnsemble

log = get_logger("ensemble")


def _scores(log_probs: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """[correct frames, summed CE] of log-probs [B, P] against labels [B]."""
    return np.array([float((log_probs.argmax(-1) == y).sum()),
                     float(-log_probs.gather(1, y[:, None]).sum())])


@torch.no_grad()
def evaluate_set(models: Mapping[str, torch.nn.Module], feats, alis: Mapping[str, np.ndarray],
                 rules: Sequence[str] = RULES, batch_size: int = 4096) -> dict:
    """Frame accuracy and CE of each member and each combination on one aligned feature set.

    models: {name: model} (same pdf count; contexts may differ); feats: a FeatureSource;
    alis: {utt: int32 [T]}. Memory stays bounded (shard-wise reading).
    Returns {"frames": N, "members": {name: {acc, ce}}, "ensemble": {rule: {acc, ce}}}.
    """
    pdfs = {int(m.num_pdfs) for m in models.values()}
    if len(pdfs) != 1:
        raise DataError(None, f"members predict different pdf counts {sorted(pdfs)}",
                        "train all members on the same alignment dir")
    ens = TeacherEnsemble(list(models.values()), names=list(models))
    ds = StreamingFrameDataset(feats, alis, ens.context)
    dev = next(ens.parameters()).device
    sums = {n: np.zeros(2) for n in [*models, *rules]}
    for b in ds.iter_batches(batch_size):
        y = b["y"]
        lps = [lp.cpu() for lp in ens.member_log_probs(b["x"].to(dev))]
        for n, lp in zip(models, lps):
            sums[n] += _scores(lp, y)
        for r in rules:
            sums[r] += _scores(combine(lps, r), y)
    n = max(ds.num_frames, 1)
    res = {k: {"acc": v[0] / n, "ce": v[1] / n} for k, v in sums.items()}
    return {"frames": ds.num_frames, "members": {k: res[k] for k in models},
            "ensemble": {r: res[r] for r in rules}}


def evaluate(checkpoints: Sequence[str | Path], sets: Mapping[str, tuple[str | Path, str | Path]],
             out_dir: str | Path | None = None, rules: Sequence[str] = RULES,
             batch_size: int = 4096) -> dict:
    """Evaluate members (`final.pt` paths) and their combinations on {set: (data_dir, ali_dir)}.

    Features are read with the members' CMVN settings (global CMVN: their training set's stats). Writes out_dir/eval.json and eval.txt
    when out_dir is given. Returns {"members": [...], "sets": {set: evaluate_set(...)}}.
    """
    models, metas = {}, []
    for p in checkpoints:
        m, meta = load_checkpoint(p)
        models[Path(p).parent.name or str(p)] = m
        metas.append(CheckpointMeta.from_dict(meta))
    # global CMVN: the training set's stats (as decode and export apply them), not each set's own
    first = same_features(metas, [str(p) for p in checkpoints])
    out = {"members": [str(p) for p in checkpoints], "sets": {}}
    for name, (data_dir, ali_dir) in sets.items():
        fs = first.features(data_dir)
        out["sets"][name] = evaluate_set(models, fs, read_alignments(ali_dir), rules, batch_size)
        r = out["sets"][name]
        best = max(r["members"], key=lambda k: r["members"][k]["acc"])
        log.info("%s: best member %s %.2f%%; %s", name, best, 100 * r["members"][best]["acc"],
                 ", ".join(f"{k} {100 * v['acc']:.2f}%" for k, v in r["ensemble"].items()))
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / "eval.json", out)
        atomic_write_text(Path(out_dir) / "eval.txt", format_table(out))
    return out


def format_table(results: dict) -> str:
    """A text table: one row per member and per rule; frame accuracy (%) and CE per set."""
    sets = list(results["sets"])
    first = results["sets"][sets[0]]
    rows = [*first["members"], *(f"ensemble-{r}" for r in first["ensemble"])]
    head = f"{'system':<22}" + "".join(f"{s + ' acc%':>12}{s + ' CE':>10}" for s in sets)
    lines = [head]
    for row in rows:
        cells = ""
        for s in sets:
            r = results["sets"][s]
            v = (r["ensemble"][row[len("ensemble-"):]] if row.startswith("ensemble-")
                 else r["members"][row])
            cells += f"{100 * v['acc']:>12.2f}{v['ce']:>10.4f}"
        lines.append(f"{row:<22}{cells}")
    return "\n".join(lines) + "\n"
