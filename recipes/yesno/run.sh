#!/usr/bin/env bash
# yesno: 60 utterances of 8 yes/no words by one speaker (the words are Hebrew "ken"/"lo"), 8 kHz.
# Files 0_* train (the last 6 held out as dev), 1_* test. Then the shared distillation stages.
#
# Usage: ./run.sh [--src DIR] [--lexicon NAME] [options of ../common/kd.sh]
#   e.g. ./run.sh --stage 4 --stop-stage 4 --num-members 10; ./run.sh --speed-perturb ""
# Stage 0 prepares data/{train,dev,test}; stages 1-10 are ../common/kd.sh's.

cd "$(dirname "$0")"
set -euo pipefail
. ../common/options.sh
opt src ../../../shared/corpora/yesno/waves_yesno "directory of the .wav files"
opt lexicon hebrew "the lexicon of acoustic-kd prepare yesno: hebrew (what is spoken) or english"
recipe_options "$@"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%F %T') Stage 0: prepare yesno from $src"
  acoustic-kd prepare yesno --src "$src" --out "$data" --lexicon "$lexicon"
fi
../common/kd.sh --recipe-title "yesno (training seed $train_seed)" "${kd_args[@]}"
