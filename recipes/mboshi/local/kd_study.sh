#!/usr/bin/env bash
# The distillation study of RESULTS.md ("Distillation"), after
#   ./run.sh --stop-stage 7 --speed-perturb "0.9 1.1"
# one step after another (one heavy job at a time; every step skips work already done, so a killed
# study resumes): the bf16 teacher check, the test decodes of the recipe's systems (as stage 8 makes
# them, so a later stage 8 skips them), more seeds of the default recipe, a quarter-size student,
# the 3 % experiment with and without the other 97 % as untranscribed transfer data, the naive
# recipe (T = 2, training set only), the top-k store against dense targets (dense) and what it loses
# (store: larger k, other remainder models), the networks' CMVN mode;
# first (epochs), the student's length on dev: the recipe's student (conf/student.yaml) against 3 epochs.
# Last (curves), a plot of dev frame accuracy per epoch of the members and every student trained.
# Run from recipes/mboshi:  local/kd_study.sh [--steps "epochs bf16 seeds decode dense store quarter naive transfer pct cmvn members curves"]
steps="epochs bf16 seeds decode dense store quarter naive transfer pct cmvn members curves"
seeds="1001 1002 1003"
recipe_seed=1001   # the seed of the recipe's own exp/student_kd, exp/control (stages 6-7)
threads=""   # --threads N: every training of the study uses N torch threads (e.g. 1 beside another job)
. ../common/parse_options.sh "$@"
set -euo pipefail
members=$(echo exp/members/m{1,2,3,4,5}/final.pt)
seeds_opts=(--gmm-pass tri2 --tune-dev data/dev_tune --config conf/mboshi.yaml --tune-once true)
train_opts=(--train-data data/train --train-ali exp/tri2/ali_train)
all_opts=(--train-data data/train_all --train-ali exp/tri2/ali_train_all --soft exp/ensemble/soft_all)
frac="--train-fraction 0.03 --fraction-seed 1"
thr=""; [ -n "$threads" ] && thr="--num-threads $threads"
log() { echo "$(date '+%F %T') kd_study: $*"; }
want() { case " $steps " in *" $1 "*) return 0 ;; esac; return 1; }
dec() {  # dec <system> <decode options> -- <checkpoint>...: the test decode of kd.sh's stage 8
  local name=$1; shift; local opts=(); while [ "$1" != -- ]; do opts+=("$1"); shift; done; shift
  local models=(); for m in "$@"; do models+=(--model "$m"); done
  acoustic-kd decode --graph exp/tri2/graph --data data/test "${models[@]}" --config conf/mboshi.yaml \
    --ali exp/tri2/ali_test --out "exp/decode/${name}_test" "${opts[@]}"
}
pct_student() {  # pct_student <store under exp/ensemble> <out> [distill options]: a 3 % student, seed 1001
  local store=$1 out=$2; shift 2
  # shellcheck disable=SC2086
  acoustic-kd distill --soft "exp/ensemble/$store" "$@" --train-data data/train_3pct \
    --train-ali exp/tri2/ali_train --dev-data data/dev --dev-ali exp/tri2/ali_dev \
    --test-data data/test --test-ali exp/tri2/ali_test --student-config conf/student.yaml \
    --epochs 30 --patience 5 --seed 1001 --out "$out" $thr
}
if want epochs; then
  log "the distilled student with 3 epochs, against the recipe's (exp/student_kd), on dev"
  # shellcheck disable=SC2086
  acoustic-kd distill "${all_opts[@]}" --dev-data data/dev --dev-ali exp/tri2/ali_dev \
    --test-data data/test --test-ali exp/tri2/ali_test --student-config conf/student.yaml \
    --epochs 3 --seed 1001 --out exp/epochs/student_kd_ep3 $thr
fi
if want bf16; then
  log "bf16 teacher against fp32 on dev"
  # shellcheck disable=SC2086
  [ -s exp/ensemble/bf16_teacher_dev.json ] || python3 ../../bench/bf16_teacher.py --members $members \
    --data data/dev --ali exp/tri2/ali_dev --threads 2 --json exp/ensemble/bf16_teacher_dev.json \
    || log "the bf16 check failed (see above); going on"
fi
graph() {
  acoustic-kd mkgraph --lang data/lang --model exp/tri2/final.hmm.json --out exp/tri2/graph \
    --config conf/mboshi.yaml
}
if want seeds; then
  graph
  log "default recipe: seeds $seeds (seed $recipe_seed is the recipe's own exp/student_kd, exp/control)"
  ../common/student_seeds.sh "${seeds_opts[@]}" "${all_opts[@]}" --name seeds --seeds "$seeds" \
    --recipe-seed "$recipe_seed" --summary false --common-opts "$thr"
fi
if want decode; then
  log "the test decode of the ensemble"
  graph
  # shellcheck disable=SC2086
  dec ensemble --tune-on-dev data/dev_tune -- $members
  if want seeds; then   # the seeds' summary (SEEDS.md) needs the ensemble's decode
    ../common/student_seeds.sh "${seeds_opts[@]}" "${all_opts[@]}" --name seeds --seeds "$seeds" \
      --recipe-seed "$recipe_seed" --common-opts "$thr"
  fi
fi
if want dense; then
  log "top-k against dense soft targets, on the 3 % subset (same frames, seed and schedule)"
  # the utterances of `distill --train-fraction 0.03 --fraction-seed 1`, as a data dir
  python3 ../common/study.py fraction-list --data data/train --ali exp/tri2/ali_train --fraction 0.03 \
    --seed 1 --out data/train_3pct.list
  acoustic-kd data-dir subset data/train data/train_3pct --utt-list data/train_3pct.list
  # shellcheck disable=SC2086
  acoustic-kd soft-targets --members $members --data data/train_3pct --dense true \
    --out exp/ensemble/soft_3pct_dense --config conf/student.yaml
  for store in soft_all soft_3pct_dense; do pct_student $store "exp/dense_vs_topk/$store"; done
fi
if want store; then
  log "what the top-k store loses, on the 3 % subset (after --steps dense): more k, the remainder as one class, a neighbour-mixture tail"
  python3 ../../bench/topk_tail.py --dense exp/ensemble/soft_3pct_dense --profile exp/ensemble/soft_all \
    --k 20 50 100 --json exp/dense_vs_topk/tail_kl.json --write 50:uniform 100:uniform 20:mix:0.5
  for store in soft_3pct_dense_top50 soft_3pct_dense_top100 soft_3pct_dense_top20_mix0.5; do
    pct_student $store "exp/dense_vs_topk/$store"
  done
  pct_student soft_all exp/dense_vs_topk/soft_all_rest --tail rest
fi
if want quarter; then
  log "quarter-size student (3 x 150) on a T = 2 store (conf/student_quarter.yaml) and its control, seeds $seeds"
  # shellcheck disable=SC2086
  acoustic-kd soft-targets --members $members --data data/train_all --T 2 --out exp/ensemble/soft_all_T2 \
    --config conf/student.yaml
  ../common/student_seeds.sh "${seeds_opts[@]}" --train-data data/train_all --train-ali exp/tri2/ali_train_all \
    --soft exp/ensemble/soft_all_T2 --name seeds_quarter --student-config conf/student_quarter.yaml \
    --seeds "$seeds" --common-opts "$thr"
fi
if want naive; then
  log "naive recipe: T = 2, training set only"
  # shellcheck disable=SC2086
  acoustic-kd soft-targets --members $members --data data/train --T 2 --out exp/ensemble/soft_T2 \
    --config conf/student.yaml
  ../common/student_seeds.sh "${seeds_opts[@]}" "${train_opts[@]}" --name seeds_naive \
    --soft exp/ensemble/soft_T2 --kd-opts "--T 2" --seeds "${seeds%% *}" --summary false --common-opts "$thr"
fi
if want transfer; then
  log "3 % experiment, the student also sees the other 97 % untranscribed (labelled by the ensemble)"
  # 3 epochs of 3 % labelled + 97 % transfer frames (≈ 1 epoch of the training set each)
  ../common/student_seeds.sh "${seeds_opts[@]}" "${train_opts[@]}" --name seeds_3pct_transfer \
    --soft exp/ensemble/soft_all --common-opts "$frac --epochs 3 --patience 0 $thr" \
    --transfer-data data/train --seeds "${seeds%% *}" --summary false
fi
if want pct; then
  log "3 % experiment"
  ../common/student_seeds.sh "${seeds_opts[@]}" "${train_opts[@]}" --name seeds_3pct \
    --soft exp/ensemble/soft_all --common-opts "$frac --epochs 30 --patience 5 $thr" --seeds "$seeds"
fi
if want cmvn; then
  log "the networks' CMVN mode on dev: member m1's recipe (per-utterance CMVN) with global and per-speaker CMVN"
  ../common/member_sweep.sh --config conf/mboshi.yaml --ali exp/tri2 --name exp/cmvn_sweep \
    --variants "global:--cmvn global|speaker:--cmvn speaker"
fi
if want members; then
  log "test decodes of the members (m2-m5 with m1's dev-tuned scales)"
  dec m1 --tune-on-dev data/dev_tune -- exp/members/m1/final.pt
  for i in 2 3 4 5; do dec "m$i" --tuned exp/decode/m1_test/tune.json -- "exp/members/m$i/final.pt"; done
fi
if want curves; then
  log "dev frame accuracy per epoch: exp/plots/dev_curves.png"
  python3 ../common/study.py curves --exp exp --out exp/plots/dev_curves.png \
    --title "Mboshi dev frame accuracy per epoch" --recipe-seed "$recipe_seed" --seeds-dir exp/seeds
fi
log "done"
