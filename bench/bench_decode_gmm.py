#!/usr/bin/env python
"""Decoding with a trained GMM-HMM on real data: plain vs determinized graph, beams.

The acoustic model is the GMM of a GMM pass (`acoustic-kd align`: EXP/tri/final.gmm.npz
and final.hmm.json), its scores those of `acoustic-kd decode --gmm` (`decode.gmm_source`: features
made as that pass made them; a SAT pass adapted per speaker on the first graph variant); frame
scores are acwt · GMM log-likelihoods. For each graph variant and beam the first --utts utterances
of --data are decoded (1 process, --threads for numpy) and scored; RTF counts the GMM likelihoods
("forward", with a SAT pass's adaptation decodes) and the search, over the audio duration. Decode results of the plain
and the determinized graph are the same paths (the determinization is tropical), so their WERs
differ only through pruning. The determinized graph ("det") has the HMM's context convention
(H∘C∘L∘G for a pass trained with `align --context cross-word`); "plain" exists for word-internal
HMMs only. Writes bench/results/decode_gmm.json and prints a table.

    python bench/bench_decode_gmm.py --exp recipes/mboshi/exp_base --lang recipes/mboshi/data/lang \\
        --data recipes/mboshi/data/dev [--utts 60] [--beams 8 11 15]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("ACOUSTIC_KD_LOGLEVEL", "WARNING")


def main() -> int:
    from acoustic_kd.decode.decoder import DecodeConfig, Graph, decode_set, words_of
    from acoustic_kd.decode.gmm_source import GmmPass, gmm_source
    from acoustic_kd.decode.graph import GraphConfig, build_graph
    from acoustic_kd.decode.score import read_text, score_both
    from acoustic_kd.utils import set_num_threads

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", type=Path, required=True)
    ap.add_argument("--pass", "--stage", dest="gmm_pass", default="tri",
                    help="the GMM pass to decode with (--stage: the older name)")
    ap.add_argument("--lang", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--utts", type=int, default=60)
    ap.add_argument("--acwt", type=float, default=0.1)
    ap.add_argument("--beams", type=float, nargs="+", default=[8.0, 11.0, 15.0])
    ap.add_argument("--variants", nargs="+", default=None,
                    help="plain (word-internal HMMs only) and/or det (default: those that apply)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "decode_gmm.json")
    args = ap.parse_args()
    set_num_threads(args.threads)
    gmm_pass = args.exp / args.gmm_pass
    hmm = GmmPass.load(gmm_pass).hmm
    variants = args.variants or (["plain", "det"] if hmm.context == "word-internal" else ["det"])
    refs = read_text(args.data / "text")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {}
        for variant in variants:
            cfg = GraphConfig(determinize=variant != "plain")
            graphs[variant] = Graph.load(build_graph(args.lang, hmm, Path(tmp) / variant, cfg,
                                                     hmm_path=gmm_pass / "final.hmm.json").parent)
        t0 = time.perf_counter()
        fn, utts, meta = gmm_source(gmm_pass, args.data, graphs[variants[0]],
                                    DecodeConfig(acwt=args.acwt), utts=sorted(refs)[:args.utts])
        ll = {u: fn(u) for u in utts}
        forward_s = time.perf_counter() - t0
        audio_s = sum(len(x) for x in ll.values()) * meta["frame_shift"]
        for variant, g in graphs.items():
            for beam in args.beams:
                dcfg = DecodeConfig(acwt=args.acwt, beam=beam)
                res, timing = decode_set(g, utts, ll.__getitem__, np.zeros(hmm.num_pdfs), dcfg)
                hyps = {u: words_of(g, r) for u, r in res.items()}
                both = score_both({u: refs[u] for u in utts}, hyps)
                w, c = both["wer"][0], both["cer"][0]
                rows.append({"graph": variant, "context": g.info["config"]["context"], "beam": beam,
                             "states": g.info["num_states"],
                             "arcs": g.info["num_arcs"], "wer": round(w.rate, 2), "cer": round(c.rate, 2),
                             "ins": w.ins, "del": w.dels, "sub": w.subs,
                             "rtf_search": round(timing["search_s"] / audio_s, 4),
                             "rtf": round((timing["search_s"] + forward_s) / audio_s, 4),
                             "not_final": timing["not_final"]})
                r = rows[-1]
                print(f"{variant:6s} beam {beam:4g}: WER {r['wer']:6.2f} CER {r['cer']:6.2f} "
                      f"(ins {r['ins']} del {r['del']} sub {r['sub']}), RTF {r['rtf']:.4f} "
                      f"(search {r['rtf_search']:.4f})", flush=True)
    out = {"exp": str(gmm_pass), "data": str(args.data), "utts": len(utts), "audio_s": audio_s,
           "acwt": args.acwt, "num_pdfs": hmm.num_pdfs, "rtf_forward": round(forward_s / audio_s, 4),
           "threads": args.threads, "rows": rows, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
