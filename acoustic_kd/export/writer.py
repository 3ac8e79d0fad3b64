"""Write an export directory from a checkpoint: TorchScript, ONNX and int8 ONNX, metadata inside.

    out_dir/model.pt           TorchScript, metadata in `_extra_files`
    out_dir/model.onnx         ONNX (opset >= 17, dynamic frame axis), metadata in `metadata_props`
    out_dir/model.int8.onnx    onnxruntime dynamic int8 quantisation of model.onnx, same metadata
    out_dir/export.json        summary (sizes, fp32/int8 deviation from the checkpoint, provenance)
    out_dir/README.txt         the same for people, with how to run it

Every model maps CMVN'd features [T, D] -> log posteriors [T, P]: the context window
(edge frames replicated, as in training) is built inside the network, so deployment code only
subtracts log priors and decodes. Log posteriors rather than prior-corrected likelihoods are the
output so the priors and acoustic scale stay tunable without re-exporting.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from .. import __version__
from ..decode.graph import read_word_ids, with_word_penalty
from ..errors import DataError
from ..features.fbank import INT16_SCALE
from ..hmm import HmmModel
from ..model_meta import PRIOR_FLOOR, CheckpointMeta
from ..nnet.checkpoint import load_checkpoint
from ..nnet.infer import log_posteriors as torch_log_posteriors
from ..nnet.models import count_params, macs_per_frame
from ..outdir import staged_dir
from ..utils import atomic_write_json, get_logger, git_revision, versions
from . import metadata as md
from .readme import render_readme
from .runtime import FORMAT_FILES, load_exported

log = get_logger(__name__)

#: Checkpoint meta keys already carried elsewhere in the metadata (kept out of provenance).
_CARRIED = ("priors", "feature_config", "model_config", "context", "cmvn_stats",
            "global_cmvn_stats")


class SplicedLogPosteriors(nn.Module):
    """feats [T, D] -> log posteriors [T, P]: edge-replicated context window, frame model, log-softmax."""

    def __init__(self, model: nn.Module, left: int, right: int):
        super().__init__()
        self.model = model
        self.left, self.right = int(left), int(right)
        self.register_buffer("offsets", torch.arange(left + 1 + right).unsqueeze(0), persistent=False)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        parts = [feats]
        if self.left > 0:
            parts.insert(0, feats[:1].expand(self.left, -1))
        if self.right > 0:
            parts.append(feats[-1:].expand(self.right, -1))
        padded = torch.cat(parts, 0)                                  # [T + L + R, D]
        idx = torch.arange(feats.shape[0], device=feats.device).unsqueeze(1) + self.offsets
        return torch.log_softmax(self.model(padded[idx]), dim=-1)     # windows [T, L+1+R, D]


def write_onnx(module: nn.Module, input_dim: int, path: Path, props: dict[str, str],
               opset: int = 17) -> None:
    """Export `module` (feats [T, D] -> [T, P]) to ONNX with a dynamic T and `props` as metadata."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its deprecation
        torch.onnx.export(module, (torch.randn(16, input_dim),), buf, dynamo=False,
                          input_names=["feats"], output_names=["log_probs"], opset_version=opset,
                          dynamic_axes={"feats": {0: "frames"}, "log_probs": {0: "frames"}})
    proto = onnx.load_from_string(buf.getvalue())
    set_onnx_metadata(proto, props)
    onnx.save(proto, os.fspath(path))


def set_onnx_metadata(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace the model's metadata_props with `props`."""
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)


def write_int8(fp32_path: Path, path: Path, props: dict[str, str]) -> None:
    """Dynamic int8 quantisation (weights int8, activations quantised on the fly), same metadata.

    Weights use a 7-bit range (`reduce_range`): x86 CPUs without VNNI multiply u8 activations by
    s8 weights with 16-bit saturating adds, and full 8-bit weights overflow them (on an AVX2-only
    CPU the tone test's int8 model then decoded a wrong word sequence); 7 bits cannot overflow on any
    CPU, so one exported model is right wherever it is deployed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" advice on every call
    try:
        quantize_dynamic(os.fspath(fp32_path), os.fspath(path), weight_type=QuantType.QInt8,
                         reduce_range=True)
    finally:
        logging.getLogger().setLevel(quiet)
    proto = onnx.load(os.fspath(path))
    set_onnx_metadata(proto, props)
    onnx.save(proto, os.fspath(path))


def write_torchscript(model: nn.Module, left: int, right: int, input_dim: int, path: Path,
                      props: dict[str, str]) -> None:
    """Trace the frame model, script the splicing wrapper around it, save with extra files."""
    example = torch.randn(8, left + 1 + right, input_dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example)
        scripted = torch.jit.script(SplicedLogPosteriors(traced, left, right))
    scripted.save(os.fspath(path), _extra_files=props)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_provenance(checkpoint: Path, meta: dict, extra: dict | None) -> dict[str, Any]:
    """Where the model came from: checkpoint (+ hash), training meta, distillation settings."""
    ckpt_meta = {k: v for k, v in meta.items() if k not in _CARRIED}

    distill = meta.get("distill") or {}  # the distillation config of a distilled student

    def first(*names):
        found = [d[n] for d in (meta, distill) for n in names if d.get(n) is not None]
        return found[0] if found else None

    prov = {
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_sha256": _file_sha256(checkpoint),
        "teachers": first("teachers", "teacher_ids", "members", "teacher_checkpoints"),
        "temperature": first("T", "temperature"),
        "alpha": first("alpha"),
        "data": first("data", "train_data", "transfer_set"),
        "git_revision": first("git_revision"),
        "export_git_revision": git_revision(),
        "exported_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + " UTC",
        "checkpoint_meta": ckpt_meta,
    }
    prov.update(extra or {})
    return json.loads(json.dumps(prov, default=str))  # JSON-safe (paths, numpy scalars)


def _stored_stats(meta: dict) -> Any:
    """Global CMVN stats a checkpoint carries for deployment (training stages name them either way)."""
    return next((meta[k] for k in ("cmvn_stats", "global_cmvn_stats") if meta.get(k) is not None), None)


def _cmvn_meta(meta: dict, cmvn_stats: np.ndarray | None, dim: int) -> dict:
    """Deployment CMVN: per-utterance or none as trained; otherwise global stats."""
    typed = CheckpointMeta.from_dict(meta)
    mode, norm_vars = typed.cmvn, typed.norm_vars
    if mode == "none":
        return {"mode": "none", "norm_vars": False, "stats": None, "training_mode": mode}
    if mode == "utterance":  # deployable as is: each input normalises itself
        return {"mode": "utterance", "norm_vars": norm_vars, "stats": None, "training_mode": mode}
    if cmvn_stats is None:
        raise DataError(None, f"the model was trained with {mode} CMVN but no global CMVN stats "
                        "were given", "pass --data DIR (its features give the global stats)")
    if mode == "speaker":
        log.warning("the model was trained with per-speaker CMVN; the export normalises with global "
                    "stats (no speaker is known at deployment), so its scores differ slightly from "
                    "the decode stage's. Train with cmvn: global for identical results.")
    stats = np.asarray(cmvn_stats, dtype=np.float64)
    if stats.shape != (2, dim + 1):
        raise DataError(None, f"CMVN stats of shape {stats.shape} do not match feature dim {dim}",
                        "compute them from features made with the model's fbank config")
    return {"mode": "global", "norm_vars": norm_vars, "stats": stats.tolist(), "training_mode": mode}


def _graph_meta(graph_path: Path, words: Path, hmm: HmmModel, word_penalty: float
                ) -> tuple[str, list, list[int], dict | None]:
    """(base64 graph with the word penalty baked in, [[id, word]], silence pdfs, the align lexicon
    of a determinized graph (its word times come from it) or None)."""
    graph_b64 = md.read_graph_file(graph_path)
    if word_penalty:
        graph_b64 = md.graph_to_base64(with_word_penalty(md.graph_from_base64(graph_b64),
                                                         word_penalty))
    info_path = graph_path.parent / "graph.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    built = (info.get("config") or {}).get("context", hmm.context)
    if built != hmm.context and not hmm.context_free:
        raise DataError(info_path, f"the graph was built with {built} context but the HMM is "
                        f"{hmm.context}", "export with the HMM the graph was built from (--hmm), "
                        "or rebuild the graph from this HMM (acoustic-kd mkgraph --model ...)")
    silence = info.get("silence_pdfs") or np.flatnonzero(
        hmm.pdf_to_phone == hmm.phone_id.get(hmm.silence_phone, -1)).tolist()
    words_list = sorted([i, w] for w, i in read_word_ids(words).items())
    align_path = graph_path.parent / "align_lexicon.json"
    align = json.loads(align_path.read_text()) if info.get("determinized") and align_path.exists() \
        else None
    return graph_b64, words_list, [int(p) for p in silence], align


def build_metadata(checkpoint: Path, model: nn.Module, meta: dict, graph_path: Path, words: Path,
                   hmm_json: Path, cmvn_stats: np.ndarray | None, priors: np.ndarray | None,
                   decoding: dict[str, float], provenance: dict | None) -> dict[str, Any]:
    """The metadata dict (see `metadata.KEYS`) of one export, checked for consistency."""
    left, right = (int(c) for c in meta.get("context", model.config.context))
    dim, num_pdfs = int(meta["input_dim"]), int(meta["num_pdfs"])
    hmm = HmmModel.load(hmm_json)
    if hmm.num_pdfs != num_pdfs:
        raise DataError(hmm_json, f"HMM has {hmm.num_pdfs} pdfs but the model outputs {num_pdfs}",
                        "export the model with the HMM its alignments came from")
    priors = np.asarray(meta.get("priors") if priors is None else priors, dtype=np.float64)
    if priors.shape != (num_pdfs,):
        raise DataError(checkpoint, f"priors have shape {priors.shape}, expected ({num_pdfs},)",
                        "pass --priors exp/tri/ali_train/priors.txt")
    if not meta.get("feature_config"):
        raise DataError(checkpoint, "checkpoint has no feature_config",
                        "train on features made by `acoustic-kd features` (they record fbank.json)")
    graph_b64, words_list, silence, align = _graph_meta(graph_path, words, hmm,
                                                        decoding["word_penalty"])
    return {
        "format": {"name": md.FORMAT_NAME, "version": md.FORMAT_VERSION},
        "model": {"output": "log_posteriors", "num_pdfs": num_pdfs, "input_dim": dim,
                  "context": [left, right], "arch": meta.get("model_config"),
                  "params": count_params(model), "macs_per_frame": macs_per_frame(model)},
        "features": {"fbank": meta["feature_config"], "waveform_scale": INT16_SCALE},
        "cmvn": _cmvn_meta(meta, _stored_stats(meta) if cmvn_stats is None else cmvn_stats, dim),
        "priors": priors.tolist(),
        "hmm": {"phones": hmm.phones, "context": hmm.context,
                "pdf_to_phone": hmm.pdf_to_phone.tolist(), "pdf_to_state": hmm.pdf_to_state.tolist(),
                "silence_phones": [hmm.silence_phone], "silence_pdfs": silence,
                "source": str(hmm_json),
                **({"align_lexicon": align} if align is not None else {})},
        "decoding": {**decoding, "prior_floor": PRIOR_FLOOR, "graph": str(graph_path)},
        "graph": graph_b64,
        "words": words_list,
        "provenance": build_provenance(checkpoint, meta, provenance),
        "version": {"acoustic_kd": __version__, **versions()},
    }


def default_hmm(graph_path: Path) -> Path:
    """The HMM a graph was built from: recorded in its graph.json by `mkgraph` (also for the
    transition-scale variants in graph/ts<scale>/) when found from here, else the exp dir's
    final.hmm.json."""
    info = graph_path.parent / "graph.json"
    recorded = json.loads(info.read_text()).get("hmm") if info.exists() else None
    if recorded and Path(recorded).exists():
        return Path(recorded)
    return graph_path.parent.parent / "final.hmm.json"


def export(checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
           graph_dir: str | os.PathLike, words: str | os.PathLike | None = None,
           cmvn_stats: np.ndarray | None = None, acwt: float = 0.1, beam: float = 15.0,
           hmm_json: str | os.PathLike | None = None, provenance: dict | None = None, *,
           word_penalty: float = 0.0, max_active: int = 7000, min_active: int = 20,
           priors: np.ndarray | None = None, opset: int = 17,
           check_feats: np.ndarray | None = None) -> dict[str, Any]:
    """Export `checkpoint` with the decoding graph of `graph_dir` into `out_dir`; returns the summary.

    words: words.txt (default graph_dir/words.txt). cmvn_stats: global [2, D+1] stats applied at
    deployment (default: the global stats stored in the checkpoint). hmm_json: the HmmModel (default
    the one graph.json records, else graph_dir/../final.hmm.json). word_penalty is baked into the graph. priors [P]: overrides the
    checkpoint's priors (as `decode --priors`). check_feats [T, D]: CMVN'd features on which the
    exports are compared with the checkpoint (default: 300 random frames). The files are made in a
    temporary sibling and moved into `out_dir` only when all are written (a failed export leaves no
    partial file there; other files in `out_dir` stay).
    """
    checkpoint, graph_dir, out_dir = Path(checkpoint), Path(graph_dir), Path(out_dir)
    model, meta = load_checkpoint(checkpoint)
    graph_path = graph_dir if graph_dir.is_file() else graph_dir / "HCLG.fst"
    decoding = {"acwt": float(acwt), "beam": float(beam), "max_active": int(max_active),
                "min_active": int(min_active), "word_penalty": float(word_penalty)}
    meta_out = build_metadata(
        checkpoint, model, meta, graph_path, Path(words) if words else graph_path.parent / "words.txt",
        Path(hmm_json) if hmm_json else default_hmm(graph_path),
        cmvn_stats, priors, decoding, provenance)
    props = md.encode(meta_out)
    left, right = meta_out["model"]["context"]
    dim = meta_out["model"]["input_dim"]
    with staged_dir(out_dir) as tmp:
        write_torchscript(model, left, right, dim, tmp / FORMAT_FILES["torchscript"], props)
        write_onnx(SplicedLogPosteriors(model, left, right).eval(), dim,
                   tmp / FORMAT_FILES["onnx"], props, opset)
        write_int8(tmp / FORMAT_FILES["onnx"], tmp / FORMAT_FILES["int8"], props)
        feats = check_feats if check_feats is not None else \
            np.random.default_rng(0).standard_normal((300, dim)).astype(np.float32)
        summary = {"files": {f: (tmp / name).stat().st_size for f, name in FORMAT_FILES.items()},
                   "max_abs_diff_log_prob": check_exports(tmp, model, (left, right), feats),
                   "model": meta_out["model"], "decoding": meta_out["decoding"],
                   "cmvn": {k: v for k, v in meta_out["cmvn"].items() if k != "stats"},
                   "graph_bytes": len(meta_out["graph"]) * 3 // 4,
                   "num_words": len(meta_out["words"]),
                   "provenance": meta_out["provenance"], "version": meta_out["version"]}
        atomic_write_json(tmp / "export.json", summary)
        (tmp / "README.txt").write_text(render_readme(summary, str(out_dir)), encoding="utf-8")
    for fmt, diff in summary["max_abs_diff_log_prob"].items():
        log.info("export %s: %s %.1f kB, max |d log p| vs checkpoint %.2e", out_dir, fmt,
                 summary["files"][fmt] / 1024, diff)
    if max(summary["max_abs_diff_log_prob"][f] for f in ("onnx", "torchscript")) > 1e-3:
        log.warning("fp32 exports deviate from the checkpoint by more than 1e-3: check the model")
    return summary


def check_exports(directory: Path, model: nn.Module, context: tuple[int, int],
                  feats: np.ndarray) -> dict[str, float]:
    """Max |log p_export - log p_checkpoint| over `feats` [T, D] for every format in `directory`."""
    ref = torch_log_posteriors(model, feats, context)
    out = {}
    for fmt in FORMAT_FILES:
        got = load_exported(directory, fmt).log_posteriors(feats)
        out[fmt] = float(np.abs(got - ref).max())
    return out
