"""The three modes of `acoustic-kd align`, the options each takes, and one run function each.

- GMM training (`--data --lang --exp`): train mono, tri (and tri2, tri3) and align the sets
  (`gmm.run.run_align`);
- import (`--import-kaldi FILE --num-pdfs N --out DIR`): Kaldi ali-to-pdf output as an alignment
  dir (`ali.import_kaldi_alignments`);
- network realignment (`--nnet CKPT ... --hmm-dir --lang --align-sets --out`): hybrid DNN-HMM
  forced alignment through a GMM pass's HMM (`gmm.nnet_align.run_nnet_align`).

`check_*_mode` holds each mode's rules (what it needs, which options belong to another mode);
`run_align_job` picks the mode (--nnet, else --import-kaldi, else GMM training), checks it and runs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field

from ..ali import import_kaldi_alignments, write_alignments
from ..config import load_config, overrides_from_args
from ..errors import ConfigError
from ..plan import ALIGN_PLAN, plan_for, planned_config, record_plan
from .run import run_align
from .train import AlignConfig

# the AlignConfig options that mean something to a network realignment (the rest train GMMs)
NNET_ALIGN_OPTIONS = ("beam", "retry_beam", "acoustic_scale", "self_loop_scale", "boost_silence",
                      "batch_size")
# the options that only a network realignment takes
NNET_ONLY = ("hmm_dir", "priors")


@dataclass
class AlignJob:
    """One `acoustic-kd align` run: its options by the same names, and the command-line values of
    the AlignConfig options (`options`, None = not given; `config` is the recipe YAML)."""

    data: str | None = None
    lang: str | None = None
    exp: str | None = None
    align_sets: list[str] = field(default_factory=list)
    gmm_pass: str | None = None
    through: str = "tri"
    config: str | None = None
    force: bool = False
    import_kaldi: str | None = None
    num_pdfs: int | None = None
    out: str | None = None
    nnet: list[str] = field(default_factory=list)
    hmm_dir: str | None = None
    combine: str = "arithmetic"
    priors: str | None = None
    nj: int = 1
    backend: str = "local"
    slurm_opts: str = ""
    options: dict = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "AlignJob":
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                      if f.name != "options"}, options=overrides_from_args(args, AlignConfig))

    def given_options(self) -> list[str]:
        """The AlignConfig options given on the command line."""
        return [k for k, v in self.options.items() if v is not None]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_nnet_mode(job: AlignJob) -> None:
    """--nnet: no GMM-training or import option; --hmm-dir, --lang, --align-sets and --out."""
    clash = [o for o, v in (("--data", job.data), ("--exp", job.exp), ("--pass", job.gmm_pass),
                            ("--import-kaldi", job.import_kaldi), ("--num-pdfs", job.num_pdfs))
             if v is not None]
    clash += [_flag(k) for k in job.given_options() if k not in NNET_ALIGN_OPTIONS]
    if clash:
        raise ConfigError(f"--nnet realigns with a trained network; {', '.join(clash)} belong to GMM "
                          "training or import and cannot be combined with it (DNN alignment takes "
                          "--hmm-dir, --lang, --align-sets, --out and "
                          + ", ".join(_flag(o) for o in NNET_ALIGN_OPTIONS) + ")")
    if not (job.hmm_dir and job.lang and job.align_sets and job.out):
        raise ConfigError("--nnet needs --hmm-dir, --lang, --align-sets and --out")


def _check_no_nnet_options(job: AlignJob) -> None:
    """Outside --nnet: none of the options that only a network realignment takes."""
    for name in NNET_ONLY:
        if getattr(job, name) is not None:
            raise ConfigError(f"{_flag(name)} only applies to DNN realignment (--nnet CKPT)")


def check_import_mode(job: AlignJob) -> None:
    """--import-kaldi: --num-pdfs and --out, no --nnet-only option (the GMM options are ignored)."""
    _check_no_nnet_options(job)
    if not (job.num_pdfs and job.out):
        raise ConfigError("--import-kaldi needs --num-pdfs and --out")


def check_gmm_mode(job: AlignJob) -> None:
    """GMM training: --data, --lang and --exp, no --nnet-only option."""
    _check_no_nnet_options(job)
    if not (job.data and job.lang and job.exp):
        raise ConfigError("align needs --data, --lang and --exp (or --import-kaldi)")


def run_nnet_mode(job: AlignJob) -> int:
    """Realign --align-sets with network pseudo log-likelihoods through --hmm-dir's HMM."""
    from .nnet_align import run_nnet_align

    over = {k: v for k, v in job.options.items() if k in NNET_ALIGN_OPTIONS}
    cfg = load_config(AlignConfig, job.config, "align", over)
    summary = run_nnet_align(job.nnet, job.hmm_dir, job.lang, job.align_sets, job.out, cfg,
                             job.combine, job.priors, job.force, **_jobs(job))
    for name, s in summary.items():
        if s.get("skipped"):
            print(f"ali_{name}: done already (use --force to redo)")
            continue
        print(f"ali_{name}: {s['aligned']} aligned, {s['failed']} failed {s['failed_reasons']}, "
              f"avg pseudo-loglike/frame {s['avg_loglike']:.3f}, "
              f"{s.get('x_real_time', 0):g}x real time")
    return 0


def _jobs(job: AlignJob) -> dict:
    """--nj, --backend, --slurm-opts as keyword arguments (checked)."""
    if job.nj < 1:
        raise ConfigError(f"--nj must be >= 1, got {job.nj}")
    return {"nj": job.nj, "backend": job.backend, "slurm_opts": job.slurm_opts}


def run_import_mode(job: AlignJob) -> int:
    """Kaldi ali-to-pdf output into the alignment dir --out."""
    alis = import_kaldi_alignments(job.import_kaldi, job.num_pdfs)
    write_alignments(job.out, alis, job.num_pdfs)
    print(f"{job.out}: imported {len(alis)} alignments ({job.num_pdfs} pdfs)")
    return 0


def run_gmm_mode(job: AlignJob) -> int:
    """Train the GMM passes on --data and align it and --align-sets."""
    cfg, plan, chosen = planned_config(AlignConfig, job.config, "align", job.options,
                                       lambda: plan_for(job.data, job.lang), ALIGN_PLAN)
    record_plan(job.exp, plan, chosen, ALIGN_PLAN, "align")
    summary = run_align(job.data, job.lang, job.exp, cfg, job.align_sets, job.gmm_pass, job.force,
                        job.through, **_jobs(job))
    for name, s in summary.items():
        print(f"{name}: {s['num_pdfs']} pdfs, {s['num_gauss']} Gaussians, "
              f"loglike/frame {s['loglike_per_iter'][0]:.2f} -> {s['loglike_per_iter'][-1]:.2f}")
        for k, v in s.items():
            if k.startswith("ali_"):
                print(f"  {k}: {json.dumps({a: v[a] for a in ('aligned', 'failed', 'avg_loglike')})}")
    if not summary:
        print("nothing to do (GMM passes done; use --force to redo)")
    return 0


MODES = {"nnet": (check_nnet_mode, run_nnet_mode),
         "import": (check_import_mode, run_import_mode),
         "gmm": (check_gmm_mode, run_gmm_mode)}


def mode_of(job: AlignJob) -> str:
    """"nnet" with --nnet, else "import" with --import-kaldi, else "gmm"."""
    return "nnet" if job.nnet else "import" if job.import_kaldi else "gmm"


def run_align_job(job: AlignJob) -> int:
    """Check the job against its mode's rules and run it; 0."""
    check, run = MODES[mode_of(job)]
    check(job)
    return run(job)
