#!/usr/bin/env bash
# kaldi_datadir: bring your own corpus. Point it at existing Kaldi data dirs (train/, dev/, test/
# each with wav.scp, text, utt2spk; optional segments) and a lexicon (word phone...; multiple
# pronunciations and stress digits allowed). Relative wav.scp paths resolve against --corpus-root.
# Nothing else is needed: the sample rate is the recordings' own, the sizes (tree, Gaussians,
# epochs, batch, alignment pass, decode-tuning subset) follow the corpus (acoustic-kd plan), the
# rest is the recipe measured on Mboshi (conf/); Mboshi through here gives recipes/mboshi's systems.
#
# Usage: ./run.sh --src DIR --lexicon FILE [--corpus-root DIR] [options of ../common/kd.sh]
#   e.g. ./run.sh --src /corpus/data --lexicon /corpus/lexicon.txt --lm /corpus/lm.arpa
# Stage 0 validates and copies the data dirs into data/; stages 1-10 are ../common/kd.sh's.

cd "$(dirname "$0")"
set -euo pipefail
. ../common/options.sh
opt src "" "the directory holding the Kaldi data dirs train/, dev/, test/ (needed by stage 0)"
opt lexicon "" "the lexicon file, word phone... (needed by stage 0)"
opt corpus_root "" "where relative wav.scp paths resolve; default: as written"
recipe_options "$@"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  [ -n "$src" ] && [ -n "$lexicon" ] || { echo "$0: --src and --lexicon are required (see --help)" >&2; exit 1; }
  echo "$(date '+%F %T') Stage 0: validate and copy Kaldi data dirs from $src"
  root_opt=(); [ -n "$corpus_root" ] && root_opt=(--opt "corpus_root=$corpus_root")
  acoustic-kd prepare kaldi --src "$src" --lexicon "$lexicon" --out "$data" "${root_opt[@]}"
fi
../common/kd.sh --recipe-title "kaldi_datadir: $src" "${kd_args[@]}"
