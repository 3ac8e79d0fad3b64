"""Export a trained acoustic model for deployment and run it without the training code.

`export(...)` (torch side, `writer.py`) writes one self-describing directory; `load_exported(dir,
format)` (`runtime.py`, no torch for the ONNX formats) loads it and transcribes audio. `stage.py`
(ExportJob) is the `acoustic-kd export` step.
"""

from __future__ import annotations

import importlib

from ..decode.search import Hypothesis, WordSpan
from .runtime import FORMAT_FILES, ExportedModel, load_exported

__all__ = ["export", "load_exported", "ExportedModel", "Hypothesis", "WordSpan", "FORMAT_FILES"]


def __getattr__(name: str):
    # the writer needs torch; import it only when asked so the runtime stays torch-free
    if name == "export":
        return importlib.import_module(f"{__name__}.writer").export
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
