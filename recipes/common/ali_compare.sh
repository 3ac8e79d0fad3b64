#!/usr/bin/env bash
# Which alignments does a DNN learn best from? Trains the same network (the hard-target student
# config, α = 1) on the training alignments of each GMM pass in --ali-dirs -- the same utterances
# (a fraction of the training set, drawn per seed), same seed, epochs and patience -- decodes the
# test set with each stage's own graph (scales tuned on dev; frame accuracy is not comparable across
# trees, WER and CER are) and prints the WER / CER of each seed and mean ± std.
# Run from a recipe dir:  ../common/ali_compare.sh [--fraction 0.03] [--seeds "1 2 3"]
#                           [--ali-dirs "exp/mono exp/tri"] [--student-config FILE] [--tune-dev DIR]
#
# Writes <name>/{f<fraction>_<stage>_s<seed>/{final.pt,decode/}} (a stage named by its path below
# the recipe dir, '/' -> '_'), each stage's graph/ (reused when unchanged), and <name>/COMPARE_f<fraction>.md
# (name: exp/ali_compare).

seeds="1 2 3 4 5"; fraction=0.03; config=conf/default.yaml; student_config=conf/student.yaml
data=data; exp=exp; name=; num_threads=2; ali_dirs=; tune_dev=
for c in conf/*.yaml; do case "$c" in *student*.yaml) ;; *) config=$c ;; esac; done
. ../common/parse_options.sh "$@"
set -euo pipefail
: "${name:=$exp/ali_compare}" "${ali_dirs:=$exp/mono $exp/tri}" "${tune_dev:=$data/dev}"

out=$name
labels=()
for a in $ali_dirs; do
  acoustic-kd mkgraph --lang "$data/lang" --model "$a/final.hmm.json" --out "$a/graph" --config "$config"
  labels+=("${a//\//_}")
done
for seed in $seeds; do   # seed by seed, so that a partial run already compares every stage
  for a in $ali_dirs; do
    d=$out/f${fraction}_${a//\//_}_s$seed
    acoustic-kd distill --alpha 1 --train-data "$data/train" --train-ali "$a/ali_train" \
      --dev-data "$data/dev" --dev-ali "$a/ali_dev" --student-config "$student_config" \
      --train-fraction "$fraction" --fraction-seed "$seed" --seed "$seed" --patience 0 \
      --num-threads "$num_threads" --out "$d"
    acoustic-kd decode --graph "$a/graph" --data "$data/test" --model "$d/final.pt" \
      --ali "$a/ali_test" --out "$d/decode" --tune-on-dev "$tune_dev" --config "$config"
  done
done

# shellcheck disable=SC2086
python3 "$(dirname "$0")/study.py" ali-summary "$out" --fraction "$fraction" --labels="${labels[*]}" $seeds
