#!/usr/bin/env bash
# synth_digits: the embedded, offline demo. Connected digit strings synthesized with espeak-ng
# (many voices, random rate/pitch, additive noise; test voices unseen in training), then the whole
# distillation workflow: lang, fbank, GMM-HMM alignment, a K-member DNN ensemble, a distilled
# student and its hard-target control, WFST decoding, export, and the comparison table.
#
# Usage: ./run.sh [--seed S] [--num-train N --num-dev N --num-test N] [--synth-opts "..."]
#                 [options of ../common/kd.sh]
#   e.g. ./run.sh --synth-opts "snr_min_db=10 clean_prob=0.3" --speed-perturb ""
# Stage 0 synthesizes data/{train,dev,test} (with --nj jobs); stages 1-10 are ../common/kd.sh's.
# Outputs: data/ and exp/ here; the table lands in exp/RESULTS.md.

cd "$(dirname "$0")"
set -euo pipefail
. ../common/options.sh
opt seed 0 "the corpus seed (the training seed is kd.sh's --train-seed)"
opt num_train 800 "training utterances"
opt num_dev 150 "dev utterances"
opt num_test 150 "test utterances"
opt synth_opts "" "other SynthDigitsConfig fields, \"name=value ...\" (acoustic-kd prepare synth_digits --opt)"
recipe_options "$@"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%F %T') Stage 0: synthesize the corpus"
  read -r -a words <<< "$synth_opts"; opts=(); for o in "${words[@]}"; do opts+=(--opt "$o"); done
  acoustic-kd prepare synth_digits --out "$data" --seed "$seed" --nj "$nj" \
    --opt "num_train=$num_train" --opt "num_dev=$num_dev" --opt "num_test=$num_test" "${opts[@]}"
fi
../common/kd.sh --recipe-title "synth_digits (corpus seed $seed, training seed $train_seed)" "${kd_args[@]}"
