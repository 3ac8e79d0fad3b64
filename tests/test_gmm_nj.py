"""`acoustic-kd align --nj N`: the GMM passes split over jobs of whole speakers give what one job
gives. Alignments and trees are identical; model parameters agree up to the order in which the
jobs' statistics are summed (float64 rounding, ~1e-16 per addition, grown through the EM
iterations to ~1e-13 relative here), hence rtol 1e-8: far below what any real difference (a frame
counted twice, a part left out) moves them (>1e-4)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from test_gmm import _tiny_align_args
from test_slurm_backend import slurm  # noqa: F401 - the fixture: skips without a responding Slurm

from acoustic_kd.ali import read_alignments
from acoustic_kd.cli import main
from acoustic_kd.gmm.fmllr import load_transforms
from acoustic_kd.gmm.parallel import merge_context_stats, open_parts, split_speakers
from acoustic_kd.gmm.run import PASSES, front_end
from acoustic_kd.gmm.tree import context_stats
from acoustic_kd.hmm import HmmModel
from acoustic_kd.lang.langdir import load_lang

RTOL, ATOL = 1e-8, 1e-10

TRI2 = ["--tri2-iters", "4", "--tri2-realign-iters", "2", "--mllt-iters", "1", "3",
        "--tri2-leaves", "90", "--tri2-gauss", "120", "--lda-dim", "20"]
TRI3 = ["--tri3-iters", "4", "--tri3-realign-iters", "2", "--fmllr-iters", "1", "3",
        "--fmllr-min-frames", "100"]


@pytest.fixture
def job_env(monkeypatch) -> None:
    """Worker jobs import this checkout."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))


def test_split_keeps_speakers_whole_balances_frames_and_is_deterministic():
    sizes = {"a": (6, 100), "b": (5, 50), "c": (4, 40), "d": (3, 10)}   # utterances, frames each
    frames = {f"{s}_{i:02d}": n for s, (k, n) in sizes.items() for i in range(k)}
    u2s = {u: u.split("_")[0] for u in frames}
    parts = split_speakers(frames, u2s, 2)
    assert parts == split_speakers(dict(reversed(list(frames.items()))), u2s, 2)
    assert sorted(u for p in parts for u in p) == sorted(frames)
    assert all(p == sorted(p) for p in parts)
    spk = [{u2s[u] for u in p} for p in parts]
    assert not spk[0] & spk[1]                       # a speaker lives in one part
    load = [sum(frames[u] for u in p) for p in parts]
    assert spk[0] == {"a"} and load == [600, 250 + 160 + 30]   # largest first, to the lighter
    assert len(split_speakers(frames, u2s, 9)) == 4  # never more parts than speakers
    assert split_speakers(frames, {}, 3)[0][0] == "a_00"   # no utt2spk: one speaker per utterance


def test_merged_tree_statistics_equal_one_sum(rng):
    info = np.stack([rng.integers(0, 5, 300), rng.integers(1, 5, 300), rng.integers(0, 5, 300),
                     rng.integers(0, 3, 300)], axis=1)
    x = rng.standard_normal((300, 4)).astype(np.float32)
    whole = context_stats(info, x, 5)
    parts = merge_context_stats([context_stats(info[:120], x[:120], 5),
                                 context_stats(info[120:], x[120:], 5)])
    np.testing.assert_array_equal(parts[0], whole[0])       # same contexts, same order
    np.testing.assert_array_equal(parts[1], whole[1])
    for a, b in zip(parts[2:], whole[2:]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def _same_stage(d1: Path, d2: Path) -> None:
    h1, h2 = (json.loads((d / "final.hmm.json").read_text()) for d in (d1, d2))
    assert h1["trees"] == h2["trees"], d1.name
    np.testing.assert_allclose(h1["log_self"], h2["log_self"], rtol=RTOL, atol=ATOL)
    g1, g2 = np.load(d1 / "final.gmm.npz"), np.load(d2 / "final.gmm.npz")
    np.testing.assert_array_equal(g1["comp_pdf"], g2["comp_pdf"])
    for k in ("means", "vars", "log_weights"):
        np.testing.assert_allclose(g1[k], g2[k], rtol=RTOL, atol=ATOL, err_msg=f"{d1.name} {k}")
    alis = sorted(a.name for a in d1.glob("ali_*"))
    assert alis == sorted(a.name for a in d2.glob("ali_*")) and "ali_train" in alis
    for ali in alis:
        a1, a2 = read_alignments(d1 / ali), read_alignments(d2 / ali)
        assert a1.keys() == a2.keys()
        assert all(np.array_equal(a1[u], a2[u]) for u in a1), (d1.name, ali)
        assert (d1 / ali / "words.ctm").read_text() == (d2 / ali / "words.ctm").read_text()
        if (d1 / ali / "trans.npz").exists():
            t1, t2 = load_transforms(d1 / ali / "trans.npz"), load_transforms(d2 / ali / "trans.npz")
            assert t1.keys() == t2.keys()
            for s in t1:
                np.testing.assert_allclose(t1[s], t2[s], rtol=RTOL, atol=ATOL)
    if (d1 / "final.mat.npy").exists():
        np.testing.assert_allclose(np.load(d1 / "final.mat.npy"), np.load(d2 / "final.mat.npy"),
                                   rtol=RTOL, atol=ATOL)
    l1, l2 = ([json.loads(x)["avg_loglike"] for x in (d / "log.jsonl").read_text().splitlines()]
              for d in (d1, d2))
    np.testing.assert_allclose(l1, l2, rtol=1e-9)


def _args_without_exp(tmp_path, synth_corpus) -> list[str]:
    _, args = _tiny_align_args(tmp_path, synth_corpus)
    i = args.index("--exp")
    return args[:i] + args[i + 2:]


def test_align_nj2_jobs_equal_nj1(tmp_path, synth_corpus, job_env):
    """mono, tri, tri2 (LDA+MLLT) and tri3 (SAT) over 2 local worker jobs, and a second set
    aligned by every stage: what one process gives; a finished run is not redone for another nj."""
    args = _args_without_exp(tmp_path, synth_corpus)
    extra = tmp_path / "data" / "again"
    shutil.copytree(tmp_path / "data" / "train", extra)
    run = [*args, "--mono-iters", "6", "--tri-iters", "4", "--tri-gauss", "120", *TRI2, *TRI3,
           "--through", "tri3", "--align-sets", str(extra)]
    exp1, exp2 = tmp_path / "exp1", tmp_path / "exp2"
    assert main([*run, "--exp", str(exp1)]) == 0
    assert main([*run, "--exp", str(exp2), "--nj", "2"]) == 0
    logs = sorted(p.name for p in (exp2 / "log").glob("*.log"))
    assert logs == ["align_again.1.log", "align_again.2.log", "align_train.1.log",
                    "align_train.2.log"]
    assert all("# Ended (code 0)" in (exp2 / "log" / n).read_text() for n in logs)
    assert not list((exp2 / "log").glob(".*key"))          # the pools' keys are removed
    for stage in PASSES:
        assert json.loads((exp2 / stage / "summary.json").read_text())["jobs"] == 2
        _same_stage(exp1 / stage, exp2 / stage)
    marker = (exp1 / "tri3" / ".done").read_text()
    assert main([*run, "--exp", str(exp1), "--nj", "2"]) == 0
    assert (exp1 / "tri3" / ".done").read_text() == marker


def _fake_sbatch(tmp_path: Path, monkeypatch) -> Path:
    """An `sbatch --wait` that runs the --wrap command here (output to --output) and records its
    arguments: the Slurm backend's commands as a real single-node Slurm would run them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch.calls"
    (bin_dir / "sbatch").write_text(f"""#!{sys.executable}
import subprocess, sys
a = sys.argv[1:]
open({str(calls)!r}, "a").write(" ".join(a[:a.index("--wrap")]) + "\\n")
out = a[a.index("--output") + 1].replace("%%", "%")
print("Submitted batch job 1", flush=True)
with open(out, "w") as f:
    sys.exit(subprocess.call(["sh", "-c", a[a.index("--wrap") + 1]], stdout=f, stderr=subprocess.STDOUT))
""")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


@pytest.mark.parametrize("backend", ["local", "slurm"])
def test_worker_jobs_hold_their_part_with_one_thread(tmp_path, synth_corpus, job_env, monkeypatch,
                                                     backend):
    """Each job is its own process with one torch/BLAS thread (nj jobs fill nj cores without
    oversubscription), and the parts' summed statistics equal this process's over the whole set."""
    _tiny_align_args(tmp_path, synth_corpus)
    data, lang = tmp_path / "data" / "train", tmp_path / "lang"
    calls = _fake_sbatch(tmp_path, monkeypatch) if backend == "slurm" else None
    fe = front_end()
    lg = load_lang(lang)
    hmm = HmmModel.monophone(lg.phones, lg.topo, lg.silence_phone)
    with open_parts(data, lang, fe, log_dir=tmp_path / "log") as one:
        one.all("load_features")
        one.all("compile", hmm)
        whole = one.sum("global_stats")
    with open_parts(data, lang, fe, nj=2, backend=backend, log_dir=tmp_path / "log",
                    slurm_opts="--partition local") as two:
        assert two.nj == 2 and not set(two.utts[0]) & set(two.utts[1])
        threads = two.all("threads")
        assert len({pid for pid, _, _ in threads} | {os.getpid()}) == 3
        assert [(t, omp) for _, t, omp in threads] == [(1, "1"), (1, "1")]
        two.all("load_features")
        two.all("compile", hmm)
        split = two.sum("global_stats")
    assert split[0] == whole[0]
    np.testing.assert_allclose(split[1], whole[1], rtol=1e-12)
    np.testing.assert_allclose(split[2], whole[2], rtol=1e-12)
    if calls is not None:
        lines = calls.read_text().splitlines()
        assert len(lines) == 2 and all("--cpus-per-task 1 --partition local" in x for x in lines)


@pytest.mark.slurm
def test_align_on_slurm_equals_nj1(tmp_path, synth_corpus, job_env, slurm):
    """`--backend slurm` on a real Slurm (tests/test_slurm_backend.py's `slurm` fixture: e.g. the
    single-node one of bench/slurm_local.sh; skipped without one): mono and tri as one process."""
    args = [*_args_without_exp(tmp_path, synth_corpus), "--mono-iters", "6", "--tri-iters", "4"]
    assert main([*args, "--exp", str(tmp_path / "exp1")]) == 0
    assert main([*args, "--exp", str(tmp_path / "exp2"), "--nj", "2", "--backend", "slurm"]) == 0
    assert (tmp_path / "exp2" / "log" / "align_train.2.log.submit").exists()
    for stage in ("mono", "tri"):
        _same_stage(tmp_path / "exp1" / stage, tmp_path / "exp2" / stage)
