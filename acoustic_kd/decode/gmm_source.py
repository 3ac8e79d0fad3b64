"""GMM-HMM frame scores for the decode stage (`acoustic-kd decode --gmm EXP/<pass>`).

A finished GMM pass (`acoustic-kd align`) decodes on the networks' graphs: its per-pdf
log-likelihoods log p(x|s) [T, P] take the place of the networks' log-posteriors, with log-priors
0, so the frame scores are acwt · log p(x|s). The features are made as the pass made them
(`gmm.run.si_features`: cepstra + deltas, or for an LDA+MLLT pass the spliced cepstra through its
transform).

A speaker-adaptive pass (tri3, fMLLR) needs each speaker's transform, estimated without the
transcripts, the way Kaldi's decode_fmllr.sh does it: a first pass decodes the set with the
speaker-independent pass the SAT pass was trained from (tri2, on the same features, on a graph of
the same lang and options built with its HMM: `<graph>/si_tri2`, reused when up to date), a
transform per speaker is estimated from the best paths' pdfs (`gmm.fmllr.estimate_set_each`, with
the fMLLR options the pass was trained with; the first with the speaker-independent model, as SAT
training's first estimate is), and the set is decoded with the SAT model on the transformed
features, whose best paths give the next estimate (`GmmDecodeConfig.adapt_rounds` estimates in
all, each starting from the one before). These decodes run at the fixed scale `adapt_acwt`
without word penalty, so the transforms do not depend on the values tuned on dev, and the dev set
is adapted the same way before it is tuned on. (Kaldi's first pass uses an alignment model that
shares the SAT model's tree; here the speaker-independent pass has a tree of its own, hence its
own graph.)

    fn, utts, meta = gmm_source("exp/tri3", "data/test", Graph.load("exp/tri3/graph"),
                                DecodeConfig(), GmmDecodeConfig())
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..config_types import check_fields
from ..errors import DataError
from ..gmm.diag_gmm import DiagGmm
from ..gmm.fmllr import estimate_set_each, read_utt2spk, speaker_report, transform_set
from ..gmm.run import PASSES, SI_PASS, TRANSFORM_FILE, si_features
from ..gmm.train import AlignConfig
from ..hmm import HmmModel
from ..utils import c_sorted
from .decoder import DecodeConfig, Graph, decode_set
from .graph import build_graph, graph_sources

MODEL_FILES = ("final.hmm.json", "final.gmm.npz")


@dataclass
class GmmDecodeConfig:
    """Options of a GMM pass's decode (`acoustic-kd decode --gmm`): the speaker adaptation of a
    speaker-adaptive (SAT, fMLLR) pass from first-pass best paths (this module)."""

    adapt_acwt: float = field(default=0.083, metadata={
        "help": "acoustic scale of the decodes whose best paths estimate a SAT pass's fMLLR "
                "transforms (fixed, so that dev and test are adapted alike; Kaldi's 1/12; "
                "command line only)",
        "range": "(0, inf)"})
    adapt_rounds: int = field(default=2, metadata={
        "help": "fMLLR estimates of a SAT pass: the first from the best paths of its "
                "speaker-independent pass, each other from those of the SAT model on the features "
                "the estimate before transformed (command line only)", "range": "[1, inf)"})

    def __post_init__(self):
        check_fields(self)


def check_pass(pass_dir: str | Path) -> None:
    """Refuse a dir that is not a finished GMM pass (and a SAT pass without the speaker-independent
    pass its first decode needs)."""
    d = Path(pass_dir)
    dirs = [d, d.parent / SI_PASS[d.name]] if d.name in SI_PASS else [d]
    for p in dirs:
        for name in MODEL_FILES:
            if not (p / name).is_file():
                raise DataError(p / name, "not a finished GMM pass (its model file is missing)",
                                f"give a pass dir of `acoustic-kd align` (EXP/{'|'.join(PASSES)}), "
                                f"or train it: acoustic-kd align --through {p.name}")


def check_graph_hmm(graph_dir: str | Path, pass_dir: str | Path) -> None:
    """Refuse a graph built with another HMM than the pass's (graph.json 'hmm'; a graph that does
    not name it is left to the decode's check of the pdf count)."""
    info = Path(graph_dir) / "graph.json"
    built = json.loads(info.read_text()).get("hmm") if info.is_file() else None
    mine = Path(pass_dir) / "final.hmm.json"
    if not built or not Path(built).is_file():
        return
    if Path(built).resolve() != mine.resolve() and Path(built).read_bytes() != mine.read_bytes():
        raise DataError(info, f"the graph was built with {built}, not with {mine}",
                        f"decode on the pass's own graph (acoustic-kd mkgraph --model {mine})")


@dataclass
class GmmPass:
    """A finished GMM pass loaded for decoding: its dir, HMM and GMM."""

    path: Path
    hmm: HmmModel
    gmm: DiagGmm

    @classmethod
    def load(cls, pass_dir: str | Path) -> "GmmPass":
        """The pass in `pass_dir` (refused, with the fix, when it is not a finished one)."""
        d = Path(pass_dir)
        check_pass(d)
        gp = cls(d, HmmModel.load(d / "final.hmm.json"), DiagGmm.load(d / "final.gmm.npz"))
        if gp.gmm.num_pdfs != gp.hmm.num_pdfs:
            raise DataError(d / "final.gmm.npz", f"{gp.gmm.num_pdfs} pdfs but final.hmm.json has "
                            f"{gp.hmm.num_pdfs}", "retrain the pass (acoustic-kd align --force)")
        return gp

    @property
    def sat(self) -> bool:
        """Whether the pass is speaker-adaptive (its features need per-speaker fMLLR)."""
        return self.path.name in SI_PASS

    def loglikes(self, x: np.ndarray) -> np.ndarray:
        """log p(x_t|s) of every pdf: features [T, D] -> [T, P] float32."""
        return np.asarray(self.gmm.loglikes(x), dtype=np.float32)

    def trained_config(self) -> AlignConfig:
        """The AlignConfig the pass was trained with (its info.json; defaults for what it lacks)."""
        info = self.path / "info.json"
        trained = json.loads(info.read_text()).get("config", {}).get("align", {}) \
            if info.is_file() else {}
        known = {f.name for f in dataclasses.fields(AlignConfig)}
        return AlignConfig(**{k: v for k, v in trained.items() if k in known})


def pass_inputs(pass_dir: str | Path) -> list[Path]:
    """The files of a pass a decode with it reads: model, feature transform, training config (and
    those of the speaker-independent pass a SAT pass adapts with)."""
    d = Path(pass_dir)
    dirs = [d, d.parent / SI_PASS[d.name]] if d.name in SI_PASS else [d]
    return [p / n for p in dirs for n in (*MODEL_FILES, TRANSFORM_FILE, "info.json")
            if (p / n).exists()]


def frame_shift(data_dir: str | Path) -> float:
    """Frame shift in seconds of a data dir's features (its fbank.json; 10 ms when unknown)."""
    from ..features.featureset import FeatureSet

    cfg = FeatureSet(data_dir, cmvn="none").config
    return cfg.frame_shift_ms / 1000.0 if cfg is not None else 0.01


def gmm_source(pass_dir: str | Path, data_dir: str | Path, graph: Graph | None = None,
               cfg: DecodeConfig | None = None, gcfg: GmmDecodeConfig | None = None,
               utts: Iterable[str] | None = None
               ) -> tuple[Callable[[str], np.ndarray], list[str], dict]:
    """(utt -> log p(x|s) [T, P] float32, utterances, meta) of a data dir's features (of `utts`
    only, when given) under a GMM pass; a SAT pass first adapts each speaker on `graph` with the
    search options of `cfg` (`adapt_speakers`). meta: num_pdfs, frame_shift (s), gmm (the pass
    dir) and for a SAT pass fmllr (one report per estimate)."""
    gp = GmmPass.load(pass_dir)
    feats, _ = si_features(gp.path, data_dir)
    if utts is not None:
        feats = {u: feats[u] for u in utts if u in feats}
    meta: dict = {"num_pdfs": gp.hmm.num_pdfs, "frame_shift": frame_shift(data_dir),
                  "gmm": str(pass_dir)}
    if gp.sat:
        if graph is None:
            raise ValueError(f"{pass_dir} is speaker-adaptive: its decode needs a graph to adapt on")
        feats, meta["fmllr"] = adapt_speakers(gp, feats, read_utt2spk(data_dir), graph,
                                              cfg or DecodeConfig(), gcfg or GmmDecodeConfig())
    return (lambda u: gp.loglikes(feats[u])), c_sorted(feats), meta


def si_graph(graph: Graph, si: GmmPass) -> Graph:
    """The graph of `graph`'s lang and options built with the speaker-independent pass's HMM, in
    `<graph>/si_<pass>` (reused when up to date)."""
    _, lang, gcfg = graph_sources(graph.path, f"for the first pass with {si.path.name}")
    out = Path(graph.path) / f"si_{si.path.name}"
    build_graph(lang, si.hmm, out, gcfg, hmm_path=si.path / "final.hmm.json")
    return Graph.load(out)


def best_path_pdfs(gp: GmmPass, graph: Graph, feats: dict[str, np.ndarray],
                   cfg: DecodeConfig) -> dict[str, np.ndarray]:
    """The pdf of each frame [T] on the best path of every utterance decoded with `gp`."""
    utts = c_sorted(feats)
    results, _ = decode_set(graph, utts, lambda u: gp.loglikes(feats[u]),
                            np.zeros(gp.hmm.num_pdfs), cfg)
    return {u: res.pdfs for u, res in results.items() if len(res.pdfs) == len(feats[u])}


def adapt_speakers(gp: GmmPass, feats: dict[str, np.ndarray], utt2spk: dict[str, str],
                   graph: Graph, cfg: DecodeConfig, gcfg: GmmDecodeConfig
                   ) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Each utterance's features [T, D] through its speaker's fMLLR transform, estimated from the
    best paths of `gcfg.adapt_rounds` decodes: the first with the speaker-independent pass on
    `feats`, the others with `gp` on the features transformed by the estimate before -> (adapted
    features, one report per estimate: model, decoded utterances, speakers, gains per frame)."""
    search = dataclasses.replace(cfg, acwt=gcfg.adapt_acwt, word_penalty=0.0, beam_sample_frames=0)
    align_cfg = gp.trained_config()
    si = GmmPass.load(gp.path.parent / SI_PASS[gp.path.name])
    steps = [(si, si_graph(graph, si))] + [(gp, graph)] * (gcfg.adapt_rounds - 1)
    trans: dict[str, np.ndarray] = {}
    reports, current = [], feats
    for r, (model, g) in enumerate(steps, 1):
        pdfs = best_path_pdfs(model, g, current, search)
        per = estimate_set_each(model.gmm, model.hmm, feats, pdfs, utt2spk, align_cfg, init=trans)
        trans = {s: est.w for s, est in per.items()}
        rep = speaker_report(per, align_cfg.fmllr_min_frames,
                             f"{gp.path.name} fMLLR estimate {r} ({model.path.name} best paths)")
        reports.append({"estimate": r, "model": model.path.name, "decoded": len(pdfs), **rep})
        current = transform_set(feats, utt2spk, trans)
    return current, reports
