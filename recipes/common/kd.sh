#!/usr/bin/env bash
# Shared stages of every acoustic_kd recipe (ESPnet-TEMPLATE style). A corpus recipe's run.sh sets
# its corpus variables, prepares data/{train,dev,test} + data/local/lexicon.txt (stage 0), then
# sources this file. Every stage is one `acoustic-kd <command>` call per model or data set; each
# command skips work whose config, inputs and code are unchanged since it was done and redoes work
# where one of them changed (acoustic_kd/stage.py), so re-running a killed recipe simply resumes
# and re-running after an edit redoes what the edit affects.
#
#   1 lang        data/lang: phones, lexicon, HMM topology, G.arpa
#   2 features    data/<set>/feats.scp, cmvn.scp (per speaker), utt2num_frames
#   3 align       exp/mono, exp/tri [, exp/tri2] (GMM-HMM) + exp/$gmm_stage/ali_{train,dev,test}
#   4 ensemble    exp/members/m1..mK on hard targets (different seeds) + evaluation
#   5 soft        exp/ensemble/soft: top-k soft targets at temperature T (cached teacher)
#   6 distill     exp/student_kd: student trained on the ensemble's soft targets
#   7 baseline    exp/student_hard: the same student on hard targets only (the control)
#   8 decode      exp/$gmm_stage/graph + exp/decode/<system>_{dev,test}: WER and frame accuracy
#   9 export      exp/export: TorchScript / ONNX / int8; transcribe the test set with int8
#  10 report      exp/RESULTS.md + exp/plots/*.png; the table is printed
#
# Variables a run.sh may set before sourcing (defaults below):
#   stage stop_stage nj config student_config num_members distill_mode members_nj train_seed lm
#   gmm_stage tune_dev_every
#   speed_perturb
#
# speed_perturb="0.9 1.1" trains the distilled student and its control on the training set plus
# speed-perturbed copies of it (data/train_all; the members never see the copies), so the soft
# targets cover speech the members have not memorised (recipes/*/RESULTS.md: the kept share of the
# ensemble's gain rose from 0.19-0.53 to 0.86-1.07). Stage 2 makes the copies and their features,
# stage 3 aligns them with the finished GMM, stage 5 stores soft targets for all of them.

set -euo pipefail

: "${stage:=1}" "${stop_stage:=10}" "${nj:=2}" "${members_nj:=1}" "${num_members:=5}"
: "${config:=conf/default.yaml}" "${student_config:=conf/student.yaml}"
: "${distill_mode:=cached}"      # cached (stage 5 stores soft targets) | online (teacher runs on each batch)
: "${data:=data}" "${exp:=exp}" "${train_seed:=1}" "${lm:=}"   # lm: an ARPA file to use as G
: "${gmm_stage:=tri}"   # the GMM stage whose alignments and HMM the networks use: tri | tri2 (LDA+MLLT)
: "${tune_dev_every:=1}"  # decode scales are tuned on every N-th dev utterance (data/dev_tune if N > 1)
if [ "$tune_dev_every" -gt 1 ]; then tune_dev=$data/dev_tune; else tune_dev=$data/dev; fi

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*"; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

sets="train dev test"
members=$(for i in $(seq 1 "$num_members"); do echo "$exp/members/m$i/final.pt"; done)
: "${speed_perturb:=}"
if [ -n "$speed_perturb" ]; then
  student_data=$data/train_all; soft_dir=$exp/ensemble/soft_all; align_extra="$data/train_all"
else
  student_data=$data/train; soft_dir=$exp/ensemble/soft; align_extra=""
fi

if run_stage 1; then
  log "Stage 1: lang"
  lm_opt=(); [ -n "$lm" ] && lm_opt=(--arpa "$lm")
  acoustic-kd lang --data "$data/train" --lexicon "$data/local/lexicon.txt" --out "$data/lang" \
    --config "$config" "${lm_opt[@]}"
fi

if run_stage 2; then
  log "Stage 2: features"
  for s in $sets; do
    acoustic-kd features --data "$data/$s" --config "$config" --nj "$nj"
  done
  if [ -n "$speed_perturb" ]; then
    if [ ! -s "$data/train_all/feats.scp" ]; then
      log "Stage 2: speed-perturbed copies of the training set for the students ($speed_perturb)"
      sr=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["sample_rate"])' "$data/train/fbank.json")
      copies=()
      for f in $speed_perturb; do
        acoustic-kd data-dir speed-perturb "$data/train" "$data/train_sp$f" --factor "$f" --sample-rate "$sr"
        copies+=("$data/train_sp$f")
      done
      acoustic-kd data-dir combine "$data/train_all" "$data/train" "${copies[@]}"
    fi
    acoustic-kd features --data "$data/train_all" --config "$config" --nj "$nj"
  fi
  if [ "$tune_dev" != "$data/dev" ]; then   # (its features are the dev set's: redone with them)
    awk -v n="$tune_dev_every" 'NR % n == 1 {print $1}' "$data/dev/text" > "$data/dev_tune.list"
    acoustic-kd data-dir subset "$data/dev" "$tune_dev" --utt-list "$data/dev_tune.list"
  fi
fi

if run_stage 3; then
  log "Stage 3: GMM-HMM alignment (monophone -> triphone)"
  acoustic-kd align --data "$data/train" --lang "$data/lang" --exp "$exp" --config "$config" --through "$gmm_stage" \
    --align-sets "$data/dev" "$data/test" $align_extra
fi

# Students get their own seed (not one of the members'), shared by the distilled student and its
# control so that the only difference between the two is the loss.
student_seed=$((train_seed + 1000))
ali_args="--train-data $data/train --train-ali $exp/$gmm_stage/ali_train --dev-data $data/dev --dev-ali $exp/$gmm_stage/ali_dev"
student_ali_args="--train-data $student_data --train-ali $exp/$gmm_stage/ali_${student_data##*/} --dev-data $data/dev --dev-ali $exp/$gmm_stage/ali_dev"

if run_stage 4; then
  log "Stage 4: ensemble of $num_members members"
  acoustic-kd ensemble --num-members "$num_members" --nj "$members_nj" --out "$exp/members" \
    --config "$config" $ali_args --test-data "$data/test" --test-ali "$exp/$gmm_stage/ali_test" \
    --seed "$train_seed"
fi

if run_stage 5 && [ "$distill_mode" = cached ]; then
  log "Stage 5: soft targets"
  acoustic-kd soft-targets --members $members --data "$student_data" --out "$soft_dir" \
    --config "$student_config"
fi

if run_stage 6; then
  log "Stage 6: distill student ($distill_mode teacher)"
  if [ "$distill_mode" = cached ]; then teacher="--soft $soft_dir"; else teacher="--online --members $members"; fi
  acoustic-kd distill $teacher $student_ali_args --test-data "$data/test" --test-ali "$exp/$gmm_stage/ali_test" \
    --student-config "$student_config" --seed "$student_seed" --out "$exp/student_kd"
fi

if run_stage 7; then
  log "Stage 7: hard-target control (same student, same budget, alpha=1)"
  acoustic-kd distill --alpha 1 $student_ali_args --test-data "$data/test" --test-ali "$exp/$gmm_stage/ali_test" \
    --student-config "$student_config" --seed "$student_seed" --out "$exp/student_hard"
fi

if run_stage 8; then
  log "Stage 8: graph, decoding and scoring"
  acoustic-kd mkgraph --lang "$data/lang" --model "$exp/$gmm_stage/final.hmm.json" --out "$exp/$gmm_stage/graph" \
    --config "$config"
  decode() {  # decode <system name> <checkpoint>...
    local name=$1; shift
    local models=""; for m in "$@"; do models="$models --model $m"; done
    # acoustic scale and word penalty are tuned on dev, then applied to test (never tuned on test)
    acoustic-kd decode --graph "$exp/$gmm_stage/graph" --data "$data/test" $models --config "$config" \
      --ali "$exp/$gmm_stage/ali_test" --out "$exp/decode/${name}_test" --tune-on-dev "$tune_dev"
    acoustic-kd decode --graph "$exp/$gmm_stage/graph" --data "$data/dev" $models --config "$config" \
      --ali "$exp/$gmm_stage/ali_dev" --out "$exp/decode/${name}_dev" --tuned "$exp/decode/${name}_test/tune.json"
  }
  decode student_hard "$exp/student_hard/final.pt"
  for i in $(seq 1 "$num_members"); do decode "m$i" "$exp/members/m$i/final.pt"; done
  decode ensemble $members
  decode student_kd "$exp/student_kd/final.pt"
fi

if run_stage 9; then
  log "Stage 9: export the distilled student; transcribe the test set with the int8 model"
  acoustic-kd export --checkpoint "$exp/student_kd/final.pt" --graph "$exp/$gmm_stage/graph" \
    --data "$data/train" --out "$exp/export" --acwt "$exp/decode/student_kd_test/tune.json"
  mkdir -p "$exp/decode/export_int8_test"
  acoustic-kd transcribe --model "$exp/export" --format int8 --data "$data/test" \
    > "$exp/decode/export_int8_test/hyp.txt"
  acoustic-kd score --ref "$data/test/text" --hyp "$exp/decode/export_int8_test/hyp.txt" \
    --out "$exp/decode/export_int8_test"
fi

if run_stage 10; then
  log "Stage 10: report"
  acoustic-kd report --exp "$exp" --num-members "$num_members" --title "${recipe_title:-acoustic_kd results}"
fi
