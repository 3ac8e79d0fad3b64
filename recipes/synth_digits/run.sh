#!/usr/bin/env bash
# synth_digits: the embedded, offline demo. Connected digit strings synthesized with espeak-ng
# (many voices, random rate/pitch, additive noise; test voices unseen in training), then the whole
# distillation workflow: lang, fbank, GMM-HMM alignment, a K-member DNN ensemble, a distilled
# student and its hard-target control, WFST decoding, export, and the comparison table.
#
# Usage: ./run.sh [--lm ARPA] [--stage N] [--stop-stage M] [--nj J] [--config conf/demo.yaml] [--seed S] [--train-seed S]
#   [--speed-perturb "0.9 1.1"] [--num-train N --num-dev N --num-test N] [--synth-opts "snr_min_db=10 clean_prob=0.3"]
#   --lm ARPA: decode with this ARPA LM (its words must be in the lexicon) instead of the estimated one
#   stage 0 synthesizes data/{train,dev,test}; stages 1-10 are recipes/common/kd.sh's.
# Outputs: data/ and exp/ here; the table lands in exp/RESULTS.md.

cd "$(dirname "$0")"
stage=0; stop_stage=10; nj=2; members_nj=2; num_members=5; seed=0; train_seed=1
num_train=800; num_dev=150; num_test=150
synth_opts=""   # other SynthDigitsConfig fields, "name=value ..." (acoustic-kd prepare synth_digits --opt)
config=conf/demo.yaml; student_config=conf/student.yaml; distill_mode=cached
data=data; exp=exp; lm=; speed_perturb=""   # e.g. "0.9 1.1": students train on the training set + copies (kd.sh)
. ../common/parse_options.sh "$@"
set -euo pipefail
recipe_title="synth_digits (corpus seed $seed, training seed $train_seed)"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%F %T') Stage 0: synthesize the corpus"
  opts=(); for o in $synth_opts; do opts+=(--opt "$o"); done
  acoustic-kd prepare synth_digits --out "$data" --seed "$seed" --nj "$nj" \
    --opt num_train=$num_train --opt num_dev=$num_dev --opt num_test=$num_test ${opts[@]+"${opts[@]}"}
fi
stage=$(( stage > 1 ? stage : 1 ))
. ../common/kd.sh
