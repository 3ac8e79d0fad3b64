#!/usr/bin/env bash
# mboshi: read speech of a Bantu language (Godard et al., LREC 2018), 16 kHz, 3 speakers, 3.07 h,
# graphemic transcripts (~4.8k word types). Upstream's train/test split; dev = every 10th training
# utterance; a grapheme lexicon holding every word of the corpus (closed-vocabulary decoding, the
# LM estimated on the training text only: see RESULTS.md). Then the shared distillation stages.
#
# Usage: ./run.sh [--src DIR] [--lexicon FILE] [--lm ARPA] [--stage N] [--stop-stage M] [--nj J]
#                 [--config conf/mboshi.yaml] [--train-seed S] [--speed-perturb "0.9 1.1"]
#   --src: the staged corpus (audio/, transcripts.txt, split.txt) or a clone of upstream's
#          repository (full_corpus_newsplit/); default ../../../shared/corpora/mboshi
#   --lexicon: a user lexicon instead of the grapheme one; --lm: an ARPA LM instead of the estimated one
#   stage 0 prepares data/{train,dev,test}; stages 1-10 are recipes/common/kd.sh's.

cd "$(dirname "$0")"
stage=0; stop_stage=10; nj=2; members_nj=2; num_members=5; train_seed=1
src=../../../shared/corpora/mboshi; lexicon=; lm=
config=conf/mboshi.yaml; student_config=conf/student.yaml; distill_mode=cached
data=data; exp=exp; speed_perturb=""; gmm_stage=tri2   # LDA+MLLT alignments (RESULTS.md)
tune_dev_every=3   # decode scales tuned on 100 of the 298 dev utterances (data/dev_tune)
. ../common/parse_options.sh "$@"
set -euo pipefail
recipe_title="mboshi (training seed $train_seed)"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%F %T') Stage 0: prepare Mboshi from $src"
  lex_opt=(); [ -n "$lexicon" ] && lex_opt=(--lexicon "$lexicon")
  acoustic-kd prepare mboshi --src "$src" --out "$data" "${lex_opt[@]}"
fi
stage=$(( stage > 1 ? stage : 1 ))
. ../common/kd.sh
