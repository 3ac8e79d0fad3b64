"""Output dirs (acoustic_kd.outdir, and the stage contract that uses it): a command never deletes a
file it did not write.

The helper and the stage on their own first; then every command of the CLI that takes `--out` or
`--exp`, found in the CLI's own parser (a new command is covered without editing this file): an
unrelated file is put into its output dir, the command runs on the tiny generated pipeline of
conftest (`tiny`), with `--force` where it has one, and the file must be there afterwards.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from acoustic_kd.cli import build_parser, main
from acoustic_kd.errors import DataError
from acoustic_kd.outdir import staged_dir
from acoustic_kd.stage import Stage
from conftest import SMALL_ALIGN, SMALL_TRAIN

PLANTED = "not-written-by-acoustic-kd.txt"


# ------------------------------------------------------------------ the helper and the stage
def whole_dir_stage(out: Path, lr: float = 0.1, name: str = "demo") -> Stage:
    return Stage(name, out, {"lr": lr}, code=["acoustic_kd.stage"], outputs=[out], marker="")


def test_a_whole_dir_stage_refuses_a_dir_it_did_not_write(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "final.pt").write_text("someone's model")
    with pytest.raises(DataError, match=r"out: is not empty and was not written by `demo`: it holds "
                                        r"final.pt \(fix: give an empty or new output dir"):
        whole_dir_stage(out).begin(force=True)
    assert (out / "final.pt").read_text() == "someone's model"
    (out / "final.pt").unlink()
    (out / ".gitkeep").write_text("")      # hidden files alone do not make a dir someone's
    assert whole_dir_stage(out).begin() and (out / ".gitkeep").exists()


def test_a_rerun_deletes_what_the_stage_wrote_and_keeps_the_rest(tmp_path):
    out = tmp_path / "out"
    st = whole_dir_stage(out)
    assert st.begin()
    (out / "result.txt").write_text("old")
    (out / "old-only.txt").write_text("an output the new settings no longer make")
    st.finish()
    assert json.loads((out / ".done").read_text())["written"] == ["old-only.txt", "result.txt"]
    (out / "notes.txt").write_text("mine")                  # added after the run
    for force, lr in ((False, 0.2), (True, 0.2)):           # changed setting, then --force
        st = whole_dir_stage(out, lr)
        assert st.begin(force) and st.fresh
        assert not (out / "result.txt").exists() and not (out / "old-only.txt").exists()
        assert (out / "notes.txt").read_text() == "mine"
        (out / "result.txt").write_text("new")
        st.finish()
        assert "notes.txt" not in json.loads((out / ".done").read_text())["written"]


def test_another_commands_marker_of_the_same_name_is_refused(tmp_path):
    out = tmp_path / "out"
    st = whole_dir_stage(out, name="export")
    assert st.begin()
    (out / "model.onnx").write_text("x")
    st.finish()
    with pytest.raises(DataError, match=r"holds the output of another command \(export: \.done\), "
                                        r"not of `decode`"):
        whole_dir_stage(out, name="decode").begin(force=True)
    # a stage that writes named files only: the same marker name of another owner is refused too
    named = Stage("train", tmp_path / "m", {"a": 1}, outputs=[tmp_path / "m" / "final.pt"])
    assert named.begin()
    named.finish()
    with pytest.raises(DataError, match="another command"):
        Stage("train", tmp_path / "m", {"b": 1}, owner="distill").begin()


def test_interrupted_run_owns_its_dir_and_older_markers_are_recognised(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".keep").write_text("")
    st = whole_dir_stage(out)
    assert st.begin()                      # killed after writing part of its outputs
    (out / "part.txt").write_text("half")
    st = whole_dir_stage(out, lr=0.3)      # not refused: the dir is the interrupted run's
    assert st.begin() and st.fresh and not (out / "part.txt").exists() and (out / ".keep").exists()
    # a marker of an older version (no owner, no list of what it wrote): only its listed outputs
    (out / "a.txt").write_text("1")
    (out / ".done").write_text(json.dumps({"stage": {"config": {"lr": 0.1}}, "outputs": ["a.txt"]}))
    (out / "b.txt").write_text("2")
    (out / ".demo.started").unlink(missing_ok=True)
    (out / ".started").unlink(missing_ok=True)
    st = whole_dir_stage(out, lr=0.5)
    assert st.begin() and not (out / "a.txt").exists() and (out / "b.txt").read_text() == "2"


def test_staged_dir_moves_entries_in_and_keeps_the_others(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "stale").write_text("old")
    (out / "keep.txt").write_text("mine")
    with staged_dir(out) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "new").write_text("new")
        (tmp / ".done").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == [".done", "keep.txt", "sub"]
    assert [p.name for p in (out / "sub").iterdir()] == ["new"]
    with pytest.raises(RuntimeError):
        with staged_dir(out) as tmp:
            (tmp / "keep.txt").write_text("overwritten")
            raise RuntimeError("failed half-way")
    assert (out / "keep.txt").read_text() == "mine" and not list(tmp_path.glob(".out.tmp*"))


# ------------------------------------------------------------------ every command with an output dir
def output_options() -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(command, output option, its parser) for every subcommand of the CLI and each of --out and
    --exp it takes."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [(name, opt, p) for name, p in sorted(sub.choices.items())
            for opt in ("--out", "--exp") if opt in {s for a in p._actions for s in a.option_strings}]


def generic_args(p: argparse.ArgumentParser, opt: str, where: Path) -> list[str]:
    """Arguments for a command this file does not know: every required option and positional gets
    a path (that does not exist) or its first choice."""
    args = []
    for a in p._actions:
        if a.option_strings and a.required and opt not in a.option_strings:
            args += [a.option_strings[0], str(where / "input")]
        elif not a.option_strings and a.nargs not in ("*", "?", argparse.REMAINDER, 0):
            args.append(sorted(a.choices)[0] if a.choices else str(where / "input"))
    return args


def examples(t: dict) -> dict[str, list[str]]:
    """Arguments (all but the output option) that run each known command (`name --option` where
    the command has two) on the tiny pipeline."""
    d, ali, model = str(t["data"]), str(t["ali"]), str(t["model"] / "final.pt")
    lexicon = str(t["corpus"] / "local" / "lexicon.txt")
    return {
        "prepare": ["kaldi", "--src", str(t["corpus"]), "--lexicon", lexicon],
        "lang": ["--data", d, "--lexicon", lexicon],
        "align --exp": ["--data", d, "--lang", str(t["lang"]), *SMALL_ALIGN],
        "align --out": ["--nnet", model, "--hmm-dir", str(t["exp"] / "tri"), "--lang", str(t["lang"]),
                        "--align-sets", d],
        "mkgraph": ["--lang", str(t["lang"]), "--model", str(t["exp"] / "tri" / "final.hmm.json")],
        "train": ["--train-data", d, "--train-ali", ali, *SMALL_TRAIN],
        "ensemble": ["--num-members", "1", "--eval-only", "--dev-data", d, "--dev-ali", ali],
        "soft-targets": ["--members", model, "--data", d, "--k", "5"],
        "distill": ["--train-data", d, "--train-ali", ali, "--alpha", "1", "--student-hidden", "8",
                    "--student-layers", "1", "--student-context", "2", "2", "--epochs", "1",
                    "--batch-size", "128", "--warmup-steps", "2"],
        "decode": ["--graph", str(t["graph"]), "--data", d, "--model", model, "--acwt", "0.1",
                   "--word-penalty", "0"],
        "export": ["--checkpoint", model, "--graph", str(t["graph"])],
        "report": ["--num-members", "1"],
        "score": ["--ref", str(t["data"] / "text"), "--hyp", str(t["data"] / "text")],
    }


NO_STAGE = {"score"}   # writes wer/cer/errs files by name, never deletes: no stage, nothing to claim
# a trained member in the dir: a system for report, the member ensemble evaluates (its training is
# `train`'s, run as jobs: tested in test_ensemble)
SETUP = {"report": lambda t, out: shutil.copytree(t["model"], out / "members" / "m1"),
         "ensemble": lambda t, out: shutil.copytree(t["model"], out / "m1")}


def test_every_command_keeps_a_file_it_did_not_write_in_its_output_dir(tiny, tmp_path, monkeypatch,
                                                                        capsys, one_torch_thread):
    claimed: list[Path] = []
    real_claim = Stage.claim
    monkeypatch.setattr(Stage, "claim", lambda self: (claimed.append(self.dir), real_claim(self))[1])
    cases, known = output_options(), examples(tiny)
    assert {"decode", "export", "lang", "mkgraph", "train", "report"} <= {c[0] for c in cases}
    for name, opt, parser in cases:
        key = f"{name} {opt}" if f"{name} {opt}" in known else name
        out = tmp_path / name / opt[2:]
        out.mkdir(parents=True)
        planted = out / PLANTED
        planted.write_text(f"written by hand for {name}\n")
        SETUP.get(name, lambda t, o: None)(tiny, out)
        args = known.get(key) or generic_args(parser, opt, tmp_path / name)
        force = [["--force"]] if "--force" in {s for a in parser._actions for s in a.option_strings} else []
        for extra in [[], *force]:
            claimed.clear()
            rc = main([name, opt, str(out), *extra, *args])   # (args may end in a REMAINDER)
            err = capsys.readouterr().err
            what = f"{name} {opt} {' '.join(extra)}: rc {rc}\n{err[-1500:]}"
            assert planted.read_text() == f"written by hand for {name}\n", what
            assert rc in (0, 1) and "Traceback" not in err, what
            if key not in known:
                continue   # a new command: the file survived; examples() can make it run further
            refused = f"{out}: is not empty and was not written by `{name}`" in err
            assert rc == 0 or refused, what
            assert name in NO_STAGE or any(c == out or out in c.parents for c in claimed), what
