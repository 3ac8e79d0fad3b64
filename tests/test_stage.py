"""The stage contract (acoustic_kd.stage) on every command of a recipe, on tiny generated audio.

A module fixture runs recipes/kaldi_datadir end to end on a tone corpus (word LOW = a 500 Hz tone,
HIGH = 2000 Hz, two speakers; generated here, no corpus download). Then, each on a copy of the
finished tree: an unchanged re-run of a stage's command skips it (its marker is untouched); one
changed config value re-runs it, and its old result is nowhere (a file left in its output is gone,
the output shows the new value). Finally the whole recipe is run again after one line of
data/train/text was edited: the stages that read it and everything downstream re-run, the
features (which do not read text) are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acoustic_kd.cli import main
from acoustic_kd.errors import DataError
from acoustic_kd.stage import Stage, describe_changes

from conftest import REPO

SR = 8000
TONES = {"LOW": 500.0, "HIGH": 2000.0}
CONF = """
features: {sample_rate: 8000, dither: 0.0}
lang: {sil_prob: 0.5, lm_order: 1}
align: {mono_gauss: 20, tri_leaves: 12, tri_gauss: 30, tree_min_count: 5.0, mono_iters: 4, tri_iters: 2}
model: {arch: mlp, hidden: 16, layers: 1, context: [2, 2]}
train: {epochs: 1, batch_size: 128, lr: 0.003, cmvn: global, num_threads: 1, warmup_steps: 2}
tune: {acwts: [0.1, 0.2], word_penalties: [0.0]}
"""
STUDENT = """
student: {arch: mlp, hidden: 8, layers: 1, context: [2, 2]}
train: {epochs: 1, batch_size: 128, lr: 0.003, cmvn: global, num_threads: 1, warmup_steps: 2}
distill: {T: 2.0, alpha: 0.5, teacher: cached}
"""


# ---------------------------------------------------------------------------------- tone corpus
def _utterance(words: list[str], rng: np.random.Generator) -> np.ndarray:
    parts = [0.003 * rng.standard_normal(int(0.15 * SR))]
    for w in words:
        t = np.arange(int(0.25 * SR)) / SR
        parts.append(0.3 * np.sin(2 * np.pi * TONES[w] * t) + 0.003 * rng.standard_normal(t.size))
        parts.append(0.003 * rng.standard_normal(int(0.1 * SR)))
    return np.concatenate(parts).astype(np.float32)


def tone_corpus(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """Kaldi data dirs train/dev/test of tone "words" (+ a lexicon); returns (src dir, lexicon)."""
    rng = np.random.default_rng(seed)
    src = root / "src"
    for name, n in (("train", 24), ("dev", 6), ("test", 6)):
        d = src / name
        (d / "wav").mkdir(parents=True)
        rows = []
        for i in range(n):
            spk = f"spk{i % 2}"
            utt = f"{spk}-{name}{i:02d}"
            words = list(rng.choice(list(TONES), size=int(rng.integers(1, 4))))
            sf.write(d / "wav" / f"{utt}.wav", _utterance(words, rng), SR, subtype="PCM_16")
            rows.append((utt, spk, " ".join(words)))
        rows.sort()
        (d / "wav.scp").write_text("".join(f"{u} {d / 'wav' / u}.wav\n" for u, _, _ in rows))
        (d / "text").write_text("".join(f"{u} {t}\n" for u, _, t in rows))
        (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s, _ in rows))
        spk2utt = {s: [u for u, s2, _ in rows if s2 == s] for s in sorted({s for _, s, _ in rows})}
        (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in spk2utt.items()))
    lexicon = root / "lexicon.txt"
    lexicon.write_text("LOW L\nHIGH H\n")
    return src, lexicon


def run_recipe(work: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(REPO), ACOUSTIC_KD_LOGLEVEL="INFO")
    cmd = ["bash", str(REPO / "recipes" / "kaldi_datadir" / "run.sh"), "--src", str(work / "src"),
           "--lexicon", str(work / "lexicon.txt"), "--data", str(work / "data"),
           "--exp", str(work / "exp"), "--num-members", "2", "--nj", "1", "--members-nj", "1",
           "--config", str(work / "conf.yaml"), "--student-config", str(work / "student.yaml"),
           "--speed-perturb", "", *extra]   # the training set only: the fixture stays small
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, f"recipe failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    return res


def written_by_the_stage(path: Path) -> None:
    """Make `path` look like an output of the stage whose whole dir holds it (an output an earlier
    version of the stage wrote and the new one does not): listed as `written` in its marker."""
    for m in path.parent.glob(".*done"):
        record = json.loads(m.read_text())
        if "written" in record:
            m.write_text(json.dumps({**record, "written": [*record["written"], path.name]}))


def markers(root: Path) -> dict[str, str]:
    """{path: content} of every `.done` marker under root (the stages' and their parts')."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob(".*done"))}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    work = tmp_path_factory.mktemp("stage_recipe")
    tone_corpus(work)
    (work / "conf.yaml").write_text(CONF)
    (work / "student.yaml").write_text(STUDENT)
    run_recipe(work)
    return work


@pytest.fixture
def tree(recipe, tmp_path):
    """A copy of the finished recipe tree (modification times kept: nothing looks changed)."""
    work = tmp_path / "w"
    shutil.copytree(recipe, work, symlinks=True)
    return work


# ------------------------------------------------------------------ the contract in isolation
def test_stage_skips_reruns_and_forgets_old_outputs(tmp_path):
    out = tmp_path / "out"
    src = tmp_path / "in.txt"
    src.write_text("a\n")

    def stage(lr=0.1):
        return Stage("demo", out, {"lr": lr}, inputs=[src], code=["acoustic_kd.stage"],
                     outputs=[out / "result.txt"])

    st = stage()
    assert st.begin() and not st.fresh
    (out / "result.txt").write_text("old")
    st.finish({"n": 1})
    assert not stage().begin()                          # unchanged: skipped
    assert stage().begin(force=True) and not (out / "result.txt").exists()
    (out / "result.txt").write_text("old")
    stage().finish()
    st = stage(lr=0.2)
    assert st.begin() and st.fresh and not (out / "result.txt").exists()
    assert "config lr: 0.1 -> 0.2" in st.reason
    st.finish()
    src.write_text("b\n")
    st = stage(lr=0.2)
    assert st.begin() and "input ../in.txt changed" in st.reason
    # killed before finish: a re-run with the same settings resumes, with others starts afresh
    st = stage(lr=0.2)
    assert st.begin() and not st.fresh
    st = stage(lr=0.3)
    assert st.begin() and st.fresh and "interrupted run had other settings" in st.reason


def test_a_marker_of_the_stage_s_older_name_is_taken_over(tmp_path):
    out = tmp_path / "out"
    old = Stage("train", out, {"lr": 0.1}, code=Stage, owner="distill")   # as distill wrote it
    assert old.begin()
    old.finish()
    new = Stage("distill", out, {"lr": 0.1}, code=Stage, alias="train")
    assert not new.begin()                              # the finished result is found: skipped
    assert (out / ".distill.done").exists() and not (out / ".train.done").exists()
    assert Stage("distill", out, {"lr": 0.2}, code=Stage, alias="train").begin()


def test_another_command_s_marker_of_the_older_name_is_left_alone(tmp_path):
    out = tmp_path / "member"
    member = Stage("train", out, {"model": 1, "dev": True}, code=Stage)   # a member's training
    assert member.begin()
    member.finish()
    with pytest.raises(DataError, match="another command"):
        Stage("distill", out, {"student": 1, "distill": 2}, code=Stage, alias="train").begin()
    assert (out / ".train.done").exists() and not (out / ".distill.done").exists()


def test_describe_changes_names_code_and_inputs():
    old = {"config": {"a": {"b": 1}}, "inputs": {"x": "1", "y": "2"}, "code": {"m": "1"}}
    new = {"config": {"a": {"b": 2}}, "inputs": {"x": "1", "z": "3"}, "code": {"m": "2"}}
    text = describe_changes(old, new, limit=10)
    assert "config a.b: 1 -> 2" in text and "new input z" in text
    assert "input y no longer read" in text and "code of m changed" in text
    assert "older version" in describe_changes(None, new)


# ------------------------------------------------------------------ every command of the recipe
def _stages(w: Path, title: str) -> dict[str, dict]:
    """Per stage: its command as the recipe runs it, one changed option, the output dir, the dir a
    user's file is put into (`keep`) and a check that the output shows the new value."""
    d, e, conf, student = w / "data", w / "exp", str(w / "conf.yaml"), str(w / "student.yaml")
    ali = lambda s: str(e / "tri" / f"ali_{s}")  # noqa: E731
    members = [str(e / "members" / f"m{i}" / "final.pt") for i in (1, 2)]
    sets = ["--train-data", str(d / "train"), "--train-ali", ali("train"), "--dev-data", str(d / "dev"),
            "--dev-ali", ali("dev")]
    test = ["--test-data", str(d / "test"), "--test-ali", ali("test")]
    rd = lambda p: json.loads(Path(p).read_text())  # noqa: E731
    return {
        "prepare": dict(
            cmd=["prepare", "kaldi", "--src", str(w / "src"), "--lexicon", str(w / "lexicon.txt"),
                 "--out", str(d)],
            change=["--opt", f"corpus_root={w / 'src'}"], out=d / "train", keep=d,
            check=lambda: (d / "train" / "wav.scp").exists()),
        "lang": dict(
            cmd=["lang", "--data", str(d / "train"), "--lexicon", str(d / "local" / "lexicon.txt"),
                 "--out", str(d / "lang"), "--config", conf],
            change=["--sil-prob", "0.3"], out=d / "lang", keep=d / "lang",
            check=lambda: rd(d / "lang" / "lang.json")["sil_prob"] == 0.3),
        "features": dict(
            cmd=["features", "--data", str(d / "test"), "--config", conf, "--nj", "1"],
            change=["--num-mel-bins", "23"], out=d / "test" / "data", keep=d / "test",
            check=lambda: rd(d / "test" / "fbank.json")["num_mel_bins"] == 23),
        "align": dict(
            cmd=["align", "--data", str(d / "train"), "--lang", str(d / "lang"), "--exp", str(e),
                 "--config", conf, "--align-sets", str(d / "dev"), str(d / "test")],
            change=["--tri-leaves", "10"], out=e / "tri", keep=e / "tri",
            check=lambda: rd(e / "tri" / "info.json")["config"]["align"]["tri_leaves"] == 10),
        "ensemble": dict(
            cmd=["ensemble", "--num-members", "2", "--nj", "1", "--out", str(e / "members"),
                 "--config", conf, *sets, *test, "--seed", "1"],
            change=["--rules", "arithmetic"], out=None, keep=e / "members",
            check=lambda: list(rd(e / "members" / "eval.json")["sets"]["dev"]["ensemble"])
            == ["arithmetic"]),
        "train": dict(
            cmd=["train", *sets, "--config", conf, "--out", str(e / "members" / "m1"), "--seed", "1"],
            change=["--lr", "0.01"], out=None, keep=e / "members" / "m1",
            check=lambda: rd(e / "members" / "m1" / "info.json")["config"]["train"]["lr"] == 0.01),
        "soft-targets": dict(
            cmd=["soft-targets", "--members", *members, "--data", str(d / "train"),
                 "--out", str(e / "ensemble" / "soft"), "--config", student],
            change=["--T", "3"], out=e / "ensemble" / "soft", keep=e / "ensemble" / "soft",
            check=lambda: rd(e / "ensemble" / "soft" / "meta.json")["T"] == 3.0),
        "distill": dict(
            cmd=["distill", "--soft", str(e / "ensemble" / "soft"), *sets, *test,
                 "--student-config", student, "--seed", "1001", "--out", str(e / "student_kd")],
            change=["--alpha", "0.3"], out=None, keep=e / "student_kd",
            check=lambda: rd(e / "student_kd" / "distill.json")["distill"]["alpha"] == 0.3),
        "mkgraph": dict(
            cmd=["mkgraph", "--lang", str(d / "lang"), "--model", str(e / "tri" / "final.hmm.json"),
                 "--out", str(e / "tri" / "graph"), "--config", conf],
            change=["--transition-scale", "1.0"], out=e / "tri" / "graph", keep=e / "tri" / "graph",
            check=lambda: rd(e / "tri" / "graph" / "graph.json")["config"]["transition_scale"] == 1.0),
        "decode": dict(
            cmd=["decode", "--graph", str(e / "tri" / "graph"), "--data", str(d / "dev"),
                 "--model", members[0], "--config", conf, "--ali", ali("dev"),
                 "--out", str(e / "decode" / "m1_dev"), "--tuned",
                 str(e / "decode" / "m1_test" / "tune.json")],
            change=["--beam", "9"], out=e / "decode" / "m1_dev", keep=e / "decode" / "m1_dev",
            check=lambda: rd(e / "decode" / "m1_dev" / "decode.json")["config"]["beam"] == 9.0),
        "export": dict(
            cmd=["export", "--checkpoint", str(e / "student_kd" / "final.pt"),
                 "--graph", str(e / "tri" / "graph"), "--data", str(d / "train"),
                 "--out", str(e / "export"), "--acwt", str(e / "decode" / "student_kd_test" / "tune.json")],
            change=["--beam", "9"], out=e / "export", keep=e / "export",
            check=lambda: rd(e / "export" / "export.json")["decoding"]["beam"] == 9.0),
        "report": dict(
            cmd=["report", "--exp", str(e), "--num-members", "2", "--title", title],
            change=["--notes", "changed"], out=e / "plots", keep=e,
            check=lambda: "changed" in (e / "RESULTS.md").read_text()),
    }


STAGES = ["prepare", "lang", "features", "align", "ensemble", "train", "soft-targets", "distill",
          "mkgraph", "decode", "export", "report"]


@pytest.mark.parametrize("name", STAGES)
def test_stage_skips_when_unchanged_and_reruns_on_a_changed_value(recipe, tree, name,
                                                                  one_torch_thread):
    spec = _stages(tree, f"kaldi_datadir: {recipe / 'src'}")[name]
    before = markers(tree)
    assert main(spec["cmd"]) == 0
    assert markers(tree) == before, f"{name}: an unchanged re-run redid work"
    leftover = spec["out"] / "left-from-the-old-run" if spec["out"] is not None else None
    if leftover is not None:
        leftover.write_text("old")
        written_by_the_stage(leftover)
    notes = spec["keep"] / "user-notes.txt"   # a file no command wrote: every re-run keeps it
    notes.write_text("mine")
    assert main(spec["cmd"] + spec["change"]) == 0
    assert markers(tree) != before, f"{name}: a changed value did not re-run the stage"
    assert leftover is None or not leftover.exists(), f"{name}: the old result is still there"
    assert notes.read_text() == "mine", f"{name}: a file the command did not write was lost"
    assert spec["check"](), f"{name}: the output does not show the new value"
    again = markers(tree)
    assert main(spec["cmd"] + spec["change"]) == 0 and markers(tree) == again


def test_force_reruns_an_unchanged_stage(tree):
    spec = _stages(tree, "")["lang"]
    before = (tree / "data" / "lang" / ".done").read_text()
    assert main(spec["cmd"] + ["--force"]) == 0
    assert json.loads((tree / "data" / "lang" / ".done").read_text())["ran_because"] == "--force"
    assert (tree / "data" / "lang" / ".done").read_text() != before


# ------------------------------------------------------------------ the recipe, run again
def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in after if before.get(k) != after[k]}


def test_recipe_rerun_skips_everything_unchanged(recipe):
    before = markers(recipe)
    res = run_recipe(recipe)
    assert markers(recipe) == before
    assert " re-runs: " not in res.stderr


def test_recipe_rerun_after_one_text_line_changed_reruns_downstream_stages(tree):
    text = tree / "data" / "train" / "text"
    lines = text.read_text().splitlines()
    utt, words = lines[0].split(None, 1)
    lines[0] = f"{utt} {words} LOW"
    text.write_text("\n".join(lines) + "\n")
    before = markers(tree)
    res = run_recipe(tree)
    changed = _changed(before, markers(tree))
    for m in ("data/lang/.done", "exp/mono/.done", "exp/tri/.done", "exp/tri/ali_dev/.done",
              "exp/members/m1/.train.done", "exp/members/m2/.train.done", "exp/members/.ensemble.done",
              "exp/ensemble/soft/.done", "exp/student_kd/.distill.done", "exp/control/.distill.done",
              "exp/tri/graph/.done", "exp/decode/m1_test/.done", "exp/decode/student_kd_dev/.done",
              "exp/export/.done", "exp/.report.done"):
        assert m in changed, f"{m} was not redone after data/train/text changed"
    for s in ("train", "dev", "test"):   # the features do not read the transcripts
        assert f"data/{s}/.features.done" not in changed
    assert "data/.prepare.done" not in changed    # the source was not edited
    assert "input ../train/text changed" in res.stderr
    ctm = (tree / "exp" / "tri" / "ali_train" / "words.ctm").read_text().splitlines()
    assert sum(line.split()[0] == utt for line in ctm) == len(words.split()) + 1
