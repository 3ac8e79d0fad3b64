"""Shared test fixtures: the real-speech corpora beside the checkout, a generated synth_digits
corpus (needs nothing outside the repo), tiny generated audio.

Tests that need ../shared/corpora take the `fsdd_dir`, `yesno_dir` or `shared_corpora` fixture (or
call `corpus_path`) and are marked `corpus`. Where ../shared is absent they skip, naming the path,
except under CI (CI=true), where a missing ../shared is an error: CI must run them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPORA = REPO.parent / "shared" / "corpora"


CORPUS_FIXTURES = ("fsdd_dir", "yesno_dir", "shared_corpora")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def corpus_path(name: str = "") -> Path:
    """Path of a corpus under ../shared/corpora (or the folder itself); when absent, skip the
    test, or fail it under CI=true."""
    p = SHARED_CORPORA / name if name else SHARED_CORPORA
    if not p.exists():
        why = f"{p} not present (real-speech corpora live in ../shared/corpora)"
        if in_ci():
            pytest.fail(f"CI=true but {why}: CI runs the tests that need it", pytrace=False)
        pytest.skip(why)
    return p


def pytest_collection_modifyitems(config, items):
    """Every test that uses a real-speech corpus fixture is marked `corpus` (-m 'not corpus')."""
    for item in items:
        if set(CORPUS_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.corpus)


def run_recipe(recipe: str, work: Path, args: list[str], timeout: int = 1200) -> str:
    """bash recipes/<recipe>/run.sh ARGS with this Python's tools first on PATH; the log lands in
    work/run.log; a failure shows its end. Returns stdout."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               OMP_NUM_THREADS="1")
    res = subprocess.run(["bash", str(REPO / "recipes" / recipe / "run.sh"), *args], env=env,
                         capture_output=True, text=True, timeout=timeout)
    (work / "run.log").write_text(res.stdout + res.stderr)
    assert res.returncode == 0, f"recipe failed; log in {work / 'run.log'}:\n{res.stderr[-3000:]}"
    return res.stdout


def decoded_wer(exp: Path, system: str, s: str = "test") -> float:
    """WER % of exp/decode/<system>_<s>; a missing or PARTIAL score fails the test."""
    from acoustic_kd.report import parse_wer_file

    w = parse_wer_file(exp / "decode" / f"{system}_{s}" / "wer")
    assert w is not None, f"no WER for {system}_{s}"
    assert not w[1], f"{system}_{s} is PARTIAL"
    return w[0]


@pytest.fixture
def shared_corpora() -> Path:
    return corpus_path()


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    return corpus_path("fsdd")


@pytest.fixture(scope="session")
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


# A tiny synth_digits corpus (acoustic_kd.corpora.synth_digits: espeak-ng voices + noise), made
# from the seed alone, so every run of every machine tests the same audio without ../shared.
SYNTH_TINY = dict(seed=0, num_train=14, num_dev=3, num_test=3, sample_rate=8000, min_words=3,
                  babble_pool=4)


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    """SYNTH_TINY generated once per session: {train,dev,test}/ data dirs (8 kHz audio) and
    local/lexicon.txt. Tests copy what they change."""
    from acoustic_kd.corpora.synth_digits import prepare_synth_digits

    root = tmp_path_factory.mktemp("synth_corpus")
    prepare_synth_digits(root, **SYNTH_TINY)
    return root


# A tiny pipeline on the first training utterances of synth_corpus (test_robustness, test_outdir).
NUM_UTTS = 8
SMALL_ALIGN = ["--mono-iters", "2", "--tri-iters", "1", "--mono-gauss", "20", "--tri-gauss", "20",
               "--tri-leaves", "20", "--tree-min-count", "5"]
SMALL_TRAIN = ["--hidden", "16", "--layers", "1", "--context", "2", "2", "--epochs", "1",
               "--batch-size", "128", "--warmup-steps", "2", "--seed", "7"]


def make_data_dir(corpus: Path, d: Path, n: int = NUM_UTTS) -> Path:
    """A Kaldi data dir of the first `n` training utterances of the generated corpus."""
    from acoustic_kd.utils import read_table

    d.mkdir(parents=True, exist_ok=True)
    src = corpus / "train"
    tables = {name: {u: v for u, v, _ in read_table(src / name)} for name in ("wav.scp", "text", "utt2spk")}
    keep = sorted(tables["text"])[:n]
    for name, rows in tables.items():
        (d / name).write_text("".join(f"{u} {rows[u]}\n" for u in keep))
    spk2utt: dict[str, list[str]] = {}
    for u in keep:
        spk2utt.setdefault(tables["utt2spk"][u], []).append(u)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))
    return d


def build_pipeline(corpus: Path, root: Path) -> dict[str, Path]:
    """features -> lang -> align -> mkgraph -> train (1 epoch) on a tiny generated set, in process."""
    from acoustic_kd.cli import main

    d = make_data_dir(corpus, root / "data")
    p = {"data": d, "lang": root / "lang", "exp": root / "exp", "graph": root / "graph",
         "model": root / "m1"}
    assert main(["features", "--data", str(d), "--sample-rate", "8000"]) == 0
    assert main(["lang", "--data", str(d), "--lexicon", str(corpus / "local" / "lexicon.txt"),
                 "--out", str(p["lang"])]) == 0
    assert main(["align", "--data", str(d), "--lang", str(p["lang"]), "--exp", str(p["exp"]),
                 *SMALL_ALIGN]) == 0
    p["ali"] = p["exp"] / "tri" / "ali_data"
    assert main(["mkgraph", "--lang", str(p["lang"]), "--model", str(p["exp"] / "tri" / "final.hmm.json"),
                 "--out", str(p["graph"])]) == 0
    assert main(["train", "--train-data", str(d), "--train-ali", str(p["ali"]), "--out", str(p["model"]),
                 *SMALL_TRAIN]) == 0
    return p


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, synth_corpus):
    """build_pipeline on the generated corpus once per session (tests copy what they change)."""
    p = build_pipeline(synth_corpus, tmp_path_factory.mktemp("pipeline"))
    p["corpus"] = synth_corpus
    return p
