#!/usr/bin/env bash
# mboshi: read speech of a Bantu language (Godard et al., LREC 2018), 16 kHz, 3 speakers, 3.07 h,
# graphemic transcripts (~4.8k word types). Upstream's train/test split; dev = every 10th training
# utterance; a grapheme lexicon holding every word of the corpus (closed-vocabulary decoding, the
# LM estimated on the training text only: see RESULTS.md). Then the shared distillation stages.
#
# Usage: ./run.sh [--src DIR] [--lexicon FILE] [options of ../common/kd.sh]
#   e.g. ./run.sh --speed-perturb ""; ./run.sh --lm my.arpa --stage 1
# Stage 0 prepares data/{train,dev,test}; stages 1-10 are ../common/kd.sh's.

cd "$(dirname "$0")"
set -euo pipefail
. ../common/options.sh
opt src ../../../shared/corpora/mboshi "the staged corpus (audio/, transcripts.txt, split.txt) or a clone of upstream's repository (full_corpus_newsplit/)"
opt lexicon "" "a user lexicon instead of the grapheme one"
# LDA+MLLT alignments (RESULTS.md); decode scales tuned on 100 of the 298 dev utterances (data/dev_tune)
kd_settings=(--gmm-pass tri2 --tune-dev-every 3)
recipe_options "$@"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%F %T') Stage 0: prepare Mboshi from $src"
  lex_opt=(); [ -n "$lexicon" ] && lex_opt=(--lexicon "$lexicon")
  acoustic-kd prepare mboshi --src "$src" --out "$data" "${lex_opt[@]}"
fi
../common/kd.sh --recipe-title "mboshi (training seed $train_seed)" "${kd_args[@]}"
