"""Build the decoding graph HCLG = det(HL ∘ G) for a lang dir and an HMM model.

ilabel = pdf + 1, olabel = word id; optional silence between words (lang.json sil_prob). As Kaldi's
mkgraph.sh: disambiguation symbols, determinized and minimized, self-loops added after
(--determinize false: the plain composition). The phonetic context follows the HMM
(final.hmm.json 'context'): a cross-word HMM (`align --context cross-word`) gets H∘C∘L∘G, with a
triphone context transducer across word boundaries; asking for a graph of the other context
(--context) is refused unless the HMM is context-free (monophones). Writes OUT/HCLG.fst,
OUT/words.txt, OUT/align_lexicon.json (for word times) and OUT/graph.json (sizes after each
step, build time, peak memory); a re-run reuses the graph when the lang dir, the HMM and the
options are unchanged (the stage contract, acoustic_kd.stage: lang dir, HMM, options and code;
--force rebuilds).

  acoustic-kd mkgraph --lang data/lang --model exp/tri/final.hmm.json --out exp/tri/graph
"""

from __future__ import annotations

import argparse

from ..config import add_config_args, job_from_args, overrides_from_args
from ..decode.graph import GraphConfig, GraphJob

HELP = "build the decoding graph (HMM∘lexicon∘grammar) for a lang dir and an HMM model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lang", required=True, help="lang dir (acoustic-kd lang)")
    p.add_argument("--model", required=True, help="HMM model JSON (e.g. exp/tri/final.hmm.json)")
    p.add_argument("--out", help="graph dir (default: <model dir>/graph)")
    p.add_argument("--config", help="recipe YAML (section 'mkgraph')")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    add_config_args(p, GraphConfig)


def run(args: argparse.Namespace) -> int:
    job = job_from_args(GraphJob, args, options=overrides_from_args(args, GraphConfig))
    info = job.run()
    print(f"{job.out_dir() / 'HCLG.fst'}: {info['num_states']} states, {info['num_arcs']} arcs, "
          f"{info['num_pdfs']} pdfs")
    sizes = info.get("sizes") or {}
    if "LG" in sizes:
        print("  " + ", ".join(f"{k} {v[0]} states / {v[1]} arcs" for k, v in sizes.items()
                               if isinstance(v, list)) + f"; built in {info['build_s']:.1f} s, "
              f"peak RSS {info['max_rss_mb']:.0f} MB")
    return 0
