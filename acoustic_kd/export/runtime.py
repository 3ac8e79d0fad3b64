"""Load an export directory and transcribe audio with it; no training code, no torch for ONNX.

`load_exported(dir, format)` reads the model file of that format, takes everything else (front
end, CMVN, priors, graph, words, acwt, beam) from the metadata inside it, and returns an
`ExportedModel`:

    feats [T, D] = model.features(samples [N], sample_rate)        # fbank + CMVN
    logp  [T, P] = model.log_posteriors(feats)                     # network output
    ll    [T, P] = model.log_likelihoods(feats)                    # logp - log priors
    hyp          = model.transcribe(samples, sample_rate)          # words + per-word times

The ONNX formats need onnxruntime, numpy, kaldi-native-fbank, kaldifst and kaldi-decoder only;
the TorchScript format imports torch when loaded.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..decode.lattice import confidences, decode_lattice, nbest_paths
from ..decode.search import GraphDecoder, Hypothesis
from ..errors import DataError
from ..model_meta import PRIOR_FLOOR, log_priors
from . import metadata as md
from .frontend import FeaturePipeline

#: File name of each format inside an export directory.
FORMAT_FILES = {"onnx": "model.onnx", "int8": "model.int8.onnx", "torchscript": "model.pt"}


class Backend(Protocol):
    """A network runner: metadata strings and `run(feats [T, D]) -> log posteriors [T, P]`."""

    props: dict[str, str]

    def run(self, feats: np.ndarray) -> np.ndarray: ...


class OnnxBackend:
    """onnxruntime session over `model.onnx` / `model.int8.onnx` (input `feats`, output `log_probs`)."""

    def __init__(self, path: Path, num_threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(num_threads)
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(os.fspath(path), so, providers=["CPUExecutionProvider"])
        self.props = dict(self.session.get_modelmeta().custom_metadata_map)
        self._input = self.session.get_inputs()[0].name

    def run(self, feats: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: feats})[0]


class TorchScriptBackend:
    """`torch.jit.load` of `model.pt`; metadata from its extra files."""

    def __init__(self, path: Path, num_threads: int = 1):
        import torch

        self.num_threads = int(num_threads)
        extra = dict.fromkeys(md.KEYS, "")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is the asked-for format
            self.module = torch.jit.load(os.fspath(path), map_location="cpu", _extra_files=extra)
        self.module.eval()
        self.props = {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in extra.items()}
        self._torch = torch

    def run(self, feats: np.ndarray) -> np.ndarray:
        torch = self._torch
        before = torch.get_num_threads()
        if self.num_threads:  # torch's thread count is process-wide: restore it afterwards
            torch.set_num_threads(self.num_threads)
        try:
            with torch.inference_mode():
                return self.module(torch.from_numpy(feats)).numpy()
        finally:
            torch.set_num_threads(before)


CHUNK_FRAMES = 6000   # frames forwarded at once by `decode_features` (60 s at 10 ms)


class ExportedModel:
    """Front end + network + decoder, all configured from the export's metadata."""

    def __init__(self, backend: Backend, source: str, fmt: str):
        self.backend, self.format, self.source = backend, fmt, source
        self.meta: dict[str, Any] = md.decode(backend.props, source)
        m = self.meta
        self.context: tuple[int, int] = tuple(m["model"]["context"])
        self.num_pdfs = int(m["model"]["num_pdfs"])
        self.frontend = FeaturePipeline(m["features"], m["cmvn"])
        self.sample_rate = self.frontend.sample_rate
        self.frame_shift_s = self.frontend.frame_shift_s
        dec = m["decoding"]
        self.acwt = float(dec["acwt"])
        # normalised and floored exactly as the decode stage does: [P] float64
        self.log_priors = log_priors(m["priors"], float(dec.get("prior_floor", PRIOR_FLOOR)))
        self.words = {int(i): w for i, w in m["words"]}
        self._decoder: GraphDecoder | None = None

    # ------------------------------------------------------------------ acoustics
    def features(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Audio [N] in [-1, 1] -> normalised fbank [T, D] float32 at the model's rate."""
        return self.frontend(samples, sample_rate)

    def log_posteriors(self, feats: np.ndarray) -> np.ndarray:
        """Normalised features [T, D] -> log p(pdf | x) [T, P] float32 (context spliced inside)."""
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        if feats.shape[0] == 0:
            return np.zeros((0, self.num_pdfs), np.float32)
        return self.backend.run(feats)

    def log_likelihoods(self, feats: np.ndarray) -> np.ndarray:
        """Hybrid pseudo log-likelihoods log p(x | pdf) + const = log posteriors - log priors [T, P]."""
        return (self.log_posteriors(feats) - self.log_priors).astype(np.float32)

    # ------------------------------------------------------------------ decoding
    @property
    def decoder(self) -> GraphDecoder:
        """The graph decoder, built on first use (reading the graph takes a moment)."""
        if self._decoder is None:
            m = self.meta
            hmm, dec = m["hmm"], m["decoding"]
            silence = np.zeros(self.num_pdfs, dtype=bool)
            silence[np.asarray(hmm["silence_pdfs"], dtype=np.int64)] = True
            self._decoder = GraphDecoder(md.graph_from_base64(m["graph"]), self.words, silence,
                                         self.frame_shift_s, beam=dec["beam"],
                                         max_active=dec.get("max_active", 7000),
                                         min_active=dec.get("min_active", 20),
                                         align=hmm.get("align_lexicon"))
        return self._decoder

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """Scaled pseudo log-likelihoods acwt·(log p(s|x) − log p(s)) [T, P] float32."""
        # float64 until the end, as the decode stage computes its scores
        return (self.acwt * (self.log_posteriors(feats) - self.log_priors)).astype(np.float32)

    def chunk_scores(self, feats: np.ndarray, chunk_frames: int = CHUNK_FRAMES):
        """`scores(feats)` in consecutive chunks of `chunk_frames` frames, each forwarded with the
        context frames the network needs on either side (so every frame sees the same input as
        in a whole-utterance forward): memory follows the chunk, not the recording."""
        left, right = self.context
        n = len(feats)
        for t0 in range(0, n, chunk_frames):
            t1 = min(n, t0 + chunk_frames)
            a, b = max(0, t0 - left), min(n, t1 + right)
            yield self.scores(feats[a:b])[t0 - a:t1 - a]

    def decode_features(self, feats: np.ndarray, chunk_frames: int = CHUNK_FRAMES) -> Hypothesis:
        """Normalised features [T, D] -> best hypothesis (forwarded and searched in chunks)."""
        return self.decoder.decode_chunks(self.chunk_scores(feats, chunk_frames))

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> Hypothesis:
        """Audio [N] in [-1, 1] at `sample_rate` Hz -> words with per-word times (seconds)."""
        return self.decode_features(self.features(samples, sample_rate))

    def nbest(self, samples: np.ndarray, sample_rate: int, n: int = 10,
              lattice_beam: float = 8.0) -> tuple[Hypothesis, list[dict], list[float]]:
        """Audio -> (1-best, the n best distinct word sequences from a lattice, each
        {"text", "words": [{"word", "start", "end"}], "posterior", "cost"}, and a confidence per
        1-best word; see `acoustic_kd.decode.lattice`)."""
        feats = self.features(samples, sample_rate)
        scores = (self.acwt * (self.log_posteriors(feats) - self.log_priors)).astype(np.float32)
        dec = self.decoder
        hyp = dec.decode(scores)
        lat, final = decode_lattice(dec.graph, scores, self.meta["decoding"]["beam"], lattice_beam)
        sil = set(int(p) for p in self.meta["hmm"]["silence_pdfs"])
        paths = nbest_paths(lat, n, dec.align, sil, partial=not final) if lat is not None else []
        fs = self.frame_shift_s
        entries = [{"text": " ".join(self.words.get(w, f"<{w}>") for w in p.word_ids),
                    "words": [{"word": self.words.get(w, f"<{w}>"), "start": round(a * fs, 3),
                               "end": round(b * fs, 3)} for w, (a, b) in zip(p.word_ids, p.frames)],
                    "posterior": p.posterior, "cost": p.cost} for p in paths]
        return hyp, entries, confidences(paths)


def load_exported(directory: str | os.PathLike, format: str = "onnx",
                  num_threads: int = 1) -> ExportedModel:
    """Load `directory/<model file of format>`; format is onnx | int8 | torchscript.

    `num_threads`: threads of one forward pass (0 = the runtime's default, all cores). One is
    the default because per-utterance matrices are small: intra-op threads barely help them and,
    on a busy machine, spinning thread pools slow them down by orders of magnitude; run several
    processes for throughput instead.
    """
    if format not in FORMAT_FILES:
        raise DataError(directory, f"unknown export format {format!r}",
                        f"use one of {', '.join(FORMAT_FILES)}")
    path = Path(directory) / FORMAT_FILES[format]
    if not path.exists():
        raise DataError(path, "model file does not exist",
                        "point --model at a directory written by `acoustic-kd export`")
    try:
        backend = TorchScriptBackend(path, num_threads) if format == "torchscript" else \
            OnnxBackend(path, num_threads)
    except ImportError:
        raise
    except Exception as e:  # onnxruntime's InvalidProtobuf / Fail, torch's RuntimeError, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DataError(path, f"cannot load the model, the file is truncated or corrupt ({first})",
                        "re-export it: acoustic-kd export ... --out "
                        f"{Path(directory)} --force") from None
    return ExportedModel(backend, str(path), format)
