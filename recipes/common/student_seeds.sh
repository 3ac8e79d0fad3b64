#!/usr/bin/env bash
# Repeat the key comparison -- distilled student vs its hard-target control -- over several seeds,
# reusing the recipe's ensemble, soft targets and graph (stages 4, 5 and the ensemble's decode of
# stage 8 must have run), and print mean ± std of test frame accuracy, WER and CER, and the kept
# share of the ensemble's gain in frame accuracy and in WER.
# Run from a recipe dir:  ../common/student_seeds.sh [--seeds "1001 1002 1003"] [--config ...]
# Another distillation recipe on the same members, e.g. the naive one (T = 2, training set only):
#   ../common/student_seeds.sh --name seeds_naive --soft exp/ensemble/soft_T2 --kd-opts "--T 2"
#
# Options (defaults below): --train-data/--train-ali/--soft another training set for both students
# (e.g. with speed-perturbed copies; the soft targets must cover it); --student-config another
# student (e.g. a quarter-size one); --kd-opts extra `acoustic-kd distill` options of the distilled
# student only (its control stays the plain α = 1 run, given the members only to normalise its
# features as they do); --common-opts options of both (e.g.
# "--train-fraction 0.03"); --transfer-data an untranscribed set for the distilled student only;
# --gmm-pass tri | tri2 (whose alignments and graph; --gmm-stage is its older name); --tune-dev the dev set the decode scales are
# tuned on; --recipe-seed S: seed S's runs are the recipe's own exp/student_kd and exp/control
# with their decodes (stages 6-8 with the same options: done once, not twice); --summary false only
# trains and decodes (a later run with the whole seed list skips that work and writes SEEDS.md);
# --tune-once true tunes the decode scales on dev for the first seed of the list only and decodes
# the other seeds with that seed's scales (per system: the distilled student's for the distilled
# students, the control's for the controls), which saves the tuning grid's decodes.
#
# Writes exp/<name>/s<seed>/{student_kd,control}, exp/decode/<name>/<system>_s<seed>_test and
# exp/<name>/SEEDS.md (name: seeds).

seeds="1001 1002 1003"; config=conf/default.yaml; student_config=conf/student.yaml
data=data; exp=exp; name=seeds; kd_opts=""; common_opts=""; train_data=""; train_ali=""; soft=""
transfer_data=""; gmm_pass=tri; gmm_stage=""; tune_dev=""; recipe_seed=""; ensemble=ensemble; summary=true
tune_once=false
for c in conf/*.yaml; do case "$c" in *student*.yaml|*compare*.yaml) ;; *) config=$c ;; esac; done
. ../common/parse_options.sh "$@"
set -euo pipefail

gmm_pass=${gmm_stage:-$gmm_pass}
g=$exp/$gmm_pass
declare -A first_dec
: "${train_data:=$data/train}" "${train_ali:=$g/ali_train}" "${soft:=$exp/ensemble/soft}"
: "${tune_dev:=$data/dev}"
ali_args="--train-data $train_data --train-ali $train_ali --dev-data $data/dev --dev-ali $g/ali_dev"
test_args="--test-data $data/test --test-ali $g/ali_test"
first_seed=${seeds%% *}
# the recipe's control: exp/control (exp/student_hard in an experiment made before the rename)
recipe_control=control; [ -d "$exp/student_hard" ] && [ ! -d "$exp/control" ] && recipe_control=student_hard
for seed in $seeds; do
  for sys in student_kd control; do
    out="$exp/$name/s$seed/$sys"; dec="$exp/decode/$name/${sys}_s${seed}_test"
    if [ "$seed" = "$recipe_seed" ]; then
      r=$sys; [ $sys = control ] && r=$recipe_control
      out="$exp/$r"; dec="$exp/decode/${r}_test"
    fi
    if [ "$seed" = "$first_seed" ]; then first_dec[$sys]=$dec; fi
    if [ $sys = student_kd ]; then
      teacher="--soft $soft $kd_opts"; [ -n "$transfer_data" ] && teacher="$teacher --transfer-data $transfer_data"
    else
      teacher="--alpha 1 --members $(echo "$exp"/members/m*/final.pt)"   # (normalised as they are)
    fi
    # shellcheck disable=SC2086
    acoustic-kd distill $teacher $common_opts $ali_args $test_args --student-config "$student_config" \
      --seed "$seed" --out "$out"
    tune=(--tune-on-dev "$tune_dev")
    if [ "$tune_once" = true ] && [ "$seed" != "$first_seed" ]; then
      tune=(--tuned "${first_dec[$sys]}/tune.json")
    fi
    acoustic-kd decode --graph "$g/graph" --data "$data/test" --model "$out/final.pt" \
      --config "$config" --ali "$g/ali_test" --out "$dec" "${tune[@]}"
  done
done

[ "$summary" = true ] || exit 0
tune_flag=(); [ "$tune_once" = true ] && tune_flag=(--tune-once)
# shellcheck disable=SC2086
python3 "$(dirname "$0")/study.py" seeds-summary --exp "$exp" --name "$name" --opts="$kd_opts $common_opts" \
  --recipe-seed="$recipe_seed" --ensemble "$ensemble" "${tune_flag[@]}" $seeds
