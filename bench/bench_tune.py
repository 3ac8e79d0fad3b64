#!/usr/bin/env python
"""Dev tuning of acwt and word penalty: dev lattices (Kaldi's scoring) against re-decoding every
grid point, and the lattice search against kaldi-decoder's decoders, on a Mboshi-sized graph.

Graph: the Mboshi lexicon (graphemic words, letters as phones) with a bigram LM (bench_graph's
`make_lang`) and a monophone HMM, determinized. Dev set: `--utts` sentences of the Mboshi test
transcripts, each letter's 3 HMM states held 1-4 frames (silence around), scores
sharp x (0 on the aligned pdf, -4 elsewhere, + Gaussian noise): a noisy acoustic model whose
best acoustic scale lies near 0.1. Both tuners search the kaldi_datadir recipe's grid (acwt
0.05-0.15 x penalty -0.5..1, widened until the optimum is interior). Reported: CPU and wall seconds
of each tuner, its choice and dev WER, the WER of every point under both, and CPU seconds per
frame of FasterDecoder (1-best), this package's lattice search and kaldi-decoder's
LatticeSimpleDecoder at acwt 0.05 and 0.1; at acwt 0.05 the dev WER, search time and the search's
arcs and active states per frame with the beam as given and narrowed by `beam_acwt` 0.1. Writes
bench/results/tune.json.

    python bench/bench_tune.py [--utts 40] [--noise 2.6] [--sharp 5] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("ACOUSTIC_KD_LOGLEVEL", "WARNING")

GRID = {"acwts": [0.05, 0.067, 0.083, 0.1, 0.125, 0.15], "word_penalties": [-0.5, 0.0, 0.5, 1.0]}


def dev_set(corpus: Path, hmm, words: set[str], n: int, noise: float, sharp: float, seed: int
            ) -> tuple[dict, dict]:
    """({utt: log-posteriors [T, P]}, {utt: words}) of `n` test sentences (see the docstring)."""
    rng = np.random.default_rng(seed)
    split = dict(line.split() for line in (corpus / "split.txt").read_text().splitlines())
    texts = [(u, t.split()) for u, _, t in (line.partition(" ") for line in (
        corpus / "transcripts.txt").read_text(encoding="utf-8").splitlines())
        if split.get(u) == "test" and t.split() and set(t.split()) <= words]
    posts, refs = {}, {}
    for u, ws in texts[:n]:
        chains = [hmm.silence_hmm()] + [c for w in ws for c in hmm.word_hmm(list(w))] + \
            [hmm.silence_hmm()]
        ali = [pdf for chain in chains for pdf, _, _ in chain for _ in range(rng.integers(1, 5))]
        ll = np.full((len(ali), hmm.num_pdfs), -4.0)
        ll[np.arange(len(ali)), ali] = 0.0
        ll = sharp * (ll + rng.normal(0, noise, ll.shape))
        posts[u] = (ll - np.logaddexp.reduce(ll, axis=1, keepdims=True)).astype(np.float32)
        refs[u] = ws
    return posts, refs


def compare_tuners(graph, posts, refs, priors, methods: list[str]) -> dict:
    """The tuners on the grid: seconds, choice, dev WER, surfaces."""
    from acoustic_kd.decode.decoder import DecodeConfig
    from acoustic_kd.decode.tune import TuneConfig, tune_on_dev

    out = {}
    for method in methods:
        wall, cpu = time.perf_counter(), time.process_time()
        res = tune_on_dev(graph, list(posts), refs, posts.__getitem__, priors,
                          DecodeConfig(beam=15.0), TuneConfig(**GRID, tune_method=method))
        out[method] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                       "acwt": res.acwt, "word_penalty": res.word_penalty, "dev_wer": res.dev_wer,
                       "points": len(res.grid), "lattices": res.lattices,
                       "surface": {f"{g['acwt']:g}/{g['word_penalty']:g}": g["wer"]
                                   for g in res.grid}}
    if len(out) < 2:
        return out
    rd, lat = out["redecode"]["surface"], out["lattice"]["surface"]
    pick = f"{out['lattice']['acwt']:g}/{out['lattice']['word_penalty']:g}"
    out["redecode_wer_at_lattice_choice"] = rd.get(pick)
    out["max_abs_wer_diff"] = max(abs(rd[k] - lat[k]) for k in set(rd) & set(lat))
    return out


def decoder_seconds(graph, posts, priors, utts: int) -> dict:
    """CPU seconds per frame of the three searches at acwt 0.05 and 0.1 (beam 15, lattice beam 8,
    max-active 7000 where the decoder has one)."""
    from acoustic_kd.decode.decoder import decode_utterance, hybrid_loglikes
    from acoustic_kd.decode.latgen import GraphArrays, LatticeSearch
    from acoustic_kd.decode.lattice import decode_lattice

    arrays = GraphArrays.from_fst(graph.fst)
    sample = list(posts.values())[:utts]
    frames = sum(len(x) for x in sample)
    out = {"frames": frames}
    for acwt in (0.05, 0.1):
        lls = [hybrid_loglikes(x, priors, acwt) for x in sample]
        search = LatticeSearch(arrays, 15.0, 8.0, 7000)
        runs = {"faster": lambda ll: decode_utterance(graph.fst, ll, 15.0, 7000),
                "lattice_numpy": lambda ll: search.search(ll, acwt),
                "lattice_simple": lambda ll: decode_lattice(graph.fst, ll, 15.0, 8.0)}
        for name, run in runs.items():
            t0 = time.process_time()
            for ll in lls:
                run(ll)
            out[f"{name}_{acwt:g}_ms_per_frame"] = 1000 * (time.process_time() - t0) / frames
    return out


def beam_width(graph, posts, refs, priors, acwt: float = 0.05) -> dict:
    """Dev WER, search CPU seconds and the search's arcs / active states per frame at `acwt` with
    the beam as given (15) and narrowed by acwt / 0.1 (`beam_acwt` 0.1)."""
    from acoustic_kd.decode.decoder import DecodeConfig, decode_set, words_of
    from acoustic_kd.decode.score import score_both

    out = {}
    for ref in (0.0, 0.1):
        cfg = DecodeConfig(acwt=acwt, beam=15.0, beam_acwt=ref, beam_sample_frames=10 ** 9)
        t0 = time.process_time()
        res, timing = decode_set(graph, list(posts), posts.__getitem__, priors, cfg, probe=True)
        hyps = {u: words_of(graph, r) for u, r in res.items()}
        out[f"beam_acwt_{ref:g}"] = {"wer": score_both(refs, hyps)["wer"][0].rate,
                                     "cpu_s_with_probe": time.process_time() - t0,
                                     "search_s": timing["search_s"], **timing["search"]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("/work/shared/corpora/mboshi"))
    ap.add_argument("--utts", type=int, default=40, help="dev sentences")
    ap.add_argument("--noise", type=float, default=2.6, help="std of the score noise")
    ap.add_argument("--sharp", type=float, default=5.0, help="scale of the scores")
    ap.add_argument("--decoder-utts", type=int, default=3, help="sentences timed per decoder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", nargs="+", default=["redecode", "lattice"],
                    choices=["redecode", "lattice"], help="tuners compared")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tune.json")
    args = ap.parse_args()
    if not (args.corpus / "transcripts.txt").exists():
        print(f"{args.corpus}: no transcripts.txt; nothing measured")
        return 0
    from bench_graph import make_lang

    from acoustic_kd.decode.decoder import Graph
    from acoustic_kd.decode.graph import build_graph
    from acoustic_kd.hmm import HmmModel
    from acoustic_kd.lang import load_lang

    with tempfile.TemporaryDirectory() as tmp:
        make_lang(args.corpus, Path(tmp) / "lang", 2)
        lg = load_lang(Path(tmp) / "lang")
        hmm = HmmModel.monophone(lg.phones, lg.topo, lg.silence_phone)
        graph = Graph.load(build_graph(Path(tmp) / "lang", hmm, Path(tmp) / "graph").parent)
        posts, refs = dev_set(args.corpus, hmm, set(lg.lexicon), args.utts, args.noise,
                              args.sharp, args.seed)
        priors = np.full(hmm.num_pdfs, -math.log(hmm.num_pdfs))
        result = {"args": {k: str(v) for k, v in vars(args).items()}, "beam": 15.0,
                  "graph": {k: graph.info.get(k) for k in ("num_states", "num_arcs", "num_pdfs")},
                  "dev": {"utts": len(posts), "frames": sum(len(x) for x in posts.values())},
                  "tuners": compare_tuners(graph, posts, refs, priors, args.methods),
                  "decoders": decoder_seconds(graph, posts, priors, args.decoder_utts),
                  "beam_at_0.05": beam_width(graph, posts, refs, priors)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for m in args.methods:
        t = result["tuners"][m]
        print(f"{m:9s} {t['cpu_s']:7.1f} s CPU {t['wall_s']:7.1f} s wall  {t['points']} points  "
              f"acwt {t['acwt']:g} penalty {t['word_penalty']:g}  dev WER {t['dev_wer']:.2f}")
    print(json.dumps({k: result[k] for k in ("graph", "dev", "decoders", "beam_at_0.05")},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
