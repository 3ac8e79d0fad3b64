"""The `ensemble` stage on disk: K members trained (`members`), then all of them and their
combinations evaluated on the dev (and test) set.

`EnsembleJob` is one `acoustic-kd ensemble` run. The members are train stages of their own
(`nnet.stage.TrainJob`, skipped when up to date); `stage()` is the evaluation's contract (member
checkpoints, features and alignments of the sets in; OUT/eval.json and eval.txt out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..nnet.stage import TrainJob
from ..stage import Stage, ali_inputs, feature_inputs
from .combine import RULES
from .evaluate import evaluate
from .members import member_dirs, train_members


@dataclass
class EnsembleJob:
    """One ensemble: its paths and switches by the names of `acoustic-kd ensemble`'s options;
    `train_options` holds the members' `model:`/`train:`/`augment:` command-line values (as
    `TrainJob.options`)."""

    out: str
    dev_data: str
    dev_ali: str
    num_members: int = 5
    nj: int = 1
    train_data: str | None = None
    train_ali: str | None = None
    test_data: str | None = None
    test_ali: str | None = None
    config: str | None = None
    seed: int = 1
    archs: list[str] | None = None
    data_order: str = "seed"
    rules: list[str] = field(default_factory=lambda: list(RULES))
    eval_only: bool = False
    force: bool = False
    backend: str = "local"
    slurm_opts: str = ""
    train_options: dict = field(default_factory=dict)

    def checkpoints(self) -> list[Path]:
        return [d / "final.pt" for d in member_dirs(self.out, self.num_members)]

    def sets(self) -> dict[str, tuple[str, str]]:
        """{set name: (data dir, alignment dir)} evaluated: dev, and test when given."""
        sets = {"dev": (self.dev_data, self.dev_ali)}
        if self.test_data and self.test_ali:
            sets["test"] = (self.test_data, self.test_ali)
        return sets

    def train(self) -> None:
        """Train the members that are not up to date."""
        if not (self.train_data and self.train_ali):
            raise ConfigError("--train-data and --train-ali are needed unless --eval-only")
        base = TrainJob(train_data=self.train_data, train_ali=self.train_ali, out=self.out,
                        dev_data=self.dev_data, dev_ali=self.dev_ali, config=self.config,
                        force=self.force, options=self.train_options)
        train_members(base, self.out, self.num_members, nj=self.nj, base_seed=self.seed,
                      archs=self.archs, data_order=self.data_order, backend=self.backend,
                      slurm_opts=self.slurm_opts)

    def stage(self) -> Stage:
        """The evaluation: member checkpoints, features and alignments in; eval.json, eval.txt out."""
        out = Path(self.out)
        sets = self.sets()
        inputs = [*self.checkpoints(), *(p for d, a in sets.values()
                                         for p in [*feature_inputs(d, "utt2spk"), *ali_inputs(a)])]
        return Stage("ensemble", out, {"rules": list(self.rules), "sets": list(sets)},
                     inputs=inputs, code=evaluate, outputs=[out / "eval.json", out / "eval.txt"])

    def run(self) -> dict:
        """Train (unless `eval_only`) and evaluate; the evaluation (eval.json's content)."""
        if not self.eval_only:
            self.train()
        missing = [str(c) for c in self.checkpoints() if not c.exists()]
        if missing:
            raise ConfigError(f"members not trained: {', '.join(missing)} (run without --eval-only)")
        st = self.stage()
        if not st.begin(self.force):
            return json.loads((Path(self.out) / "eval.json").read_text())
        res = evaluate(self.checkpoints(), self.sets(), self.out, rules=self.rules)
        st.finish()
        return res
