"""The ensemble runner: K member checkpoints run together on one window (at temperature T).

The one place an ensemble is run: soft targets and online distillation (`forward`, probabilities
at T), ensemble evaluation (`member_log_probs` + `ensemble.combine.combine` per rule), and
decoding / network realignment (`log_probs`, through `decode.decoder.nnet_log_posteriors`).
Members may differ in context width; the ensemble (and a student) read one shared window, the
union of all contexts, and each model sees its own centred crop of it. That is what lets online
distillation augment ONE window and feed identical frames to teacher and student.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..utils import resolve_bf16
from .combine import check_rule, combine, combine_logits

Context = tuple[int, int]


def union_context(contexts: Sequence[Sequence[int]]) -> Context:
    """(max left, max right) over the given (left, right) contexts."""
    return (max(int(c[0]) for c in contexts), max(int(c[1]) for c in contexts))


def crop_window(x: torch.Tensor, have: Context, want: Context) -> torch.Tensor:
    """Centred crop of windows x [B, have_L+1+have_R, D] -> [B, want_L+1+want_R, D]."""
    if want[0] > have[0] or want[1] > have[1]:
        raise ConfigError(f"a model needs context {want} but the window only has {have}")
    return x[:, have[0] - want[0]: x.shape[1] - (have[1] - want[1])]


def model_context(model: nn.Module) -> Context:
    """(left, right) context of an nnet model (from its ModelConfig)."""
    c = model.config.context
    return (int(c[0]), int(c[1]))


class TeacherEnsemble(nn.Module):
    """K frozen members; forward(x, T) -> combined probs at temperature T.

    members: models mapping [B, W_k, D] -> logits [B, P] (same P); rule: arithmetic | geometric;
    context: the window the caller provides (default: the union of the members' contexts);
    bf16: run the members under bfloat16 autocast (faster where the CPU has native bf16: the matmul
    speed-up is in bench/RESULTS.md, `train`; what it changes in the targets in
    recipes/mboshi/RESULTS.md, "A bf16 teacher").
    """

    def __init__(self, members: Sequence[nn.Module], rule: str = "arithmetic",
                 context: Context | None = None, names: Sequence[str] | None = None,
                 bf16: bool = False):
        super().__init__()
        self.bf16 = bool(bf16)
        if not members:
            raise ConfigError("the teacher ensemble needs at least one member")
        self.rule = check_rule(rule)
        self.members = nn.ModuleList(members)
        self.names = list(names) if names is not None else [f"m{i}" for i in range(len(members))]
        pdfs = {int(m.num_pdfs) for m in members}
        if len(pdfs) != 1:
            detail = ", ".join(f"{n}: {int(m.num_pdfs)}" for n, m in zip(self.names, members))
            raise ConfigError(f"members predict different pdf counts ({detail}); all members must "
                              "be trained on the same alignment (same tree / num_pdfs)")
        self.num_pdfs = pdfs.pop()
        dims = {int(m.input_dim) for m in members}
        if len(dims) != 1:
            raise ConfigError(f"members read different feature dims {sorted(dims)}")
        self.input_dim = dims.pop()
        self.member_contexts = [model_context(m) for m in members]
        self.context = tuple(context) if context is not None else union_context(
            self.member_contexts)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "TeacherEnsemble":
        """Always eval: the teacher's dropout/batch-norm must not change while the student trains."""
        return super().train(False)

    @torch.no_grad()
    def member_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B, W, D] (window = self.context) -> K logits [B, P] (float32)."""
        with torch.autocast(x.device.type, dtype=torch.bfloat16,
                            enabled=resolve_bf16(self.bf16, x.device.type, "teacher")):
            return [m(crop_window(x, self.context, c)).float()
                    for m, c in zip(self.members, self.member_contexts)]

    @torch.no_grad()
    def member_log_probs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B, W, D] -> K log-probabilities [B, P] (float32)."""
        return [F.log_softmax(lg, dim=-1) for lg in self.member_logits(x)]

    @torch.no_grad()
    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, W, D] -> the ensemble's log-probabilities [B, P] (rule as `combine.combine`)."""
        lps = self.member_log_probs(x)
        return lps[0] if len(lps) == 1 else combine(lps, self.rule)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, T: float = 1.0) -> torch.Tensor:
        """x [B, W, D] -> ensemble probs at temperature T [B, P]."""
        return combine_logits(self.member_logits(x), T, self.rule)


def load_teacher(paths: Sequence[str | Path], rule: str = "arithmetic",
                 device: str | torch.device = "cpu", bf16: bool = False
                 ) -> tuple[TeacherEnsemble, list[dict]]:
    """Load member checkpoints (`final.pt`) into a TeacherEnsemble; returns (teacher, member metas)."""
    from ..nnet.checkpoint import load_checkpoint

    if not paths:
        raise ConfigError("no member checkpoints given (--members exp/members/m*/final.pt)")
    models, metas = [], []
    for p in paths:
        m, meta = load_checkpoint(p)
        models.append(m)
        metas.append(meta)
    teacher = TeacherEnsemble(models, rule, names=[str(p) for p in paths], bf16=bf16)
    return teacher.to(device), metas
