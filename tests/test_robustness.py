"""Robustness: bad inputs not covered by the per-module tests, kill -9 and re-run, determinism, memory.

The per-module tests cover most of the bad-input catalogue (see TROUBLESHOOTING.md); this file
adds the cross-stage cases: NaN/inf in a Kaldi feature archive, a checkpoint or priors of another
lang, soft-target members of different pdf counts, ENOSPC while writing alignments or checkpoints, an
unwritable output dir and a Kaldi alignment whose length differs from the features. The kill tests run a stage in a subprocess, SIGKILL its whole
process group just before its N-th atomic rename (a `sitecustomize` hook counts `os.replace` calls),
re-run the same command and compare with an uninterrupted run.

All of them run on the generated synth_digits corpus of conftest (`synth_corpus`): nothing here
needs ../shared, so none of them can skip.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from acoustic_kd.ali import read_alignments
from acoustic_kd.cli import main
from acoustic_kd.errors import DataError
from acoustic_kd.features import FeatureSet
from conftest import NUM_UTTS, SMALL_ALIGN, SMALL_TRAIN, build_pipeline, make_data_dir

REPO = Path(__file__).resolve().parents[1]

# Installed through PYTHONPATH into the stage subprocess (and the job processes it starts): SIGKILL
# the whole process group just before the KILL_AT-th os.replace of any one process, i.e. when an
# output is fully written to its temporary sibling but not yet renamed into place.
SITECUSTOMIZE = textwrap.dedent("""
    import os, signal
    _n = int(os.environ.get("KILL_AT", "0") or 0)
    if _n:
        _real, _count = os.replace, [0]
        def _replace(*a, **k):
            _count[0] += 1
            if _count[0] == _n:
                os.killpg(0, signal.SIGKILL)
            return _real(*a, **k)
        os.replace = _replace
""")


# ---------------------------------------------------------------------------------------- helpers
def copy_features(tiny: dict, dst: Path) -> Path:
    """A copy of the tiny data dir with its features (arks resolve relative to the copy)."""
    shutil.copytree(tiny["data"], dst)
    return dst


def run_cli(args: list[str], tmp: Path, kill_at: int = 0) -> subprocess.CompletedProcess:
    """`acoustic-kd ARGS` in its own process group; with kill_at, SIGKILLed at that atomic rename."""
    hook = tmp / "killhook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(REPO)]),
           "KILL_AT": str(kill_at), "OMP_NUM_THREADS": "1",
           "ACOUSTIC_KD_LOGLEVEL": "INFO"}   # (the re-run's log is read; a bench module imported by
                                              # another test sets WARNING in this process)
    return subprocess.run([sys.executable, "-m", "acoustic_kd.cli", *args], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=120, start_new_session=True)


def killed_then_rerun(args: list[str], tmp: Path, kill_at: int) -> str:
    """Run, SIGKILL at the kill_at-th atomic rename, re-run to completion; returns the re-run's log."""
    first = run_cli(args, tmp, kill_at)
    assert first.returncode == -signal.SIGKILL, (first.returncode, first.stderr[-2000:])
    again = run_cli(args, tmp)
    assert again.returncode == 0, again.stderr[-3000:]
    return again.stderr


def state_dict(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = state_dict(a), state_dict(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def assert_same_alignments(a: Path, b: Path) -> None:
    x, y = read_alignments(a), read_alignments(b)
    assert x.keys() == y.keys() and len(x) > 0
    for u in x:
        assert np.array_equal(x[u], y[u]), u


# ------------------------------------------------------------------------------------ bad inputs
def test_nan_in_a_kaldi_feature_archive_names_utterance_and_line(tmp_path):
    """Hand-made feats.scp with a NaN and an inf matrix: reading them is a DataError with file:line."""
    rng = np.random.default_rng(0)
    mats = {f"u{i}": rng.standard_normal((20, 5)).astype(np.float32) for i in range(3)}
    mats["u1"][3, 2] = np.nan
    mats["u2"][0, 0] = np.inf
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path / 'feats.ark'},{tmp_path / 'feats.scp'}") as w:
        for k, m in mats.items():
            w[k] = m
    fs = FeatureSet(tmp_path, cmvn="none")
    assert np.array_equal(fs["u0"], mats["u0"])
    for utt, line in (("u1", 2), ("u2", 3)):
        with pytest.raises(DataError, match=rf"feats.scp:{line}: utterance {utt}: non-finite .*fix: "
                                            r"recompute the features") as e:
            fs[utt]
        assert e.value.line == line
    with pytest.raises(DataError, match="u1: non-finite"):   # CMVN stats cannot be poisoned silently
        FeatureSet(tmp_path, cmvn="global")["u0"]


def test_checkpoint_of_another_lang_is_refused_naming_both_counts(tiny, tmp_path, capsys):
    from acoustic_kd.nnet.checkpoint import save_checkpoint
    from acoustic_kd.nnet.models import ModelConfig, build_model

    num_pdfs = json.loads((tiny["graph"] / "graph.json").read_text())["num_pdfs"]
    other = num_pdfs + 3
    model = build_model(ModelConfig(hidden=8, layers=1, context=(2, 2)), 40, other)
    save_checkpoint(tmp_path / "other.pt", model, {"cmvn": "speaker", "priors": [1.0 / other] * other})
    args = ["decode", "--graph", str(tiny["graph"]), "--data", str(tiny["data"]), "--acwt", "0.1",
            "--word-penalty", "0"]
    assert main([*args, "--model", str(tmp_path / "other.pt"), "--out", str(tmp_path / "d1")]) == 1
    err = capsys.readouterr().err
    assert f"the model has {other} pdfs but the graph was built for {num_pdfs}" in err
    assert "mkgraph" in err and [p.name for p in (tmp_path / "d1").iterdir()] == [".started"]  # no output
    # the right model with priors of another lang
    (tmp_path / "priors.txt").write_text("0.5\n0.5\n")
    assert main([*args, "--model", str(tiny["model"] / "final.pt"), "--priors",
                 str(tmp_path / "priors.txt"), "--out", str(tmp_path / "d2")]) == 1
    err = capsys.readouterr().err
    assert f"priors.txt: 2 priors but the model has {num_pdfs} pdfs" in err


def test_soft_targets_from_members_of_different_pdf_counts_name_each_member(tiny, tmp_path, capsys):
    from acoustic_kd.nnet.checkpoint import save_checkpoint
    from acoustic_kd.nnet.models import ModelConfig, build_model

    other = tmp_path / "other.pt"
    save_checkpoint(other, build_model(ModelConfig(hidden=8, layers=1, context=(2, 2)), 40, 7),
                    {"cmvn": "speaker", "priors": [1 / 7] * 7})
    member = tiny["model"] / "final.pt"
    assert main(["soft-targets", "--members", str(member), str(other), "--data", str(tiny["data"]),
                 "--out", str(tmp_path / "soft")]) == 1
    err = capsys.readouterr().err
    num_pdfs = int((tiny["ali"] / "num_pdfs").read_text())
    assert f"different pdf counts ({member}: {num_pdfs}, {other}: 7)" in err and "same alignment" in err
    assert not (tmp_path / "soft" / ".done").exists()


def test_enospc_while_writing_alignments_names_the_path_and_leaves_no_output(tiny, tmp_path,
                                                                                monkeypatch, capsys):
    import acoustic_kd.ali as ali

    d = copy_features(tiny, tmp_path / "data")
    real = ali.atomic_write_text

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ali, "atomic_write_text", full)
    args = ["align", "--data", str(d), "--lang", str(tiny["lang"]), "--exp", str(tmp_path / "exp"),
            *SMALL_ALIGN]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "ali_data/ali.scp: No space left on device (fix: " in err and "Traceback" not in err
    mono = tmp_path / "exp" / "mono"
    assert not (mono / ".done").exists() and not (mono / "ali_data" / "ali.scp").exists()
    assert not list(mono.rglob(".*tmp*")) and not list(mono.rglob("*.building"))
    monkeypatch.setattr(ali, "atomic_write_text", real)   # space freed: the re-run completes
    assert main(args) == 0
    assert_same_alignments(tmp_path / "exp" / "tri" / "ali_data", tiny["ali"])


def test_enospc_while_saving_a_checkpoint_leaves_no_partial_file(tiny, tmp_path, monkeypatch, capsys):
    import acoustic_kd.nnet.checkpoint as ckpt

    def full(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")   # some bytes made it to disk before the device filled up
        raise OSError(errno.ENOSPC, "No space left on device", str(f))

    monkeypatch.setattr(ckpt.torch, "save", full)
    out = tmp_path / "m1"
    assert main(["train", "--train-data", str(tiny["data"]), "--train-ali", str(tiny["ali"]),
                 "--out", str(out), "--save-every-steps", "5", *SMALL_TRAIN]) == 1
    err = capsys.readouterr().err
    assert f"{out}/." in err and "No space left on device (fix: " in err
    assert not list(out.glob("*.pt")) and not list(out.glob(".*tmp*"))


def test_unwritable_output_dir_is_a_clear_error(tiny, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file where a directory is expected\n")
    cases = [(blocker / "sub", "Not a directory")]
    if os.geteuid() != 0:    # root ignores directory permissions
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        cases.append((ro / "sub", "Permission denied"))
    for out, why in cases:
        assert main(["train", "--train-data", str(tiny["data"]), "--train-ali", str(tiny["ali"]),
                     "--out", str(out), *SMALL_TRAIN]) == 1
        err = capsys.readouterr().err
        assert f"{blocker if why == 'Not a directory' else out.parent}" in err and why in err
        assert "choose a writable output dir" in err and "Traceback" not in err


def test_kaldi_alignment_of_another_length_is_refused_by_train(tiny, tmp_path, capsys):
    alis = read_alignments(tiny["ali"])
    utts = sorted(alis)
    bad = utts[1]
    txt = tmp_path / "kaldi_ali.txt"
    txt.write_text("".join(f"{u} {' '.join(map(str, alis[u][:-3] if u == bad else alis[u]))}\n"
                           for u in utts))
    num_pdfs = (tiny["ali"] / "num_pdfs").read_text().strip()
    assert main(["align", "--import-kaldi", str(txt), "--num-pdfs", num_pdfs,
                 "--out", str(tmp_path / "ext")]) == 0
    assert main(["train", "--train-data", str(tiny["data"]), "--train-ali", str(tmp_path / "ext"),
                 "--out", str(tmp_path / "m"), *SMALL_TRAIN]) == 1
    err = capsys.readouterr().err
    t = len(alis[bad])
    assert (f"{tmp_path / 'ext' / 'ali.scp'}: utterance {bad}: alignment has {t - 3} frames but "
            f"features have {t} in {tiny['data'] / 'feats.scp'} (fix: re-align") in err


# ------------------------------------------------------------------------------ kill -9 + re-run
def test_features_killed_then_rerun_equal_an_uninterrupted_run(tiny, tmp_path):
    clean = make_data_dir(tiny["corpus"], tmp_path / "clean" / "data")   # same dir name: same ark names
    assert main(["features", "--data", str(clean), "--nj", "2", "--sample-rate", "8000"]) == 0
    d = make_data_dir(tiny["corpus"], tmp_path / "killed" / "data")
    killed_then_rerun(["features", "--data", str(d), "--nj", "2", "--sample-rate", "8000"], tmp_path,
                      kill_at=2)
    for name in ("raw_fbank_data.1.ark", "raw_fbank_data.2.ark", "cmvn_data.ark"):
        assert (d / "data" / name).read_bytes() == (clean / "data" / name).read_bytes(), name
    assert (d / "utt2num_frames").read_bytes() == (clean / "utt2num_frames").read_bytes()
    assert not list((d / "data").glob(".*tmp*"))


def test_align_killed_then_rerun_equal_an_uninterrupted_run(tiny, tmp_path):
    d = copy_features(tiny, tmp_path / "data")
    exp = tmp_path / "exp"
    args = ["align", "--data", str(d), "--lang", str(tiny["lang"]), "--exp", str(exp), *SMALL_ALIGN]
    killed_then_rerun(args, tmp_path, kill_at=12)
    for stage in ("mono", "tri"):
        assert_same_alignments(exp / stage / "ali_data", tiny["exp"] / stage / "ali_data")
        assert ((exp / stage / "final.hmm.json").read_bytes()
                == (tiny["exp"] / stage / "final.hmm.json").read_bytes())


def test_train_killed_then_rerun_gives_identical_weights(tiny, tmp_path):
    """Killed before its 3rd step checkpoint (step 15 of 40), resumed from step 10: same final.pt as
    the fixture's uninterrupted run (which saved no step checkpoints at all)."""
    args = ["train", "--train-data", str(tiny["data"]), "--train-ali", str(tiny["ali"]),
            "--save-every-steps", "5", *SMALL_TRAIN, "--out", str(tmp_path / "killed")]
    log = killed_then_rerun(args, tmp_path, kill_at=4)
    assert "resuming at epoch 1 step 10" in log
    assert_same_weights(tmp_path / "killed" / "final.pt", tiny["model"] / "final.pt")


def test_soft_targets_killed_then_rerun_give_identical_shards(tiny, tmp_path):
    args = ["soft-targets", "--members", str(tiny["model"] / "final.pt"), "--data", str(tiny["data"]),
            "--k", "5", "--shard-frames", "300"]
    assert main([*args, "--out", str(tmp_path / "clean")]) == 0
    meta = json.loads((tmp_path / "clean" / "meta.json").read_text())
    shards = -(-meta["num_frames"] // 300)
    assert not meta["dense"] and shards >= 6, meta["num_frames"]   # top-k: an index and a prob file
    killed_then_rerun([*args, "--out", str(tmp_path / "killed")], tmp_path, kill_at=9)  # in shard 5
    names = sorted(p.name for p in (tmp_path / "clean").glob("shard-*.npy"))
    assert len(names) == 2 * shards and names == sorted(p.name for p in (tmp_path / "killed").glob("shard-*.npy"))
    for n in names:
        assert (tmp_path / "killed" / n).read_bytes() == (tmp_path / "clean" / n).read_bytes(), n


def test_decode_killed_then_rerun_gives_identical_hypotheses(tiny, tmp_path):
    args = ["decode", "--graph", str(tiny["graph"]), "--data", str(tiny["data"]), "--model",
            str(tiny["model"] / "final.pt"), "--acwt", "0.1", "--word-penalty", "0"]
    assert main([*args, "--out", str(tmp_path / "clean")]) == 0
    killed_then_rerun([*args, "--out", str(tmp_path / "killed")], tmp_path, kill_at=2)
    hyp = (tmp_path / "killed" / "hyp.txt").read_bytes()
    assert hyp == (tmp_path / "clean" / "hyp.txt").read_bytes() and len(hyp.splitlines()) == NUM_UTTS
    assert not list(tmp_path.glob(".killed*"))


# ---------------------------------------------------------------------------------- determinism
def test_same_seed_same_alignments_and_weights(tiny, tmp_path):
    again = build_pipeline(tiny["corpus"], tmp_path)
    for stage in ("mono", "tri"):
        assert_same_alignments(again["exp"] / stage / "ali_data", tiny["exp"] / stage / "ali_data")
    assert_same_weights(again["model"] / "final.pt", tiny["model"] / "final.pt")
    assert (again["data"] / "data" / "raw_fbank_data.1.ark").read_bytes() == \
        (tiny["data"] / "data" / "raw_fbank_data.1.ark").read_bytes()


# --------------------------------------------------------------------------------------- memory
def test_streaming_dataset_peak_rss_stays_bounded(tmp_path, monkeypatch):
    """Peak-RSS growth of one epoch, at 16 MB and at 48 MB of features: the streaming dataset's growth
    does not follow the data (a fixed cost of ~13-26 MB, torch's first operations, is the same at both
    sizes and cancels); the in-memory dataset's, as a check that the measure can fail, does."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    from bench_memory import measure, write_features

    small = write_features(tmp_path / "small", num_utts=100, frames=1000, dim=40, seed=0)
    large = write_features(tmp_path / "large", num_utts=300, frames=1000, dim=40, seed=0)
    added = large - small                                   # 32 MB more data
    runs = {(kind, name): measure(tmp_path / name, kind, shard_utts=8, buffer_shards=2)
            for kind in ("streaming", "memory") for name in ("small", "large")}
    stream_s, stream_l = runs["streaming", "small"], runs["streaming", "large"]
    assert stream_l["frames_seen"] == 300 * 1000 and stream_l["max_resident_frames"] == 16 * 1000
    assert stream_s["max_resident_frames"] == 16 * 1000
    stream_extra = stream_l["rss_growth_bytes"] - stream_s["rss_growth_bytes"]
    assert stream_extra < added // 4, (stream_s, stream_l, added)
    memory_extra = runs["memory", "large"]["rss_growth_bytes"] - runs["memory", "small"]["rss_growth_bytes"]
    assert memory_extra > 3 * added // 4, (runs["memory", "small"], runs["memory", "large"], added)
