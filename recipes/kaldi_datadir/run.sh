#!/usr/bin/env bash
# kaldi_datadir: bring your own corpus. Point it at existing Kaldi data dirs (train/, dev/, test/
# each with wav.scp, text, utt2spk; optional segments) and a lexicon (word phone...; multiple
# pronunciations and stress digits allowed). Relative wav.scp paths resolve against --corpus-root.
# 8 and 16 kHz audio both work (set features.sample_rate in the config to the rate you want).
#
# Usage: ./run.sh --src DIR --lexicon FILE [--corpus-root DIR] [--lm ARPA] [--stage N] [--stop-stage M]
#                 [--nj J] [--config conf/kaldi.yaml] [--speed-perturb "0.9 1.1"]
#   --lm ARPA: decode with this ARPA LM (its words must be in the lexicon) instead of the estimated one
#   stage 0 validates and copies the data dirs into data/; stages 1-10 are recipes/common/kd.sh's.

cd "$(dirname "$0")"
stage=0; stop_stage=10; nj=2; members_nj=2; num_members=5; train_seed=1
src=; lexicon=; corpus_root=
config=conf/kaldi.yaml; student_config=conf/student.yaml; distill_mode=cached
data=data; exp=exp; lm=; speed_perturb=""   # e.g. "0.9 1.1": students train on the training set + copies (kd.sh)
. ../common/parse_options.sh "$@"
set -euo pipefail
recipe_title="kaldi_datadir: $src"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  [ -n "$src" ] && [ -n "$lexicon" ] || { echo "$0: --src and --lexicon are required (see --help)" >&2; exit 1; }
  echo "$(date '+%F %T') Stage 0: validate and copy Kaldi data dirs from $src"
  root_opt=(); [ -n "$corpus_root" ] && root_opt=(--opt "corpus_root=$corpus_root")
  acoustic-kd prepare kaldi --src "$src" --lexicon "$lexicon" --out "$data" "${root_opt[@]}"
fi
stage=$(( stage > 1 ? stage : 1 ))
. ../common/kd.sh
