#!/usr/bin/env bash
# Choose the members' regularisation on dev: train one member per variant (the recipe's `model:` /
# `train:` / `augment:` config plus the variant's options), same seed and data, and print each
# variant's dev frame accuracy per epoch, its best epoch and the train-dev gap at that epoch.
# Run from a recipe dir:
#   ../common/member_sweep.sh [--variants "none:|drop:--dropout 0.2|spec:--time-masks 2 --freq-masks 2"]
#                             [--ali DIR] [--name DIR] [--seed S] [--nj 2] [--epochs N]
# (variants are "name:acoustic-kd train options", separated by '|'). Writes <name>/<variant>/ (a
# member each) and <name>/SWEEP.md; finished variants are skipped, so a killed sweep resumes.

variants="none:|drop0.2:--dropout 0.2|spec:--time-masks 2 --time-width 4 --freq-masks 2 --freq-width 8"
config=conf/default.yaml; data=data; exp=exp; ali=; name=; seed=1; nj=2; epochs=
for c in conf/*.yaml; do case "$c" in *student*.yaml|*compare*.yaml) ;; *) config=$c ;; esac; done
. ../common/parse_options.sh "$@"
set -euo pipefail
: "${ali:=$exp/tri}" "${name:=$exp/member_sweep}"

mkdir -p "$name"
IFS='|' read -r -a specs <<< "$variants"
pids=()
for spec in "${specs[@]}"; do
  v=${spec%%:*}; opts=${spec#*:}
  ep_opt=(); [ -n "$epochs" ] && ep_opt=(--epochs "$epochs")
  # shellcheck disable=SC2086
  acoustic-kd train --train-data "$data/train" --train-ali "$ali/ali_train" --dev-data "$data/dev" \
    --dev-ali "$ali/ali_dev" --config "$config" --seed "$seed" --num-threads 1 "${ep_opt[@]}" \
    $opts --out "$name/$v" > "$name/$v.log" 2>&1 &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$nj" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done

python3 "$(dirname "$0")/study.py" sweep-summary "$name" --variants="$variants"
