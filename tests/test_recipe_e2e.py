"""End to end: the yesno recipe through every stage (prepare .. export, transcribe, report), tiny config.

Asserts that learning happened on real speech: frame accuracy far above chance, low WER for the
ensemble and the distilled student, the int8 export transcribing like the decode stage, and a report
table with every system.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from acoustic_kd.report import parse_wer_file

from conftest import REPO, corpus_path

TINY = """
features: {sample_rate: 8000, dither: 1.0}
align: {mono_gauss: 120, tri_leaves: 40, tri_gauss: 240, tree_min_count: 20.0, mono_iters: 15, tri_iters: 10}
model: {arch: mlp, hidden: 128, layers: 2, context: [5, 5]}
train: {epochs: 6, batch_size: 256, lr: 0.003, cmvn: global, num_threads: 1}
tune: {acwts: [0.05, 0.1, 0.2], word_penalties: [0.0, 0.5]}
"""
TINY_STUDENT = """
student: {arch: mlp, hidden: 64, layers: 2, context: [5, 5]}
train: {epochs: 6, batch_size: 256, lr: 0.003, cmvn: global, num_threads: 1}
distill: {T: 5.0, alpha: 0.5, teacher: cached}
"""


@pytest.fixture(scope="module")
def yesno_run(tmp_path_factory):
    src = corpus_path("yesno") / "waves_yesno"
    work = tmp_path_factory.mktemp("yesno_e2e")
    (work / "conf.yaml").write_text(TINY)
    (work / "student.yaml").write_text(TINY_STUDENT)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = ["bash", str(REPO / "recipes" / "yesno" / "run.sh"), "--src", str(src),
           "--data", str(work / "data"), "--exp", str(work / "exp"), "--num-members", "2",
           "--config", str(work / "conf.yaml"), "--student-config", str(work / "student.yaml")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    (work / "run.log").write_text(res.stdout + res.stderr)
    assert res.returncode == 0, f"recipe failed; log in {work / 'run.log'}:\n{res.stderr[-3000:]}"
    return work, res.stdout


def _wer(exp: Path, system: str, s: str = "test") -> float:
    w = parse_wer_file(exp / "decode" / f"{system}_{s}" / "wer")
    assert w is not None, f"no WER for {system}_{s}"
    assert not w[1], f"{system}_{s} is PARTIAL"
    return w[0]


def test_every_stage_learned(yesno_run):
    work, stdout = yesno_run
    exp = work / "exp"
    ev = json.loads((exp / "members" / "eval.json").read_text())
    assert ev  # per-member and ensemble frame accuracies were evaluated
    num_pdfs = int((exp / "tri" / "ali_train" / "num_pdfs").read_text())
    for system in ("m1", "m2", "ensemble", "student_hard", "student_kd"):
        acc = float((exp / "decode" / f"{system}_test" / "frame_acc").read_text())
        assert acc > 100.0 / num_pdfs + 30, f"{system}: frame accuracy {acc}% is near chance"
    assert _wer(exp, "ensemble") <= 15.0
    assert _wer(exp, "student_kd") <= 15.0


def test_export_transcribes_like_decode(yesno_run):
    work, _ = yesno_run
    exp = work / "exp"
    for f in ("model.pt", "model.onnx", "model.int8.onnx"):
        assert (exp / "export" / f).stat().st_size > 1000
    hyp_int8 = (exp / "decode" / "export_int8_test" / "hyp.txt").read_text().splitlines()
    hyp_fp32 = (exp / "decode" / "student_kd_test" / "hyp.txt").read_text().splitlines()
    assert len(hyp_int8) == len(hyp_fp32) == 29
    same = sum(a == b for a, b in zip(hyp_int8, hyp_fp32))
    assert same >= 26, f"int8 export agrees with the decode stage on only {same}/29 utterances"
    assert abs(_wer(exp, "export_int8") - _wer(exp, "student_kd")) <= 3.0


def test_report_table_printed(yesno_run):
    work, stdout = yesno_run
    md = (work / "exp" / "RESULTS.md").read_text()
    for row in ("baseline (hard targets)", "member 1", "member 2", "ensemble (2 members)",
                "distilled student", "distilled, int8 export"):
        assert f"| {row} |" in md
        assert f"| {row} |" in stdout


def test_speed_perturbed_students(yesno_run, tmp_path):
    """--speed-perturb "0.9 1.1": the students (not the members) train on the training set plus
    speed-perturbed copies, aligned by the finished GMM, with soft targets for all of it."""
    import shutil

    from acoustic_kd.ali import read_alignments
    from acoustic_kd.features import FeatureSet

    work, _ = yesno_run
    data, exp = tmp_path / "data", tmp_path / "exp"
    shutil.copytree(work / "data", data)
    shutil.copytree(work / "exp", exp, ignore=shutil.ignore_patterns("student_*", "decode", "export"))
    member_mtime = (exp / "members" / "m1" / "final.pt").stat().st_mtime_ns
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = ["bash", str(REPO / "recipes" / "yesno" / "run.sh"), "--stage", "2", "--stop-stage", "7",
           "--data", str(data), "--exp", str(exp), "--num-members", "2", "--speed-perturb", "0.9 1.1",
           "--config", str(work / "conf.yaml"), "--student-config", str(work / "student.yaml")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    train = FeatureSet(data / "train", cmvn="none").utts
    every = FeatureSet(data / "train_all", cmvn="none")
    assert sorted(every.utts) == sorted(train + [f"sp{f}-{u}" for f in ("0.9", "1.1") for u in train])
    ali = read_alignments(exp / "tri" / "ali_train_all")
    assert sorted(ali) == sorted(every.utts)
    assert all(len(ali[u]) == every.num_frames(u) for u in ali)
    # the members were not retrained (their file is untouched); both students saw ~3x the frames
    assert (exp / "members" / "m1" / "final.pt").stat().st_mtime_ns == member_mtime
    before = json.loads((work / "exp" / "student_kd" / "distill.json").read_text())["train_frames"]
    num_pdfs = int((exp / "tri" / "ali_train" / "num_pdfs").read_text())
    for system in ("student_kd", "student_hard"):
        rec = json.loads((exp / system / "distill.json").read_text())
        assert 2.9 < rec["train_frames"] / before < 3.1, (system, rec["train_frames"], before)
        assert 100 * rec["test"]["acc"] > 100.0 / num_pdfs + 30, (system, rec["test"])
    assert json.loads((exp / "student_kd" / "distill.json").read_text())["soft_targets"].endswith("soft_all")
