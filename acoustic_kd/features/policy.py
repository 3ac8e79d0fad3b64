"""The per-utterance failure policy of `features` and `transcribe`: one bad recording is a counted,
listed failure with its reason; the rest of the batch goes on.

`attempt(fn, ...)` turns the errors that mean "this utterance's audio is bad" (`ITEM_ERRORS`) into a
reason; `audio_problem` and `checked_fbank` say why samples [N] or their features cannot be used.
Anything else is a bug and stops the run.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np

from ..errors import DataError
from .fbank import FbankConfig, compute_fbank

# Errors that mean "this utterance's audio is bad" (unreadable, empty, failed pipe, bad samples).
ITEM_ERRORS = (DataError, OSError, RuntimeError, ValueError, EOFError)
T = TypeVar("T")


def attempt(fn: Callable[..., T], *args, **kwargs) -> tuple[T | None, str]:
    """(fn(*args, **kwargs), "") or (None, the one-line reason) when it raises an ITEM_ERRORS."""
    try:
        return fn(*args, **kwargs), ""
    except ITEM_ERRORS as e:
        return None, " ".join(str(e).split())


def audio_problem(x: np.ndarray) -> str:
    """Why samples [N] cannot be used ("" when they can): empty, or NaN/inf values."""
    if x.size == 0:
        return "empty audio (0 samples)"
    if not np.isfinite(x).all():
        return "non-finite audio samples (NaN/inf); fix or remove the recording"
    return ""


def checked_fbank(x: np.ndarray, cfg: FbankConfig) -> tuple[np.ndarray | None, str]:
    """(features [T, D], "") or (None, why they are unusable) for samples [N] at cfg's rate."""
    why = audio_problem(x)
    if why:
        return None, why
    try:
        feats = compute_fbank(x, cfg.sample_rate, cfg)
    except RuntimeError as e:  # kaldi-native-fbank rejects pathological input this way
        return None, f"fbank failed: {e}"
    if feats.shape[0] == 0:
        return None, (f"too short: {x.size} samples is less than one {cfg.frame_length_ms:g} ms "
                      f"frame at {cfg.sample_rate} Hz")
    if not np.isfinite(feats).all():
        return None, "non-finite feature values (NaN/inf)"
    return feats, ""
