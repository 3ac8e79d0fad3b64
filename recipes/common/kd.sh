#!/usr/bin/env bash
# The shared stages 1-10 of every acoustic_kd recipe. Run it from a recipe directory (its conf/ and
# the --data / --exp paths are relative to it), normally from that recipe's run.sh, once its stage 0
# has prepared data/{train,dev,test} and data/local/lexicon.txt:
#   ../common/kd.sh [--name value ...]
# Every stage is one or more `acoustic-kd <command>` calls; each command skips work whose config,
# inputs and code are unchanged since it was done and redoes work where one of them changed
# (acoustic_kd/stage.py), so re-running a killed recipe resumes and re-running after an edit redoes
# what the edit affects.
#
#   1 lang        data/lang: phones, lexicon, HMM topology, G.arpa
#   2 features    data/<set>/feats.scp, cmvn.scp (per speaker), utt2num_frames
#   3 align       exp/mono, exp/tri [, exp/tri2] (GMM-HMM passes) + exp/<gmm-pass>/ali_{train,dev,test}
#   4 ensemble    exp/members/m1..mK on hard targets (different seeds) + evaluation
#   5 soft        exp/ensemble/soft: top-k soft targets at temperature T (cached teacher)
#   6 distill     exp/student_kd: student trained on the ensemble's soft targets
#   7 control     exp/control: the same student on hard targets only (alpha = 1)
#   8 decode      exp/<gmm-pass>/graph + exp/decode/<system>_{dev,test}: WER and frame accuracy
#                 (the systems: the GMM pass itself, gmm_<gmm-pass>, the floor the networks must
#                 clear, then the control, members, ensemble and distilled student)
#   9 export      exp/export: TorchScript / ONNX / int8; transcribe the test set with int8
#  10 report      exp/RESULTS.md + exp/plots/*.png; the table is printed
#
# --speed-perturb "0.9 1.1" (the default; "" turns it off) trains the distilled student and its
# control on the training set plus speed-perturbed copies of it (data/train_all; the members never see the copies), so the soft
# targets cover speech the members have not memorised (recipes/*/RESULTS.md: the kept share of the
# ensemble's gain rose from 0.19-0.53 to 0.86-1.07). Stage 2 makes the copies and their features,
# stage 3 aligns them with the finished GMM, stage 5 stores soft targets for all of them.
#
# The --<stage>-args options pass more options to one stage's acoustic-kd call(s): the string is
# split at whitespace (no quoting) and appended, so it overrides what kd.sh passes, e.g.
#   --ensemble-args "--data-order fixed" --decode-args "--lattice"
# `../common/kd.sh --print-options [options]` (as the first argument) prints every option's value
# as a shell assignment and exits: a recipe's run.sh checks its options this way before stage 0.

set -euo pipefail
. "$(dirname "$0")/options.sh"

recipe_config() {  # the recipe's own config: its one conf/*.yaml not named *student* / *compare*
  local c found=()
  for c in conf/*.yaml; do
    case "${c##*/}" in *student*|*compare*) ;; *) [ -e "$c" ] && found+=("$c") ;; esac
  done
  [ "${#found[@]}" -eq 1 ] || return 1
  echo "${found[0]}"
}

opt stage 0 "first stage to run (0 is the recipe's data preparation, done by its run.sh)"
opt stop_stage 10 "last stage to run"
opt nj 2 "parallel jobs of stages 2 (features), 3 (GMM alignment: parts of whole speakers), 5 (soft targets: parts of the store's shards) and 8 (decoding and lattice searches), and of a recipe's stage 0"
opt members_nj 2 "ensemble members trained at the same time (stage 4)"
opt num_members 5 "ensemble size K"
opt config "" "the recipe's config (stages 1-4, 8); default: its one conf/*.yaml not named *student* / *compare* (here: $(recipe_config || echo 'none: give --config'))"
opt student_config conf/student.yaml "the student's config (stages 5-7)"
opt distill_mode cached "cached (stage 5 stores soft targets) | online (the teacher runs on each batch)"
opt data data "the data directory stage 0 wrote"
opt exp exp "the experiment directory"
opt train_seed 1 "seed of the first member (stage 4); the students' seed is this + 1000"
opt lm "" "an ARPA file to use as G (its words must be in the lexicon); default: estimated by stage 1"
opt gmm_pass auto "the GMM pass whose alignments, tree and HMM the networks use: tri | tri2 (LDA+MLLT) | tri3 (SAT) | auto (the corpus plan, acoustic-kd plan: tri2 from 1 h of training speech); --gmm-stage is its older name"
opt_alias gmm_stage gmm_pass
opt tune_dev_every auto "decode scales are tuned on every N-th dev utterance (data/dev_tune if N > 1); auto: the corpus plan, about 500 dev words"
opt speed_perturb "0.9 1.1" "speed factors: the students train on the training set + copies at these speeds (\"\" = the training set only)"
opt recipe_title "acoustic_kd results" "the title of exp/RESULTS.md (stage 10)"
opt lang_args "" "more options of stage 1's acoustic-kd lang"
opt features_args "" "more options of stage 2's acoustic-kd features (every data set)"
opt align_args "" "more options of stage 3's acoustic-kd align"
opt ensemble_args "" "more options of stage 4's acoustic-kd ensemble"
opt soft_args "" "more options of stage 5's acoustic-kd soft-targets"
opt distill_args "" "more options of stage 6's acoustic-kd distill (the distilled student)"
opt control_args "" "more options of stage 7's acoustic-kd distill (the hard-target control)"
opt mkgraph_args "" "more options of stage 8's acoustic-kd mkgraph"
opt decode_args "" "more options of stage 8's acoustic-kd decode (every system, dev and test)"
opt export_args "" "more options of stage 9's acoustic-kd export"
opt report_args "" "more options of stage 10's acoustic-kd report"

usage() {
  opts_header "$0"
  echo "Options (--name value or --name=value):"
  opts_usage
}

print_options=false
if [ "${1:-}" = --print-options ]; then print_options=true; shift; fi
opts_parse "$@"

die() { echo "$0: $* (see $0 --help)" >&2; exit 1; }
for n in stage stop_stage train_seed; do
  [[ ${!n} =~ ^-?[0-9]+$ ]] || die "--${n//_/-} must be an integer, not '${!n}'"
done
for n in nj members_nj num_members tune_dev_every; do
  [ "$n" = tune_dev_every ] && [ "${!n}" = auto ] && continue
  [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "--${n//_/-} must be a positive integer, not '${!n}'"
done
case "$gmm_pass" in tri|tri2|tri3|auto) ;; *) die "--gmm-pass is tri, tri2, tri3 or auto, not '$gmm_pass'" ;; esac
case "$distill_mode" in cached|online) ;; *) die "--distill-mode is cached or online, not '$distill_mode'" ;; esac
if [ -z "$config" ]; then
  config=$(recipe_config) || die "no --config given and $PWD/conf does not hold exactly one recipe config (conf/*.yaml not named *student* or *compare*)"
fi

if [ "$print_options" = true ]; then
  for n in "${_opts_names[@]}"; do printf '%s=%q\n' "$n" "${!n}"; done
  exit 0
fi

for s in lang features align ensemble soft distill control mkgraph decode export report; do
  v=${s}_args; read -r -a "extra_$s" <<< "${!v}"
done

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*"; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 2 ] && \
   { [ "$gmm_pass" = auto ] || [ "$tune_dev_every" = auto ]; }; then   # (stages 2-9 use them)
  planned=$(acoustic-kd plan --data "$data/train" --dev "$data/dev" --get gmm_stage tune_dev_every)
  { read -r p_gmm; read -r p_tune; } <<< "$planned"
  [ "$gmm_pass" = auto ] && gmm_pass=$p_gmm && log "--gmm-pass auto: $p_gmm (acoustic-kd plan)"
  [ "$tune_dev_every" = auto ] && tune_dev_every=$p_tune && \
    log "--tune-dev-every auto: $p_tune (acoustic-kd plan: about 500 dev words)"
fi

if [ "$tune_dev_every" != auto ] && [ "$tune_dev_every" -gt 1 ]; then tune_dev=$data/dev_tune; else tune_dev=$data/dev; fi
sets=(train dev test)
members=(); for i in $(seq 1 "$num_members"); do members+=("$exp/members/m$i/final.pt"); done
read -r -a speed_factors <<< "$speed_perturb"
if [ "${#speed_factors[@]}" -gt 0 ]; then
  student_data=$data/train_all; soft_dir=$exp/ensemble/soft_all; align_more=("$data/train_all")
else
  student_data=$data/train; soft_dir=$exp/ensemble/soft; align_more=()
fi
g=$exp/$gmm_pass
# the control's dir and decode name: exp/control (exp/student_hard in an experiment made before the rename)
control=control; [ -d "$exp/student_hard" ] && [ ! -d "$exp/control" ] && control=student_hard

if run_stage 1; then
  log "Stage 1: lang"
  cmd=(acoustic-kd lang --data "$data/train" --lexicon "$data/local/lexicon.txt" --out "$data/lang"
       --config "$config")
  [ -n "$lm" ] && cmd+=(--arpa "$lm")
  "${cmd[@]}" "${extra_lang[@]}"
fi

if run_stage 2; then
  log "Stage 2: features"
  for s in "${sets[@]}"; do
    acoustic-kd features --data "$data/$s" --config "$config" --nj "$nj" "${extra_features[@]}"
  done
  if [ "${#speed_factors[@]}" -gt 0 ]; then
    if [ ! -s "$data/train_all/feats.scp" ]; then
      log "Stage 2: speed-perturbed copies of the training set for the students ($speed_perturb)"
      copies=()
      for f in "${speed_factors[@]}"; do   # (at the sample rate of the training set's features)
        acoustic-kd data-dir speed-perturb "$data/train" "$data/train_sp$f" --factor "$f"
        copies+=("$data/train_sp$f")
      done
      acoustic-kd data-dir combine "$data/train_all" "$data/train" "${copies[@]}"
    fi
    acoustic-kd features --data "$data/train_all" --config "$config" --nj "$nj" "${extra_features[@]}"
  fi
  if [ "$tune_dev" != "$data/dev" ]; then   # (its features are the dev set's: redone with them)
    awk -v n="$tune_dev_every" 'NR % n == 1 {print $1}' "$data/dev/text" > "$data/dev_tune.list"
    acoustic-kd data-dir subset "$data/dev" "$tune_dev" --utt-list "$data/dev_tune.list"
  fi
fi

if run_stage 3; then
  log "Stage 3: GMM-HMM alignment (monophone -> triphone)"
  acoustic-kd align --data "$data/train" --lang "$data/lang" --exp "$exp" --config "$config" \
    --nj "$nj" --through "$gmm_pass" --align-sets "$data/dev" "$data/test" "${align_more[@]}" "${extra_align[@]}"
fi

# Students get their own seed (not one of the members'), shared by the distilled student and its
# control so that the only difference between the two is the loss.
student_seed=$((train_seed + 1000))
test_args=(--test-data "$data/test" --test-ali "$g/ali_test")
student_args=(--train-data "$student_data" --train-ali "$g/ali_${student_data##*/}"
              --dev-data "$data/dev" --dev-ali "$g/ali_dev" "${test_args[@]}"
              --student-config "$student_config" --seed "$student_seed")

if run_stage 4; then
  log "Stage 4: ensemble of $num_members members"
  acoustic-kd ensemble --num-members "$num_members" --nj "$members_nj" --out "$exp/members" \
    --config "$config" --train-data "$data/train" --train-ali "$g/ali_train" \
    --dev-data "$data/dev" --dev-ali "$g/ali_dev" "${test_args[@]}" --seed "$train_seed" \
    "${extra_ensemble[@]}"
fi

if run_stage 5 && [ "$distill_mode" = cached ]; then
  log "Stage 5: soft targets"
  acoustic-kd soft-targets --members "${members[@]}" --data "$student_data" --out "$soft_dir" \
    --config "$student_config" --nj "$nj" "${extra_soft[@]}"
fi

if run_stage 6; then
  log "Stage 6: distill student ($distill_mode teacher)"
  if [ "$distill_mode" = cached ]; then teacher=(--soft "$soft_dir"); else teacher=(--online --members "${members[@]}"); fi
  acoustic-kd distill "${teacher[@]}" "${student_args[@]}" --out "$exp/student_kd" "${extra_distill[@]}"
fi

if run_stage 7; then
  log "Stage 7: hard-target control (same student, same budget, alpha=1)"
  # (--members: no teacher at alpha 1, but its features are normalised as the members', as the
  # distilled student's are)
  acoustic-kd distill --alpha 1 --members "${members[@]}" "${student_args[@]}" --out "$exp/$control" \
    "${extra_control[@]}"
fi

if run_stage 8; then
  log "Stage 8: graph, decoding and scoring"
  acoustic-kd mkgraph --lang "$data/lang" --model "$g/final.hmm.json" --out "$g/graph" \
    --config "$config" "${extra_mkgraph[@]}"
  decode() {  # decode <system name> <acoustic-kd decode options naming the model(s)>...
    local name=$1; shift
    # acoustic scale and word penalty are tuned on dev, then applied to test (never tuned on test)
    acoustic-kd decode --graph "$g/graph" --data "$data/test" "$@" --config "$config" \
      --ali "$g/ali_test" --out "$exp/decode/${name}_test" --tune-on-dev "$tune_dev" --nj "$nj" \
      "${extra_decode[@]}"
    acoustic-kd decode --graph "$g/graph" --data "$data/dev" "$@" --config "$config" \
      --ali "$g/ali_dev" --out "$exp/decode/${name}_dev" --tuned "$exp/decode/${name}_test/tune.json" \
      --nj "$nj" "${extra_decode[@]}"
  }
  decode "gmm_$gmm_pass" --gmm "$g"
  decode "$control" --model "$exp/$control/final.pt"
  for i in $(seq 1 "$num_members"); do decode "m$i" --model "$exp/members/m$i/final.pt"; done
  ensemble=(); for m in "${members[@]}"; do ensemble+=(--model "$m"); done
  decode ensemble "${ensemble[@]}"
  decode student_kd --model "$exp/student_kd/final.pt"
fi

if run_stage 9; then
  log "Stage 9: export the distilled student; transcribe the test set with the int8 model"
  acoustic-kd export --checkpoint "$exp/student_kd/final.pt" --graph "$g/graph" \
    --data "$data/train" --out "$exp/export" --acwt "$exp/decode/student_kd_test/tune.json" \
    "${extra_export[@]}"
  mkdir -p "$exp/decode/export_int8_test"
  acoustic-kd transcribe --model "$exp/export" --format int8 --data "$data/test" \
    > "$exp/decode/export_int8_test/hyp.txt"
  acoustic-kd score --ref "$data/test/text" --hyp "$exp/decode/export_int8_test/hyp.txt" \
    --out "$exp/decode/export_int8_test"
fi

if run_stage 10; then
  log "Stage 10: report"
  acoustic-kd report --exp "$exp" --num-members "$num_members" --title "$recipe_title" \
    "${extra_report[@]}"
fi
