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

python3 - "$out" "$fraction" "${labels[*]}" $seeds <<'PY'
import statistics as st, sys
from pathlib import Path
from acoustic_kd.decode.score import read_wer_file
out, frac, labels, seeds = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(), sys.argv[4:]
def rate(a, s, kind):
    p = out / f"f{frac}_{a}_s{s}" / "decode" / kind
    return read_wer_file(p).rate if p.exists() else float("nan")
def ms(x):
    return f"{st.mean(x):.2f} ± {st.stdev(x):.2f}" if len(x) > 1 else f"{x[0]:.2f}"
lines = [f"# The same DNN on each stage's alignments (train fraction {frac}, seeds {' '.join(seeds)})", "",
         "| alignments | " + " | ".join(f"seed {s} WER / CER" for s in seeds) + " | WER mean ± std | CER mean ± std |",
         "|---|" + "---|" * (len(seeds) + 2)]
for a in labels:
    w, c = [rate(a, s, "wer") for s in seeds], [rate(a, s, "cer") for s in seeds]
    lines.append(f"| {a} | " + " | ".join(f"{x:.2f} / {y:.2f}" for x, y in zip(w, c))
                 + f" | {ms(w)} | {ms(c)} |")
lines += ["", "Test WER / CER (%), scales tuned on dev."]
text = "\n".join(lines) + "\n"
(out / f"COMPARE_f{frac}.md").write_text(text)
print(text)
PY
