#!/usr/bin/env bash
# The distillation study of RESULTS.md ("Distillation"), after ./run.sh --stop-stage 4 with
# --speed-perturb "0.9 1.1" (members trained): stores, the default student and control (3 seeds),
# the naive recipe (T = 2, training set only), a quarter-size student, the 3 % experiment (with and
# without the other 97 % untranscribed) and the top-k store's cost against a dense one. Two lanes
# run side by side (one decoding-heavy, one training), each step skipped when already done.
# Run from recipes/mboshi:  local/kd_study.sh > logs/kd_study.log 2>&1
set -euo pipefail
sp="0.9 1.1"
members=$(echo exp/members/m{1,2,3,4,5}/final.pt)
seeds_opts=(--gmm-stage tri2 --tune-dev data/dev_tune --config conf/mboshi.yaml)
train_opts=(--train-data data/train --train-ali exp/tri2/ali_train)
all_opts=(--train-data data/train_all --train-ali exp/tri2/ali_train_all --soft exp/ensemble/soft_all)
frac="--train-fraction 0.03 --fraction-seed 1 --epochs 30 --patience 5"
log() { echo "$(date '+%F %T') kd_study: $*"; }

log "stages 5-7: soft targets (T = 5, train + copies), default student and control, seed 1001"
./run.sh --stage 5 --stop-stage 7 --speed-perturb "$sp"
log "soft targets at T = 2 on the training set (the naive recipe)"
# shellcheck disable=SC2086
acoustic-kd soft-targets --members $members --data data/train --T 2 --out exp/ensemble/soft_T2 \
  --config conf/student.yaml

(   # lane A: decode every recipe system; then the naive recipe and the 3 % experiment
  log "lane A: stage 8"
  ./run.sh --stage 8 --stop-stage 8 --speed-perturb "$sp"
  log "lane A: naive recipe"
  ../common/student_seeds.sh "${seeds_opts[@]}" "${train_opts[@]}" --name seeds_naive \
    --soft exp/ensemble/soft_T2 --kd-opts "--T 2" --seeds "1001" --summary false
  log "lane A: 3 % experiment"
  ../common/student_seeds.sh "${seeds_opts[@]}" "${train_opts[@]}" --name seeds_3pct \
    --soft exp/ensemble/soft_all --common-opts "$frac" --seeds "1001" --summary false
  ../common/student_seeds.sh "${seeds_opts[@]}" "${train_opts[@]}" --name seeds_3pct_transfer \
    --soft exp/ensemble/soft_all --common-opts "$frac" --kd-opts "--epochs 4" \
    --transfer-data data/train --seeds "1001" --summary false
) > logs/kd_study_laneA.log 2>&1 &
lane_a=$!

log "lane B: default recipe, seeds 1002 1003"
../common/student_seeds.sh "${seeds_opts[@]}" "${all_opts[@]}" --name seeds --seeds "1002 1003" \
  --summary false
log "lane B: quarter-size student"
../common/student_seeds.sh "${seeds_opts[@]}" "${all_opts[@]}" --name seeds_quarter \
  --student-config conf/student_quarter.yaml --seeds "1001" --summary false
wait "$lane_a"

log "summaries"
../common/student_seeds.sh "${seeds_opts[@]}" "${all_opts[@]}" --name seeds --seeds "1001 1002 1003" \
  --recipe-seed 1001
../common/student_seeds.sh "${seeds_opts[@]}" "${all_opts[@]}" --name seeds_quarter \
  --student-config conf/student_quarter.yaml --seeds "1001"
../common/student_seeds.sh "${seeds_opts[@]}" "${train_opts[@]}" --name seeds_naive \
  --soft exp/ensemble/soft_T2 --kd-opts "--T 2" --seeds "1001"
../common/student_seeds.sh "${seeds_opts[@]}" "${train_opts[@]}" --name seeds_3pct \
  --soft exp/ensemble/soft_all --common-opts "$frac" --seeds "1001"
../common/student_seeds.sh "${seeds_opts[@]}" "${train_opts[@]}" --name seeds_3pct_transfer \
  --soft exp/ensemble/soft_all --common-opts "$frac" --kd-opts "--epochs 4" \
  --transfer-data data/train --seeds "1001"
log "done"
