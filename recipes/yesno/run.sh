#!/usr/bin/env bash
# yesno: 60 utterances of 8 yes/no words by one speaker (the words are Hebrew "ken"/"lo"), 8 kHz.
# Files 0_* train (the last 6 held out as dev), 1_* test. Then the shared distillation stages.
#
# Usage: ./run.sh [--src DIR] [--lm ARPA] [--stage N] [--stop-stage M] [--nj J] [--config conf/yesno.yaml] [--train-seed S]
#   [--speed-perturb "0.9 1.1"]
#   --src: directory of the .wav files; default ../../../shared/corpora/yesno/waves_yesno
#   --lm ARPA: decode with this ARPA LM (its words must be in the lexicon) instead of the estimated one
#   stage 0 prepares data/{train,dev,test}; stages 1-10 are recipes/common/kd.sh's.

cd "$(dirname "$0")"
stage=0; stop_stage=10; nj=2; members_nj=2; num_members=5; train_seed=1
src=../../../shared/corpora/yesno/waves_yesno; lexicon=hebrew
config=conf/yesno.yaml; student_config=conf/student.yaml; distill_mode=cached
data=data; exp=exp; lm=; speed_perturb=""   # e.g. "0.9 1.1": students train on the training set + copies (kd.sh)
. ../common/parse_options.sh "$@"
set -euo pipefail
recipe_title="yesno (training seed $train_seed)"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%F %T') Stage 0: prepare yesno from $src"
  acoustic-kd prepare yesno --src "$src" --out "$data" --lexicon "$lexicon"
fi
stage=$(( stage > 1 ? stage : 1 ))
. ../common/kd.sh
