"""Forced-alignment speed (x real time) and word-boundary agreement of a trained exp dir.

Usage: python bench/bench_align.py --data DATA_DIR --lang LANG_DIR --exp EXP_DIR [--stage tri]
Prints the batched aligner's speed against the same Viterbi run one utterance at a time (the
reference), and, when DATA_DIR has `word_times.txt`, the share of word boundaries within 20 ms.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from acoustic_kd.gmm.align import align, compile_graphs, read_word_times, word_boundary_agreement
from acoustic_kd.gmm.diag_gmm import DiagGmm
from acoustic_kd.gmm.run import load_set
from acoustic_kd.hmm import HmmModel
from acoustic_kd.lang import load_lang


def phone_agreement(res, phone_refs: dict, word_refs: dict, tol: float, frame_shift: float) -> dict:
    """Phone-boundary agreement for words whose reference phone count equals the aligned one.

    Phones are segmented from the state path (a phone starts when its HMM state 0 is entered);
    espeak and ARPAbet phone sets differ (e.g. FOUR is `f 'o@` in espeak, F AO R here), so only
    words with the same number of phones on both sides are compared, boundary by boundary.
    """
    within = total = words = 0
    for utt, path in res.states.items():
        g = res.graphs[utt]
        info, word = g.info[path], g.word[path]
        starts = [t for t in range(len(path)) if word[t] >= 0 and info[t, 3] == 0
                  and (t == 0 or path[t] != path[t - 1])]
        phones_of: dict[int, list[tuple[float, float]]] = {}
        for i, t in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) and word[starts[i + 1]] == word[t] else None
            if end is None:  # last phone of the word: until the word's frames end
                end = t + int((word[t:] == word[t]).cumprod().sum())
            phones_of.setdefault(int(word[t]), []).append((t * frame_shift, end * frame_shift))
        refs = phone_refs.get(utt, [])
        for w, (_, ws, we) in enumerate(word_refs.get(utt, [])):
            ref = [(s, e) for _, s, e in refs if s >= ws - 1e-6 and e <= we + 1e-6]
            hyp = phones_of.get(w, [])
            if len(ref) != len(hyp) or not hyp:
                continue
            words += 1
            for (hs, he), (rs, re_) in zip(hyp, ref):
                within += int(abs(hs - rs) <= tol + 1e-9) + int(abs(he - re_) <= tol + 1e-9)
                total += 2
    return {"agreement": within / max(total, 1), "boundaries": total, "words": words}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--lang", required=True)
    ap.add_argument("--exp", required=True)
    ap.add_argument("--stage", nargs="+", default=["mono", "tri"])
    ap.add_argument("--max-utts", type=int, default=300, help="utterances for the speed test")
    ap.add_argument("--tol", type=float, default=0.02, help="boundary tolerance (s)")
    args = ap.parse_args()
    lang = load_lang(args.lang)
    # the features must be made as in training (cepstra count, variance normalisation)
    trained = json.loads((Path(args.exp) / args.stage[0] / "info.json").read_text())["config"]["align"]
    feats, texts = load_set(args.data, trained["num_ceps"], trained.get("norm_vars", False),
                            trained.get("cmvn", "speaker"))
    frame_shift = 0.01
    refs_path = Path(args.data) / "word_times.txt"
    refs = read_word_times(refs_path) if refs_path.exists() else None
    for stage in args.stage:
        d = Path(args.exp) / stage
        hmm, gmm = HmmModel.load(d / "final.hmm.json"), DiagGmm.load(d / "final.gmm.npz")
        utts = sorted(u for u in feats if u in texts)
        graphs, failed = compile_graphs(hmm, lang, texts, utts)
        t0 = time.time()
        boost = trained.get("boost_silence", 1.0)
        res = align(hmm, gmm, feats, graphs, boost_silence=boost)
        secs = time.time() - t0
        audio = res.frames * frame_shift
        sub = {u: graphs[u] for u in list(graphs)[:args.max_utts]}
        t1 = time.time()
        ref_res = align(hmm, gmm, feats, sub, batch_size=1, boost_silence=boost)
        ref_secs = time.time() - t1
        ref_audio = ref_res.frames * frame_shift
        print(f"{stage}: {hmm.num_pdfs} pdfs, {gmm.num_gauss} Gaussians; aligned {len(res.states)} "
              f"utts ({audio:.0f} s audio), failed {len(res.failed) + len(failed)}; "
              f"{audio / secs:.0f}x real time batched vs {ref_audio / ref_secs:.0f}x one at a time "
              f"(speed-up {audio / secs / (ref_audio / ref_secs):.1f}x); "
              f"avg loglike/frame {res.avg_loglike:.3f}")
        if refs:
            for tol, offset in ((args.tol, 0.0), (args.tol, 0.0075), (0.05, 0.0)):
                agree = word_boundary_agreement(res.pdfs(), hmm, lang, texts, refs, frame_shift,
                                                tol, offset)
                print(f"{stage}: word boundaries within {tol * 1000:.0f} ms (offset "
                      f"{offset * 1000:.1f} ms): {100 * agree['agreement']:.1f}% of "
                      f"{agree['boundaries']} ({agree['utts']} utts, {agree['skipped']} skipped)")
            phone_path = Path(args.data) / "phone_times.txt"
            if phone_path.exists():
                ph = phone_agreement(res, read_word_times(phone_path), refs, args.tol, frame_shift)
                print(f"{stage}: phone boundaries within {args.tol * 1000:.0f} ms: "
                      f"{100 * ph['agreement']:.1f}% of {ph['boundaries']} "
                      f"(words whose phone counts match: {ph['words']})")


if __name__ == "__main__":
    main()
