#!/usr/bin/env bash
# librispeech: read English audiobooks, 16 kHz FLAC (CC BY 4.0; Panayotov et al., ICASSP 2015).
# Default: mini_librispeech (OpenSLR SLR31: train-clean-5 ~5 h, dev-clean-2 ~2 h); test is carved
# from dev by speaker (every second dev speaker) unless --test-sets is given. Full LibriSpeech
# (SLR12) works the same, e.g. --train-sets train-clean-100 --dev-sets dev-clean --test-sets test-clean.
# Then the shared distillation stages.
#
# Usage: ./run.sh --src DIR [--train-sets "S ..."] [--dev-sets "S ..."] [--test-sets "S ..."]
#                 [options of ../common/kd.sh]
#   stage -1 (only when asked: --stage -1) downloads and unpacks the missing sets into --src;
#   stage 0 prepares data/{train,dev,test}; stages 1-10 are ../common/kd.sh's. Without --lm, G is
#   a trigram estimated from the training transcripts (Witten-Bell, by the lang stage).

cd "$(dirname "$0")"
set -euo pipefail
. ../common/options.sh
opt src "" "the directory holding the set folders (or LibriSpeech/ as unpacked); needed by stages -1 and 0"
opt train_sets train-clean-5 "training sets (space- or comma-separated)"
opt dev_sets dev-clean-2 "dev sets"
opt test_sets "" "test sets; default: carved from the dev sets by speaker"
recipe_options "$@"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge -1 ]; then
  [ -n "$src" ] || { echo "$0: --src DIR is required (see --help)" >&2; exit 1; }
fi

# Stage -1 runs only with --stage -1: mini_librispeech sets from openslr.org/resources/31,
# LibriSpeech sets from openslr.org/resources/12; sets already unpacked in --src are skipped.
if [ "$stage" -le -1 ] && [ "$stop_stage" -ge -1 ]; then
  mkdir -p "$src"
  for set in ${train_sets//,/ } ${dev_sets//,/ } ${test_sets//,/ }; do
    if [ -d "$src/$set" ] || [ -d "$src/LibriSpeech/$set" ]; then
      echo "$(date '+%F %T') Stage -1: $set already in $src"; continue
    fi
    case "$set" in
      train-clean-5|dev-clean-2) url=https://www.openslr.org/resources/31/$set.tar.gz ;;
      *) url=https://www.openslr.org/resources/12/$set.tar.gz ;;
    esac
    echo "$(date '+%F %T') Stage -1: download $url into $src"
    if command -v wget >/dev/null; then wget -c -O "$src/$set.tar.gz" "$url"
    else curl -fL -C - -o "$src/$set.tar.gz" "$url"; fi
    tar -xzf "$src/$set.tar.gz" -C "$src" && rm "$src/$set.tar.gz"
  done
fi

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%F %T') Stage 0: prepare LibriSpeech from $src:" \
    "train $train_sets, dev $dev_sets, test ${test_sets:-carved from dev}"
  test_opt=(); [ -n "$test_sets" ] && test_opt=(--opt "test_sets=$test_sets")
  acoustic-kd prepare librispeech --src "$src" --out "$data" \
    --opt "train_sets=$train_sets" --opt "dev_sets=$dev_sets" "${test_opt[@]}"
fi
../common/kd.sh --recipe-title "librispeech $train_sets (training seed $train_seed)" "${kd_args[@]}"
