#!/usr/bin/env python
"""Decoding-graph size, build time and memory on a Mboshi-sized lexicon with bigram/trigram LMs.

The lang dir is built from the Mboshi transcripts (`/work/shared/corpora/mboshi` or --corpus):
graphemic words (every word of train and test, a closed vocabulary), letters as phones, the LM
estimated on the training transcripts (Witten-Bell, `acoustic-kd lang --lm-order N`). No acoustic
model is needed to measure the graph: a monophone HMM of the lang topology (3 states per letter,
5 for silence) gives the right structure, and a context-dependent stand-in for a trained tree
(`tied_hmm`: edge states tied by the neighbouring letter's class) shows what cross-word context
costs. Each (LM order, determinize) graph is built in a fresh
process, so its peak RSS is its own (graph dirs g<order>_<variant> under --keep), and searched with
the same random scores (CPU seconds; their ratio between graphs is the figure). Writes bench/results/graph.json and prints a table.

    python bench/bench_graph.py [--orders 2 3] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("ACOUSTIC_KD_LOGLEVEL", "WARNING")


def make_lang(corpus: Path, out: Path, order: int) -> None:
    from acoustic_kd.lang import LangConfig, prepare_lang

    texts = dict(line.split(" ", 1) for line in (corpus / "transcripts.txt").read_text(
        encoding="utf-8").splitlines() if " " in line)
    split = dict(line.split() for line in (corpus / "split.txt").read_text().splitlines())
    train = {u: t.strip() for u, t in texts.items() if split.get(u) == "train"}
    other = {u: t.strip() for u, t in texts.items() if split.get(u) != "train"}
    words = sorted({w for t in texts.values() for w in t.split()})
    lex = out.parent / f"lexicon_{order}.txt"
    lex.write_text("".join(f"{w} {' '.join(w)}\n" for w in words), encoding="utf-8")
    prepare_lang(train, str(lex), out, LangConfig(lm_order=order, strip_stress=False),
                 extra_texts=other)


VOWELS = set("aeiouáéíóúεέωώ")


def tied_hmm(lg, context: str = "word-internal"):
    """A context-dependent stand-in for a trained tree: each letter's first state tied by its left
    neighbour (vowel or not, then the same for the letter after that question), its last state by
    its right neighbour; the middle state context-free. `context`: the convention it stands for
    (mkgraph builds only the graph that matches a context-dependent HMM)."""
    from acoustic_kd.hmm import HmmModel

    d = HmmModel.monophone(lg.phones, lg.topo, lg.silence_phone, context).to_dict()
    vowels = [p for p in lg.phones if p in VOWELS]
    tones = [p for p in vowels if p in set("áéíóúέώ")]
    for key, tree in list(d["trees"].items()):
        phone, state = key.rsplit("/", 1)
        n = lg.topo[phone]["num_states"]
        if lg.topo[phone].get("context_independent") or int(state) not in (0, n - 1):
            continue
        pos = -1 if int(state) == 0 else 1
        base = tree[0]["pdf"]
        new = []
        for _ in range(2):
            new.append(len(d["log_self"]))
            d["log_self"].append(d["log_self"][base])
            d["log_fwd"].append(d["log_fwd"][base])
        d["trees"][key] = [{"pos": pos, "set": vowels, "yes": 1, "no": 4},
                           {"pos": pos, "set": tones, "yes": 2, "no": 3},
                           {"pdf": base}, {"pdf": new[0]}, {"pdf": new[1]}]
    return HmmModel.from_dict(d)


def build_one(lang: Path, out: Path, variant: str) -> dict:
    """variant: 'plain' (no determinization), 'det' (word-internal), 'cross' (cross-word), each
    with the monophone HMM, or with '-tied' the context-dependent stand-in (`tied_hmm`)."""
    from acoustic_kd.decode.graph import GraphConfig, build_graph
    from acoustic_kd.hmm import HmmModel
    from acoustic_kd.lang import load_lang

    lg = load_lang(lang)
    kind, _, tied = variant.partition("-")
    context = "cross-word" if kind == "cross" else "word-internal"
    hmm = tied_hmm(lg, context) if tied else HmmModel.monophone(lg.phones, lg.topo, lg.silence_phone)
    cfg = GraphConfig(determinize=kind != "plain", context=context)
    build_graph(lang, hmm, out, cfg, force=True)
    info = json.loads((out / "graph.json").read_text())
    return {k: info.get(k) for k in ("num_states", "num_arcs", "num_pdfs", "lm_order", "determinized",
                                     "build_s", "max_rss_mb", "sizes", "times")} | {
        "variant": variant, "context": cfg.context, "hmm": "tied" if tied else "monophone",
        "words": len(lg.lexicon), "fst_mb": (out / "HCLG.fst").stat().st_size / 2**20,
        "search_cpu_s": search_seconds(out)}


def search_seconds(graph_dir: Path, utts: int = 4, seconds: float = 4.0) -> float:
    """CPU seconds of FasterDecoder (beam 12, max-active 2000) on random scores (best of 2): the
    same scores for every graph, so only the ratio between graphs means something."""
    import time

    import numpy as np

    from acoustic_kd.decode.decoder import Graph, decode_utterance

    g = Graph.load(graph_dir)
    rng = np.random.default_rng(0)
    lls = [rng.normal(0, 0.5, (int(seconds * 100), g.info["num_pdfs"])).astype(np.float32)
           for _ in range(utts)]
    best = float("inf")
    for _ in range(2):
        t0 = time.process_time()
        for ll in lls:
            decode_utterance(g.fst, ll, beam=12.0, max_active=2000, align=g.align)
        best = min(best, time.process_time() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("/work/shared/corpora/mboshi"))
    ap.add_argument("--orders", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--keep", type=Path, help="build the lang and graph dirs here and keep them "
                    "(e.g. for bench_decode.py --graph DIR/g3_1)")
    ap.add_argument("--variants", nargs="+", default=["plain", "det", "cross", "det-tied",
                                                       "cross-tied"],
                    help="graphs built per LM order (see build_one)")
    ap.add_argument("--one", nargs=3, metavar=("LANG", "OUT", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(build_one(Path(args.one[0]), Path(args.one[1]), args.one[2])))
        return 0
    if not (args.corpus / "transcripts.txt").exists():
        print(f"{args.corpus}: no transcripts.txt; nothing measured")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for order in args.orders:
            lang = Path(tmp) / f"lang{order}"
            make_lang(args.corpus, lang, order)
            for variant in args.variants:
                res = subprocess.run([sys.executable, __file__, "--one", str(lang),
                                      str(Path(tmp) / f"g{order}_{variant}"), variant],
                                     capture_output=True, text=True, check=True)
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                r = rows[-1]
                print(f"order {order} {variant} ({r['num_pdfs']} pdfs): {r['num_states']} states, {r['num_arcs']} "
                      f"arcs, {r['build_s']:.1f} s, peak RSS {r['max_rss_mb']:.0f} MB, search "
                      f"{r['search_cpu_s']:.2f} CPU s", flush=True)
    out = {"corpus": str(args.corpus), "rows": rows, "host": platform.node(),
           "cpus": os.cpu_count(), "python": platform.python_version()}
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "results" / "graph.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
