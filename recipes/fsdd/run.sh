#!/usr/bin/env bash
# fsdd: Free Spoken Digit Dataset (6 speakers, 3000 isolated digits, 8 kHz; CC BY-SA 4.0,
# Zohar Jackson et al., github.com/Jakobovski/free-spoken-digit-dataset). Official split: take
# indices 0-4 = test; 5-9 = dev; 10-49 = train. Then the shared distillation stages.
#
# Usage: ./run.sh [--src DIR] [--lm ARPA] [--stage N] [--stop-stage M] [--nj J] [--config conf/fsdd.yaml] [--train-seed S]
#   [--speed-perturb "0.9 1.1"]
#   --src: the corpus download (a directory holding recordings/); default ../../../shared/corpora/fsdd
#   --lm ARPA: decode with this ARPA LM (its words must be in the lexicon) instead of the estimated one
#   stage 0 prepares data/{train,dev,test}; stages 1-10 are recipes/common/kd.sh's.

cd "$(dirname "$0")"
stage=0; stop_stage=10; nj=2; members_nj=2; num_members=5; train_seed=1
src=../../../shared/corpora/fsdd
config=conf/fsdd.yaml; student_config=conf/student.yaml; distill_mode=cached
data=data; exp=exp; lm=; speed_perturb=""   # e.g. "0.9 1.1": students train on the training set + copies (kd.sh)
. ../common/parse_options.sh "$@"
set -euo pipefail
recipe_title="fsdd (training seed $train_seed)"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%F %T') Stage 0: prepare FSDD from $src"
  acoustic-kd prepare fsdd --src "$src" --out "$data"
fi
stage=$(( stage > 1 ? stage : 1 ))
. ../common/kd.sh
