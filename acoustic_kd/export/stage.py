"""The `export` stage on disk: a checkpoint, a graph and the tuned decoding settings in, one
self-describing export directory out (`writer.export`).

`ExportJob` is one `acoustic-kd export` run: `stage()` is its contract (checkpoint, graph, HMM,
words, priors, CMVN data and the tune.json / decode.json the settings come from in; OUT out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config_types import convert_scalar
from ..decode.decoder import DecodeConfig
from ..decode.graph import graph_pdfs, graph_variant
from ..decode.stage import tuned_values
from ..errors import ConfigError
from ..plan import search_plan
from ..stage import Stage, feature_inputs
from .writer import export


@dataclass
class ExportJob:
    """One export: the options of `acoustic-kd export` by name. `acwt` is a number or a decode's
    tune.json / decode.json (acwt, word penalty and a tuned transition scale are read from it)."""

    checkpoint: str
    graph: str
    out: str
    data: str | None = None
    hmm: str | None = None
    words: str | None = None
    priors: str | None = None
    acwt: str = "0.1"
    word_penalty: float | None = None
    beam: float | None = None         # None: plan.search_plan of the graph's pdf count, as decode's
    max_active: int | None = None
    force: bool = False

    def settings(self) -> dict:
        """{acwt, word_penalty, transition_scale (None unless tuned)}; --word-penalty wins."""
        try:
            float(self.acwt)
        except ValueError:
            if not Path(self.acwt).is_file():
                raise ConfigError(f"--acwt {self.acwt!r} is neither a number nor a file") from None
            acwt, penalty, scale = tuned_values(self.acwt)
        else:
            acwt, penalty, scale = _number_acwt(self.acwt), 0.0, None
        if self.word_penalty is not None:
            penalty = self.word_penalty
        return {"acwt": acwt, "word_penalty": penalty, "transition_scale": scale, **self.search()}

    def search(self) -> dict:
        """{beam, max_active}: as given, else planned from the graph's pdf count (as decode's)."""
        if self.beam is not None and self.max_active is not None:
            return {"beam": self.beam, "max_active": self.max_active}
        plan = search_plan(graph_pdfs(self.graph))
        return {"beam": plan.beam if self.beam is None else self.beam,
                "max_active": plan.max_active if self.max_active is None else self.max_active}

    def graph_dir(self, settings: dict) -> str:
        """The graph exported: GRAPH, or its variant at the transition scale tuned on dev."""
        scale = settings["transition_scale"]
        return self.graph if scale is None else str(graph_variant(self.graph, scale))

    def stage(self, settings: dict) -> Stage:
        """The export stage: checkpoint, graph, HMM, words, priors, CMVN data and the tuned
        decoding settings in; OUT out."""
        g = Path(self.graph_dir(settings))
        info = json.loads((g / "graph.json").read_text()) if (g / "graph.json").exists() else {}
        acwt_file = self.acwt if Path(self.acwt).is_file() else None   # a tune.json / decode.json
        inputs = [self.checkpoint, *(g / n for n in ("HCLG.fst", "words.txt", "graph.json")),
                  self.hmm, self.words, self.priors, acwt_file]
        inputs = [p for p in inputs if p is not None and Path(p).exists()]
        if not self.hmm and info.get("hmm"):   # the HMM the graph records (by the path written there)
            inputs.append((g / "graph.json", "hmm", Path(info["hmm"])))
        if self.data:
            inputs += feature_inputs(self.data, "utt2spk")
        return Stage("export", self.out, {**settings,
                                          "cmvn_data": bool(self.data), "priors": bool(self.priors)},
                     inputs=inputs, code=__name__, outputs=[Path(self.out)], marker="",
                     resumable=False)

    def run(self) -> bool:
        """Export (False: OUT is up to date, nothing done)."""
        settings = self.settings()
        st = self.stage(settings)
        if not st.begin(self.force):
            return False
        stats = check = None
        if self.data:
            from ..features.featureset import FeatureSet

            feats = FeatureSet(self.data, cmvn="global")
            stats = feats.global_cmvn_stats()
            check = np.concatenate([feats[u] for u in feats.utts[:5]])  # compare on real features
        priors = np.loadtxt(self.priors, dtype=np.float64, ndmin=1) if self.priors else None
        export(self.checkpoint, self.out, self.graph_dir(settings), self.words, stats,
               settings["acwt"], settings["beam"], self.hmm,
               {"cmvn_data": self.data, "priors_file": self.priors},
               word_penalty=settings["word_penalty"], max_active=settings["max_active"], priors=priors,
               check_feats=check)
        st.finish()
        return True


def _number_acwt(text: str) -> float:
    """--acwt given as a number, range-checked as decode's acwt (a ConfigError if out of range)."""
    try:
        return convert_scalar(float, text, DecodeConfig.__dataclass_fields__["acwt"].metadata)
    except ValueError as e:
        raise ConfigError(f"--acwt {text}: expected {e} (or a tune.json / decode.json)") from None
