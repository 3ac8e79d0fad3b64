"""Shared test fixtures: the real-speech corpora beside the checkout, tiny generated audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPORA = REPO.parent / "shared" / "corpora"


def corpus_path(name: str) -> Path:
    """Path of a corpus under ../shared/corpora, or skip the test when it is absent."""
    p = SHARED_CORPORA / name
    if not p.exists():
        pytest.skip(f"{p} not present (real-speech corpora live in ../shared/corpora)")
    return p


@pytest.fixture
def shared_corpora() -> Path:
    if not SHARED_CORPORA.exists():
        pytest.skip(f"{SHARED_CORPORA} not present")
    return SHARED_CORPORA


@pytest.fixture
def fsdd_dir() -> Path:
    return corpus_path("fsdd")


@pytest.fixture
def yesno_dir() -> Path:
    return corpus_path("yesno")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine threads wait on each other."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
