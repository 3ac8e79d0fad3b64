#!/usr/bin/env bash
# mboshi_scale: Mboshi with a bigger training set built from its own real speech, for measuring
# how every stage scales (bench/bench_scale_corpus.py, bench/SCALE.md) and the "more data" point.
# The training set is the real 2.37 h plus copies at speeds 0.8-1.2, volumes -18..+6 dB and
# noise cut from the corpus' own silences (energy rule), up to --hours (acoustic-kd data-dir
# augment; seeded, so the same set on every machine). Dev and test stay the real upstream ones;
# the lexicon is the real one and the LM is the one estimated on the real training text (the
# copies repeat its sentences, which would change the LM's counts), so only the acoustic data grow.
# Configs: ../mboshi/conf (nothing of its own). kd.sh's --speed-perturb default makes the
# students' train_all three times --hours; --speed-perturb "" keeps it at --hours.
#
# Usage: ./run.sh [--hours 10] [--aug-seed 1] [--src DIR] [options of ../common/kd.sh]
#   e.g. ./run.sh --hours 10; ./run.sh --hours 30 --stop-stage 0
# Stage 0 prepares the real data in --real-data (acoustic-kd prepare mboshi), its lang (for the
# LM), and data_<hours>h/{train,dev,test,local} (unless --data is given); stages 1-10 are
# ../common/kd.sh's, into exp_<hours>h (unless --exp is given).

cd "$(dirname "$0")"
set -euo pipefail
. ../common/options.sh
opt src ../../../shared/corpora/mboshi "the staged Mboshi corpus (as ../mboshi/run.sh --src)"
opt real_data data_real "where the real Mboshi data dirs are prepared (train, dev, test, local, lang)"
opt hours 10 "hours of speech in the training set (the real 2.37 h included)"
opt aug_seed 1 "seed of the copies' draws"
kd_settings=(--config ../mboshi/conf/mboshi.yaml --student-config ../mboshi/conf/student.yaml)
recipe_options "$@"
case " ${opts_rest[*]} " in *" --data "*) ;; *) data=data_${hours}h; kd_args+=(--data "$data") ;; esac
case " ${opts_rest[*]} " in *" --exp "*) ;; *) exp=exp_${hours}h; kd_args+=(--exp "$exp") ;; esac
case " ${opts_rest[*]} " in *" --lm "*) ;; *) kd_args+=(--lm "$real_data/lang/G.arpa") ;; esac

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%F %T') Stage 0: real Mboshi in $real_data; ${hours} h training set in $data"
  acoustic-kd prepare mboshi --src "$src" --out "$real_data"
  acoustic-kd lang --data "$real_data/train" --lexicon "$real_data/local/lexicon.txt" \
    --out "$real_data/lang" --config ../mboshi/conf/mboshi.yaml
  acoustic-kd data-dir augment "$real_data/train" "$data/train" --hours "$hours" \
    --seed "$aug_seed" --nj "$nj"
  for s in dev test; do acoustic-kd data-dir combine "$data/$s" "$real_data/$s"; done
  mkdir -p "$data/local"
  cp "$real_data/local/lexicon.txt" "$data/local/lexicon.txt"
fi
../common/kd.sh --recipe-title "mboshi, ${hours} h training set (training seed $train_seed)" "${kd_args[@]}"
