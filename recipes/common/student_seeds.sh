#!/usr/bin/env bash
# Repeat the key comparison -- distilled student vs its hard-target control -- over several seeds,
# reusing the recipe's ensemble, soft targets and graph (stages 4, 5, 8 must have run), and print
# mean ± std of test frame accuracy and WER, plus the kept share of the ensemble's gain.
# Run from a recipe dir:  ../common/student_seeds.sh [--seeds "1001 1002 1003"] [--config ...]
#
# Writes exp/seeds/s<seed>/{student_kd,student_hard}, exp/decode/seeds/<system>_s<seed>_test and
# exp/seeds/SEEDS.md.

seeds="1001 1002 1003"; config=conf/default.yaml; student_config=conf/student.yaml
data=data; exp=exp
for c in conf/*.yaml; do case "$c" in *student.yaml) ;; *) config=$c ;; esac; done
. ../common/parse_options.sh "$@"
set -euo pipefail

ali_args="--train-data $data/train --train-ali $exp/tri/ali_train --dev-data $data/dev --dev-ali $exp/tri/ali_dev"
for seed in $seeds; do
  for sys in student_kd student_hard; do
    out="$exp/seeds/s$seed/$sys"
    if [ $sys = student_kd ]; then teacher="--soft $exp/ensemble/soft"; else teacher="--alpha 1"; fi
    acoustic-kd distill $teacher $ali_args --student-config "$student_config" --seed "$seed" --out "$out"
    acoustic-kd decode --graph "$exp/tri/graph" --data "$data/test" --model "$out/final.pt" \
      --config "$config" --ali "$exp/tri/ali_test" --out "$exp/decode/seeds/${sys}_s${seed}_test" \
      --tune-on-dev "$data/dev"
  done
done

python3 - "$exp" $seeds <<'PY'
import re, statistics as st, sys
from pathlib import Path
exp, seeds = Path(sys.argv[1]), sys.argv[2:]
def val(d):
    acc = float((d / "frame_acc").read_text())
    wer = float(re.search(r"%WER\s+([0-9.]+)", (d / "wer").read_text()).group(1))
    return acc, wer
ens = val(exp / "decode" / "ensemble_test")
rows, kept = {}, []
for s in seeds:
    kd = val(exp / "decode" / "seeds" / f"student_kd_s{s}_test")
    hard = val(exp / "decode" / "seeds" / f"student_hard_s{s}_test")
    rows.setdefault("distilled student", []).append(kd)
    rows.setdefault("baseline (hard targets)", []).append(hard)
    kept.append((kd[0] - hard[0]) / (ens[0] - hard[0]) if ens[0] != hard[0] else float("nan"))
def ms(xs):
    return f"{st.mean(xs):.2f} ± {st.stdev(xs) if len(xs) > 1 else 0:.2f}"
lines = [f"Seeds {' '.join(seeds)} (students; ensemble fixed): test set, mean ± std", "",
         "| system | frame acc test % | WER test % |", "|---|---|---|"]
for name, v in rows.items():
    lines.append(f"| {name} | {ms([a for a, _ in v])} | {ms([w for _, w in v])} |")
lines.append(f"| ensemble (one run) | {ens[0]:.2f} | {ens[1]:.2f} |")
lines += ["", f"kept share of the ensemble's frame-accuracy gain, (kd − hard)/(ensemble − hard): {ms(kept)}"]
text = "\n".join(lines) + "\n"
(exp / "seeds").mkdir(exist_ok=True)
(exp / "seeds" / "SEEDS.md").write_text(text)
print(text)
PY
