#!/usr/bin/env bash
# The distillation study of RESULTS.md ("Distillation"), on two lanes: after
# ./run.sh --stop-stage 7 --speed-perturb "0.9 1.1", decode the recipe's main systems (as stage 8
# does, so a later stage 8 skips them), a second student seed, a quarter-size student, the 3 %
# experiment and the naive recipe, on two lanes. Run from recipes/mboshi.
set -euo pipefail
members=$(echo exp/members/m{1,2,3,4,5}/final.pt)
seeds_opts=(--gmm-stage tri2 --tune-dev data/dev_tune --config conf/mboshi.yaml)
train_opts=(--train-data data/train --train-ali exp/tri2/ali_train)
all_opts=(--train-data data/train_all --train-ali exp/tri2/ali_train_all --soft exp/ensemble/soft_all)
frac="--train-fraction 0.03 --fraction-seed 1 --epochs 30 --patience 5"
log() { echo "$(date '+%F %T') kd_study_short: $*"; }
dec() {  # dec <system> <checkpoint>...: the test decode of kd.sh's stage 8
  local name=$1; shift; local models=(); for m in "$@"; do models+=(--model "$m"); done
  acoustic-kd decode --graph exp/tri2/graph --data data/test "${models[@]}" --config conf/mboshi.yaml \
    --ali exp/tri2/ali_test --out "exp/decode/${name}_test" --tune-on-dev data/dev_tune
}
(
  log "lane A: graph and decodes"
  acoustic-kd mkgraph --lang data/lang --model exp/tri2/final.hmm.json --out exp/tri2/graph \
    --config conf/mboshi.yaml
  # shellcheck disable=SC2086
  dec ensemble $members
  dec student_kd exp/student_kd/final.pt
  dec student_hard exp/student_hard/final.pt
  dec m1 exp/members/m1/final.pt
  log "lane A: 3 % experiment"
  ../common/student_seeds.sh "${seeds_opts[@]}" "${train_opts[@]}" --name seeds_3pct \
    --soft exp/ensemble/soft_all --common-opts "$frac" --seeds "1001"
  log "lane A: naive recipe"
  # shellcheck disable=SC2086
  acoustic-kd soft-targets --members $members --data data/train --T 2 --out exp/ensemble/soft_T2 \
    --config conf/student.yaml
  ../common/student_seeds.sh "${seeds_opts[@]}" "${train_opts[@]}" --name seeds_naive \
    --soft exp/ensemble/soft_T2 --kd-opts "--T 2" --seeds "1001"
  log "lane A: done"
) > logs/kd_short_laneA.log 2>&1 &
(
  log "lane B: default recipe, seed 1002"
  ../common/student_seeds.sh "${seeds_opts[@]}" "${all_opts[@]}" --name seeds --seeds "1002" \
    --summary false
  log "lane B: quarter-size student"
  ../common/student_seeds.sh "${seeds_opts[@]}" "${all_opts[@]}" --name seeds_quarter \
    --student-config conf/student_quarter.yaml --seeds "1001" --summary false
  log "lane B: done"
) > logs/kd_short_laneB.log 2>&1 &
wait
