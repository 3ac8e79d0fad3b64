#!/usr/bin/env bash
# Repeat the key comparison -- distilled student vs its hard-target control -- over several seeds,
# reusing the recipe's ensemble, soft targets and graph (stages 4, 5, 8 must have run), and print
# mean ± std of test frame accuracy and WER, plus the kept share of the ensemble's gain.
# Run from a recipe dir:  ../common/student_seeds.sh [--seeds "1001 1002 1003"] [--config ...]
# Another distillation recipe on the same members, e.g. the naive one (T = 2):
#   ../common/student_seeds.sh --name seeds_naive --kd-opts "--T 2"
#
# Another training set for both students (e.g. with speed-perturbed copies; the soft targets must
# cover it): --train-data DIR --train-ali DIR --soft DIR.
#
# Writes exp/<name>/s<seed>/{student_kd,student_hard}, exp/decode/<name>/<system>_s<seed>_test and
# exp/<name>/SEEDS.md (name: seeds). kd_opts are extra `acoustic-kd distill` options of the distilled
# student only (its control stays the plain α = 1 run).

seeds="1001 1002 1003"; config=conf/default.yaml; student_config=conf/student.yaml
data=data; exp=exp; name=seeds; kd_opts=""; train_data=""; train_ali=""; soft=""
for c in conf/*.yaml; do case "$c" in *student*.yaml) ;; *) config=$c ;; esac; done
. ../common/parse_options.sh "$@"
set -euo pipefail

: "${train_data:=$data/train}" "${train_ali:=$exp/tri/ali_train}" "${soft:=$exp/ensemble/soft}"
ali_args="--train-data $train_data --train-ali $train_ali --dev-data $data/dev --dev-ali $exp/tri/ali_dev"
for seed in $seeds; do
  for sys in student_kd student_hard; do
    out="$exp/$name/s$seed/$sys"
    if [ $sys = student_kd ]; then teacher="--soft $soft $kd_opts"; else teacher="--alpha 1"; fi
    acoustic-kd distill $teacher $ali_args --student-config "$student_config" --seed "$seed" --out "$out"
    acoustic-kd decode --graph "$exp/tri/graph" --data "$data/test" --model "$out/final.pt" \
      --config "$config" --ali "$exp/tri/ali_test" --out "$exp/decode/$name/${sys}_s${seed}_test" \
      --tune-on-dev "$data/dev"
  done
done

python3 - "$exp" "$name" "$kd_opts" $seeds <<'PY'
import json, statistics as st, sys
from pathlib import Path
from acoustic_kd.decode.score import read_wer_file
exp, name, kd_opts, seeds = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
def val(d):
    acc = float((d / "frame_acc").read_text())
    return acc, read_wer_file(d / "wer").rate
ens = val(exp / "decode" / "ensemble_test")
rows, kept = {}, []
for s in seeds:
    kd = val(exp / "decode" / name / f"student_kd_s{s}_test")
    hard = val(exp / "decode" / name / f"student_hard_s{s}_test")
    rows.setdefault("distilled student", []).append(kd)
    rows.setdefault("baseline (hard targets)", []).append(hard)
    kept.append((kd[0] - hard[0]) / (ens[0] - hard[0]) if ens[0] != hard[0] else float("nan"))
def ms(xs):
    return f"{st.mean(xs):.2f} ± {st.stdev(xs) if len(xs) > 1 else 0:.2f}"
secs = {sys_: [json.loads((exp / name / f"s{s}" / sys_ / "distill.json").read_text())["seconds"]
               for s in seeds] for sys_ in ("student_kd", "student_hard")}
opts = f" (distilled with extra options `{kd_opts}`)" if kd_opts else ""
lines = [f"Seeds {' '.join(seeds)} (students; ensemble fixed){opts}: test set, mean ± std", "",
         "| system | frame acc test % | WER test % |", "|---|---|---|"]
for system, v in rows.items():
    lines.append(f"| {system} | {ms([a for a, _ in v])} | {ms([w for _, w in v])} |")
lines.append(f"| ensemble (one run) | {ens[0]:.2f} | {ens[1]:.2f} |")
lines += ["", f"kept share of the ensemble's frame-accuracy gain, (kd − hard)/(ensemble − hard): {ms(kept)}",
          f"training wall time per student (s): distilled {ms(secs['student_kd'])}, "
          f"hard control {ms(secs['student_hard'])}"]
text = "\n".join(lines) + "\n"
(exp / name).mkdir(exist_ok=True)
(exp / name / "SEEDS.md").write_text(text)
print(text)
PY
