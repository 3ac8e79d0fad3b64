#!/usr/bin/env bash
# Word/phone-boundary agreement of the GMM aligner with espeak's reference timings on synth_digits,
# for the noisy demo corpus and a near-clean variant of it (same voices, texts and sizes; every
# utterance at 40-50 dB SNR), each with the default GMM front end (deltas + delta-deltas over +-2
# frames) and narrow deltas (first order over +-1 frame).
#
# Usage: bash bench/align_synth.sh [WORK_DIR]   (default /tmp/akd_align_synth; ~5 min on 2 cores)
# Prints bench/bench_align.py's report for each of the 4 runs (also in WORK_DIR/<corpus>/<front>.txt).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/akd_align_synth}
config=$root/recipes/synth_digits/conf/demo.yaml
export PATH=$root/.venv/bin:$PATH
for corpus in noisy clean; do
  d=$work/$corpus
  mkdir -p "$d"
  opts=(--opt num_train=800 --opt num_dev=150 --opt num_test=150)   # the demo's sizes (run.sh)
  [ "$corpus" = clean ] && opts+=(--opt clean_prob=1.0)
  acoustic-kd prepare synth_digits --out "$d/data" --seed 0 --nj 2 "${opts[@]}"
  acoustic-kd lang --data "$d/data/train" --lexicon "$d/data/local/lexicon.txt" --out "$d/data/lang" \
    --config "$config"
  for s in train dev; do acoustic-kd features --data "$d/data/$s" --config "$config" --nj 2; done
  for front in default narrow; do
    extra=(); [ "$front" = narrow ] && extra=(--delta-order 1 --delta-window 1)
    acoustic-kd align --data "$d/data/train" --lang "$d/data/lang" --exp "$d/exp_$front" \
      --config "$config" "${extra[@]}"
    echo "== synth_digits $corpus dev, $front GMM front end"
    python "$root/bench/bench_align.py" --data "$d/data/dev" --lang "$d/data/lang" \
      --exp "$d/exp_$front" --max-utts 50 | tee "$d/$front.txt"
  done
done
