"""What an export carries inside its model files: key names, JSON encoding, the embedded graph.

Every value is a JSON string so the same dict goes into ONNX `metadata_props` and TorchScript
`_extra_files`. The decoding graph (HCLG, ilabel = pdf + 1, olabel = word id) is stored as the
base64 of OpenFst's binary form as written by kaldifst. No torch here: the runtime reads this.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from typing import Any

import kaldifst

from ..errors import DataError

#: Bumped when the meaning of a key changes; loaders refuse versions they do not know.
FORMAT_VERSION = 1
FORMAT_NAME = "acoustic_kd.export"

#: Every key an export carries (each a JSON string). What each holds:
#:   format      {"name", "version"} of this layout
#:   model       {"output": "log_posteriors", "num_pdfs", "input_dim", "context": [L, R], "arch",
#:               "params", "macs_per_frame"}; the network input is CMVN'd fbank [T, D], output [T, P]
#:   features    {"fbank": FbankConfig fields, "waveform_scale"}: samples in [-1, 1] are multiplied
#:               by waveform_scale before fbank (Kaldi works on the int16 range)
#:   cmvn        {"mode": "global" | "none", "norm_vars", "stats": [2, D+1] Kaldi layout}
#:   priors      pdf priors [P] (normalised counts from the training alignments)
#:   hmm         {"phones": [...], "context" (the trees' convention, word-internal | cross-word;
#:               the graph matches it), "pdf_to_phone": [P], "pdf_to_state": [P], "silence_phones",
#:               "silence_pdfs", "align_lexicon" (a determinized graph: pdf chains for word times)}
#:   decoding    {"acwt", "beam", "max_active", "min_active", "prior_floor"}
#:   graph       base64 of the binary HCLG
#:   words       [[id, word], ...] (words.txt)
#:   provenance  checkpoint, teachers, temperature, alpha, data, git revisions, training config
#:   version     acoustic_kd and library versions at export time
KEYS = ("format", "model", "features", "cmvn", "priors", "hmm", "decoding", "graph", "words",
        "provenance", "version")


def encode(meta: dict[str, Any]) -> dict[str, str]:
    """Turn the metadata dict (values JSON-able; `graph` already a base64 str) into JSON strings."""
    missing = [k for k in KEYS if k not in meta]
    if missing:
        raise ValueError(f"export metadata lacks {missing}")
    return {k: json.dumps(meta[k], sort_keys=True, separators=(",", ":")) for k in KEYS}


def decode(props: dict[str, str], source: str) -> dict[str, Any]:
    """Parse the JSON strings read from a model file; `source` names the file in errors."""
    missing = [k for k in KEYS if k not in props or props[k] in ("", b"")]
    if missing:
        raise DataError(source, f"not an acoustic_kd export: metadata keys {missing} are missing",
                        "re-export the model with `acoustic-kd export`")
    meta = {k: json.loads(props[k]) for k in KEYS}
    fmt = meta["format"]
    if fmt.get("name") != FORMAT_NAME or int(fmt.get("version", -1)) > FORMAT_VERSION:
        raise DataError(source, f"export format {fmt} is not readable by this version "
                        f"(reads {FORMAT_NAME} <= {FORMAT_VERSION})", "upgrade acoustic_kd or re-export")
    return meta


def graph_to_base64(fst: kaldifst.StdVectorFst) -> str:
    """Serialise an FST to base64 text (OpenFst binary written through a temporary file)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "graph.fst")
        if not fst.write(path):
            raise RuntimeError("kaldifst could not write the decoding graph")
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode("ascii")


def graph_from_base64(text: str) -> kaldifst.StdVectorFst:
    """Inverse of `graph_to_base64`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "graph.fst")
        with open(path, "wb") as f:
            f.write(base64.b64decode(text))
        return kaldifst.StdVectorFst.read(path)


def read_graph_file(path: str | os.PathLike) -> str:
    """Base64 of a graph file on disk (vector or const FST), checked to be readable."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(path, "decoding graph does not exist", "build it with the decode stage first")
    fst = kaldifst.StdVectorFst.read(path)
    if fst is None or fst.num_states == 0:
        raise DataError(path, "decoding graph is empty or unreadable", "rebuild the graph")
    return graph_to_base64(fst)
