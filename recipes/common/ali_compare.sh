#!/usr/bin/env bash
# Does a DNN learn better from triphone or from monophone alignments? Trains the same network (the
# hard-target student config, α = 1) on exp/mono/ali_train and on exp/tri/ali_train -- the same
# utterances (a fraction of the training set, drawn per seed), same seed, epochs and patience --
# decodes the test set with each alignment's own graph (scales tuned on dev) and prints the WER
# of each seed and mean ± std. Stages 1-3 of the recipe must have run.
# Run from a recipe dir:  ../common/ali_compare.sh [--fraction 0.03] [--seeds "1 2 3 4 5"]
#
# Writes exp/<name>/{graph_mono,f<fraction>_{mono,tri}_s<seed>/{final.pt,decode/}} and
# exp/<name>/COMPARE_f<fraction>.md (name: ali_compare).

seeds="1 2 3 4 5"; fraction=0.03; config=conf/default.yaml; student_config=conf/student.yaml
data=data; exp=exp; name=ali_compare; num_threads=2
for c in conf/*.yaml; do case "$c" in *student*.yaml) ;; *) config=$c ;; esac; done
. ../common/parse_options.sh "$@"
set -euo pipefail

out=$exp/$name
acoustic-kd mkgraph --lang "$data/lang" --model "$exp/mono/final.hmm.json" --out "$out/graph_mono" \
  --config "$config"
for seed in $seeds; do
  for a in mono tri; do
    graph=$exp/tri/graph; [ $a = mono ] && graph=$out/graph_mono
    d=$out/f${fraction}_${a}_s$seed
    acoustic-kd distill --alpha 1 --train-data "$data/train" --train-ali "$exp/$a/ali_train" \
      --dev-data "$data/dev" --dev-ali "$exp/$a/ali_dev" --student-config "$student_config" \
      --train-fraction "$fraction" --fraction-seed "$seed" --seed "$seed" --patience 0 \
      --num-threads "$num_threads" --out "$d"
    acoustic-kd decode --graph "$graph" --data "$data/test" --model "$d/final.pt" \
      --ali "$exp/$a/ali_test" --out "$d/decode" --tune-on-dev "$data/dev" --config "$config"
  done
done

python3 - "$out" "$fraction" $seeds <<'PY'
import statistics as st, sys
from pathlib import Path
from acoustic_kd.decode.score import read_wer_file
out, frac, seeds = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
def wer(a, s):
    return read_wer_file(out / f"f{frac}_{a}_s{s}" / "decode" / "wer").rate
w = {a: [wer(a, s) for s in seeds] for a in ("mono", "tri")}
def ms(x):
    return f"{st.mean(x):.2f} ± {st.stdev(x):.2f}" if len(x) > 1 else f"{x[0]:.2f}"
diff = [t - m for m, t in zip(w["mono"], w["tri"])]
lines = [f"# DNN on monophone vs triphone alignments (train fraction {frac}, seeds {' '.join(seeds)})", "",
         "| alignments | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
         "|---|" + "---|" * (len(seeds) + 1)]
for a in ("mono", "tri"):
    lines.append(f"| {a} | " + " | ".join(f"{x:.2f}" for x in w[a]) + f" | {ms(w[a])} |")
lines += ["", f"Test WER (%). tri − mono: {ms(diff)} points; tri better in "
          f"{sum(d < 0 for d in diff)} of {len(diff)} seeds."]
text = "\n".join(lines) + "\n"
(out / f"COMPARE_f{frac}.md").write_text(text)
print(text)
PY
