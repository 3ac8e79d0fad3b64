#!/usr/bin/env bash
# Mboshi as a user brings a corpus: plain Kaldi data dirs (wav.scp, text, utt2spk; no spk2utt),
# the grapheme lexicon as a file and the recipe's trigram ARPA (stage 1's G.arpa, estimated on the
# training text), for the bring-your-own recipe with nothing else:
#   ../kaldi_datadir/run.sh --src OUT/data --lexicon OUT/lexicon.txt --lm OUT/lm.arpa
# which runs the systems of ./run.sh (the same sets, lexicon, LM and configuration).
# Run from recipes/mboshi:  local/as_kaldi_datadir.sh [--src DIR] [--out DIR] [--split speaker]
# Writes OUT/prepared/ (stage 0 and 1 of this recipe), OUT/data/{train,dev,test}/, OUT/lexicon.txt,
# OUT/lm.arpa (OUT: byo).

src=../../../shared/corpora/mboshi; out=byo; split=upstream
. ../common/parse_options.sh "$@"
set -euo pipefail

put() { cp "$1" "$2.tmp.$$" && mv "$2.tmp.$$" "$2"; }   # put SRC DST: a whole file or none
prep=$out/prepared
acoustic-kd prepare mboshi --src "$src" --out "$prep" --split "$split"
acoustic-kd lang --data "$prep/train" --lexicon "$prep/local/lexicon.txt" --out "$prep/lang" \
  --config conf/mboshi.yaml
for s in train dev test; do
  mkdir -p "$out/data/$s"
  for f in wav.scp text utt2spk; do put "$prep/$s/$f" "$out/data/$s/$f"; done
done
put "$prep/local/lexicon.txt" "$out/lexicon.txt"
put "$prep/lang/G.arpa" "$out/lm.arpa"
echo "$out: data/{train,dev,test} lexicon.txt lm.arpa; next:"
echo "  cd ../kaldi_datadir && ./run.sh --src $(cd "$out" && pwd)/data --lexicon $(cd "$out" && pwd)/lexicon.txt --lm $(cd "$out" && pwd)/lm.arpa"
