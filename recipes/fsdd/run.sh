#!/usr/bin/env bash
# fsdd: Free Spoken Digit Dataset (6 speakers, 3000 isolated digits, 8 kHz; CC BY-SA 4.0,
# Zohar Jackson et al., github.com/Jakobovski/free-spoken-digit-dataset). Official split: take
# indices 0-4 = test; 5-9 = dev; 10-49 = train. Then the shared distillation stages.
#
# Usage: ./run.sh [--src DIR] [options of ../common/kd.sh]
#   e.g. ./run.sh --stage 4 --stop-stage 4 --num-members 10; ./run.sh --speed-perturb ""
# Stage 0 prepares data/{train,dev,test}; stages 1-10 are ../common/kd.sh's.

cd "$(dirname "$0")"
set -euo pipefail
. ../common/options.sh
opt src ../../../shared/corpora/fsdd "the corpus download (a directory holding recordings/)"
recipe_options "$@"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%F %T') Stage 0: prepare FSDD from $src"
  acoustic-kd prepare fsdd --src "$src" --out "$data"
fi
../common/kd.sh --recipe-title "fsdd (training seed $train_seed)" "${kd_args[@]}"
