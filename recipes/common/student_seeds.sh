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
python3 - "$exp" "$name" "$kd_opts $common_opts" "$recipe_seed" "$ensemble" "$tune_once" "$recipe_control" $seeds <<'PY'
import json, statistics as st, sys
from pathlib import Path
from acoustic_kd.decode.score import read_wer_file
exp, name, opts, recipe_seed, ens_name, tune_once, recipe_control, seeds = (
    Path(sys.argv[1]), sys.argv[2], sys.argv[3].strip(), sys.argv[4], sys.argv[5],
    sys.argv[6] == "true", sys.argv[7], sys.argv[8:])
def val(d):
    return (float((d / "frame_acc").read_text()), read_wer_file(d / "wer").rate,
            read_wer_file(d / "cer").rate)
def where(sys_, s):
    if s == recipe_seed:
        r = recipe_control if sys_ == "control" else sys_
        return exp / r, exp / "decode" / f"{r}_test"
    return exp / name / f"s{s}" / sys_, exp / "decode" / name / f"{sys_}_s{s}_test"
ens = val(exp / "decode" / f"{ens_name}_test")
rows, kept, kept_wer = {}, [], []
for s in seeds:
    kd, hard = val(where("student_kd", s)[1]), val(where("control", s)[1])
    rows.setdefault("distilled student", []).append(kd)
    rows.setdefault("hard-target control", []).append(hard)
    kept.append((kd[0] - hard[0]) / (ens[0] - hard[0]) if ens[0] != hard[0] else float("nan"))
    kept_wer.append((hard[1] - kd[1]) / (hard[1] - ens[1]) if ens[1] != hard[1] else float("nan"))
def ms(xs):
    return f"{st.mean(xs):.2f} ± {st.stdev(xs) if len(xs) > 1 else 0:.2f}"
secs = {sys_: [json.loads((where(sys_, s)[0] / "distill.json").read_text())["seconds"]
               for s in seeds] for sys_ in ("student_kd", "control")}
extra = f" (extra options `{opts}`)" if opts else ""
lines = [f"Seeds {' '.join(seeds)} (students; ensemble fixed){extra}: test set, mean ± std", "",
         "| system | frame acc test % | WER test % | CER test % |", "|---|---|---|---|"]
for system, v in rows.items():
    lines.append(f"| {system} | {ms([a for a, _, _ in v])} | {ms([w for _, w, _ in v])} | "
                 f"{ms([c for _, _, c in v])} |")
lines.append(f"| ensemble (one run) | {ens[0]:.2f} | {ens[1]:.2f} | {ens[2]:.2f} |")
lines += ["", "kept share of the ensemble's gain over the control, per seed "
          f"({' '.join(seeds)}): frame accuracy (kd − hard)/(ensemble − hard) "
          f"{' '.join(f'{k:.2f}' for k in kept)} → {ms(kept)}; WER (hard − kd)/(hard − ensemble) "
          f"{' '.join(f'{k:.2f}' for k in kept_wer)} → {ms(kept_wer)}",
          f"training wall time per student (s): distilled {ms(secs['student_kd'])}, "
          f"hard control {ms(secs['control'])}"]
if tune_once and len(seeds) > 1:
    lines.append(f"decode scales tuned on dev for seed {seeds[0]} and reused for the other seeds")
text = "\n".join(lines) + "\n"
(exp / name).mkdir(parents=True, exist_ok=True)
(exp / name / "SEEDS.md").write_text(text)
print(text)
PY
