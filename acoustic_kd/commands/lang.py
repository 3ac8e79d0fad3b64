"""Build a lang dir (phones, lexicon, HMM topology, OOV report, G.arpa) from training transcripts.

Example: acoustic-kd lang --data data/train --vocab-data data/dev data/test --lexicon cmudict --out data/lang
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import add_config_args, load_config, overrides_from_args, to_dict
from ..config_types import arg_type
from ..lang.arpa import install_arpa
from ..lang.langdir import LangConfig, prepare_lang
from ..lang.lexicon import MAX_OOV_RATE
from ..stage import Stage
from ..utils import read_table

HELP = "phones, lexicon, HMM topology and grammar (G.arpa) -> data/lang"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="training data dir (its text also trains G.arpa)")
    p.add_argument("--vocab-data", nargs="*", default=[],
                   help="more data dirs whose words join the vocabulary (not the grammar counts)")
    p.add_argument("--lexicon", required=True, help="lexicon file (word phone...) or 'cmudict'")
    p.add_argument("--out", required=True, help="output lang dir")
    p.add_argument("--arpa", help="use this ARPA LM as G.arpa instead of estimating one from --data "
                                  "(its words must be in the lexicon)")
    p.add_argument("--max-oov-rate", type=arg_type(float, "[0, 1]", name="fraction"), default=MAX_OOV_RATE, metavar="FRACTION",
                   help="stop when more than this share of the running transcript words is not in "
                        f"the lexicon (default {MAX_OOV_RATE:g})")
    p.add_argument("--config", help="recipe YAML (section 'lang')")
    p.add_argument("--force", action="store_true", help="rebuild even if done")
    add_config_args(p, LangConfig)


def _texts(d: str) -> dict[str, str]:
    return {k: v for k, v, _ in read_table(Path(d) / "text", min_fields=1)}


def stage(args: argparse.Namespace, cfg: LangConfig) -> Stage:
    """The lang stage: the transcripts, the lexicon and the ARPA file in, the lang dir out."""
    out = Path(args.out)
    lexicon = None if args.lexicon == "cmudict" else args.lexicon
    texts = [Path(d) / "text" for d in (args.data, *args.vocab_data)]
    return Stage("lang", out, {"lang": to_dict(cfg), "cmudict": lexicon is None,
                               "vocab_sets": len(args.vocab_data), "arpa": bool(args.arpa)},
                 inputs=[*texts, lexicon, args.arpa],
                 code=["acoustic_kd.lang.lexicon", "acoustic_kd.lang.arpa", "acoustic_kd.lang.langdir",
                       __name__],
                 outputs=[out], marker="", resumable=False)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    cfg = load_config(LangConfig, args.config, "lang", overrides_from_args(args, LangConfig))
    st = stage(args, cfg)
    if not st.begin(args.force):
        print(f"{out}: already done (use --force to rebuild)")
        return 0
    extra: dict[str, str] = {}
    for d in args.vocab_data:
        extra.update(_texts(d))
    lang = prepare_lang(_texts(args.data), args.lexicon, out, cfg, extra_texts=extra,
                        max_oov_rate=args.max_oov_rate)
    if args.arpa:
        install_arpa(args.arpa, out, lang.words)
    st.finish()
    oov = (out / "oov.txt").read_text().splitlines()
    print(f"{out}: {len(lang.phones) - 1} phones, {len(lang.words) - 1} words, "
          f"{sum(len(p) for p in lang.lexicon.values())} pronunciations, {len(oov)} OOV word types "
          f"(policy {cfg.oov_policy}), G.arpa order {cfg.lm_order}")
    return 0
