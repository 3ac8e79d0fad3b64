#!/usr/bin/env bash
# mboshi: read speech of a Bantu language (Godard et al., LREC 2018), 16 kHz, 3 speakers, 3.07 h,
# graphemic transcripts (~4.8k word types). Upstream's train/test split; dev = every 10th training
# utterance; a grapheme lexicon holding every word of the corpus (closed-vocabulary decoding, the
# LM estimated on the training text only: see RESULTS.md). Then the shared distillation stages.
#
# --split speaker trains on two speakers and splits the third (kouarata) into dev and test, under
# data_spk/ and exp_spk/ (unless --data / --exp say otherwise), so both splits can live side by side.
#
# Usage: ./run.sh [--src DIR] [--lexicon FILE] [--split upstream|speaker] [options of ../common/kd.sh]
#   e.g. ./run.sh --speed-perturb ""; ./run.sh --lm my.arpa --stage 1; ./run.sh --split speaker
# Stage 0 prepares data/{train,dev,test}; stages 1-10 are ../common/kd.sh's.

cd "$(dirname "$0")"
set -euo pipefail
. ../common/options.sh
opt src ../../../shared/corpora/mboshi "the staged corpus (audio/, transcripts.txt, split.txt) or a clone of upstream's repository (full_corpus_newsplit/)"
opt lexicon "" "a user lexicon instead of the grapheme one"
opt split upstream "upstream (upstream's train/test, dev from train) | speaker (two speakers train, the third is dev + test)"
recipe_options "$@"
case "$split" in
  upstream) ;;
  speaker)   # its own data and exp dirs, unless given
    case " ${opts_rest[*]} " in *" --data "*) ;; *) data=data_spk; kd_args+=(--data "$data") ;; esac
    case " ${opts_rest[*]} " in *" --exp "*) ;; *) exp=exp_spk; kd_args+=(--exp "$exp") ;; esac ;;
  *) echo "$0: --split is upstream or speaker, not '$split'" >&2; exit 1 ;;
esac

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%F %T') Stage 0: prepare Mboshi from $src"
  lex_opt=(); [ -n "$lexicon" ] && lex_opt=(--lexicon "$lexicon")
  acoustic-kd prepare mboshi --src "$src" --out "$data" --split "$split" "${lex_opt[@]}"
fi
../common/kd.sh --recipe-title "mboshi (training seed $train_seed)" "${kd_args[@]}"
