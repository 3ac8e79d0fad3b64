"""Train GMM-HMMs (flat-start monophones, then tree-tied triphones) and force-align data sets.

Writes exp/mono, exp/tri, with `--through tri2` exp/tri2 (LDA+MLLT) and with `--through tri3`
exp/tri3 (speaker-adaptive training with per-speaker fMLLR) (final.hmm.json, final.gmm.npz,
log.jsonl, ali_<set>/ ...).
Example: acoustic-kd align --data data/train --lang data/lang --exp exp --align-sets data/dev data/test
Import Kaldi alignments instead: acoustic-kd align --import-kaldi ali.txt --num-pdfs N --out exp/ali_ext
Realign with a network (hybrid DNN-HMM, one checkpoint or an ensemble) through a GMM pass's HMM:
  acoustic-kd align --nnet exp/m1/final.pt [--nnet exp/m2/final.pt ...] --hmm-dir exp/tri \\
      --lang data/lang --align-sets data/train data/dev --out exp/nnet_ali [--acoustic-scale 0.1]
--nj N splits the data by speaker into N jobs (--backend local: processes; slurm: sbatch jobs),
as Kaldi's steps do: every pass's alignment, Gaussian / tree / LDA / MLLT statistics and per-speaker
fMLLR are computed per job and summed; the model, tree, LDA and MLLT are estimated once from the
sums. Results equal --nj 1's up to the order of float additions.
"""

from __future__ import annotations

import argparse

from ..config import add_config_args
from ..config_types import positive_int
from ..gmm.modes import AlignJob, run_align_job
from ..gmm.run import PASSES
from ..gmm.train import AlignConfig
from ..plan import ALIGN_PLAN

HELP = "GMM-HMM training and forced alignment (or DNN realignment, or import Kaldi ali-to-pdf output)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="training data dir (with features)")
    p.add_argument("--lang", help="lang dir from `acoustic-kd lang`")
    p.add_argument("--exp", help="experiment dir (gets mono/, tri/ and with --through tri2 / tri3, "
                   "tri2/ / tri3/)")
    p.add_argument("--align-sets", nargs="*", default=[], help="more data dirs to align (dev, test)")
    p.add_argument("--pass", "--stage", dest="gmm_pass", choices=list(PASSES),
                   help="train only this GMM pass (the one before it must be finished; --stage is "
                        "its older name)")
    p.add_argument("--through", choices=list(PASSES), default="tri",
                   help="last GMM pass to train: tri (Δ triphones, default), tri2 (LDA+MLLT) or "
                        "tri3 (LDA+MLLT+SAT: per-speaker fMLLR)")
    p.add_argument("--config", help="recipe YAML (section 'align')")
    p.add_argument("--force", action="store_true", help="redo finished passes")
    p.add_argument("--import-kaldi", metavar="FILE", help="Kaldi ali-to-pdf output (ark/scp/text)")
    p.add_argument("--num-pdfs", type=positive_int, help="pdf count of the imported alignments")
    p.add_argument("--out", help="output dir for --import-kaldi (alignment dir) or --nnet "
                   "(gets ali_<set>/ per --align-sets dir)")
    p.add_argument("--nnet", action="append", default=[], metavar="CKPT",
                   help="align with this network checkpoint (final.pt) instead of training GMMs; "
                        "repeat for an ensemble")
    p.add_argument("--hmm-dir", help="with --nnet: GMM pass dir whose final.hmm.json gives the "
                   "HMM the network was trained on (e.g. exp/tri)")
    p.add_argument("--combine", default="arithmetic", choices=["arithmetic", "geometric"],
                   help="with several --nnet: ensemble combination rule")
    p.add_argument("--priors", help="with --nnet: priors.txt (default: the checkpoint's priors)")
    p.add_argument("--nj", type=positive_int, default=1,
                   help="jobs (parts of whole speakers) that align and accumulate statistics in "
                        "parallel: every GMM pass (flat start, realignment, Gaussian, tree, "
                        "LDA/MLLT, fMLLR) and the alignment of --align-sets, also with --nnet; "
                        "the tree, LDA and MLLT are estimated from the summed statistics; one "
                        "thread per job, logs in EXP/log/align_<set>.J.log (default: 1, in this "
                        "process)")
    p.add_argument("--backend", choices=("local", "slurm"), default="local",
                   help="run the --nj jobs as local processes or submit them with sbatch; Slurm "
                        "jobs connect back to this host over TCP (default: local)")
    p.add_argument("--slurm-opts", default="", help="extra sbatch options, e.g. '-p cpu'")
    add_config_args(p, AlignConfig, planned=ALIGN_PLAN)


def run(args: argparse.Namespace) -> int:
    return run_align_job(AlignJob.from_args(args))
