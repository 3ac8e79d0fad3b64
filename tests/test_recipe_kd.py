"""recipes/common/kd.sh and the run.sh files that call it, with a stand-in `acoustic-kd` that only
records its arguments: kd.sh's options and --help, the run.sh -> kd.sh pass-through (the recipe's
own settings first, the user's after them and winning), per-stage extra options, and wrong options
refused before anything runs."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
KD = RECIPES / "common" / "kd.sh"
ALL = ("fsdd", "kaldi_datadir", "librispeech", "mboshi", "synth_digits", "yesno")
NEEDS_SRC = {"kaldi_datadir": ["--src", "/x/src", "--lexicon", "/x/lexicon.txt"],
             "librispeech": ["--src", "/x/libri"]}


@pytest.fixture
def stub(tmp_path):
    """PATH with an `acoustic-kd` that appends its argv (shell-quoted) to tmp_path/calls and
    answers `plan --get gmm_stage tune_dev_every` (kd.sh's auto options) with $PLAN (one value a
    line; default tri and 1)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    (bin_dir / "acoustic-kd").write_text(f'#!/usr/bin/env bash\n{{ printf "%q " "$@"; echo; }} >> {log}\n'
                                         '[ "$1" = plan ] && printf "%s\\n" ${PLAN:-tri 1}\nexit 0\n')
    (bin_dir / "acoustic-kd").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path, env, log


def run_recipe(stub, recipe: str, *args: str, plan: str = "tri 1"
               ) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run a recipe's run.sh with the stand-in; `plan`: what `acoustic-kd plan` answers."""
    work, env, log = stub
    env = dict(env, PLAN=plan)
    data = work / "data"
    (data / "train").mkdir(parents=True, exist_ok=True)
    (data / "dev").mkdir(exist_ok=True)
    (data / "train" / "fbank.json").write_text('{"sample_rate": 16000}')
    (data / "dev" / "text").write_text("".join(f"u{i} a\n" for i in range(1, 8)))
    log.write_text("")
    res = subprocess.run(["bash", str(RECIPES / recipe / "run.sh"), *NEEDS_SRC.get(recipe, []),
                          "--data", str(data), "--exp", str(work / "exp"), *args],
                         env=env, capture_output=True, text=True, timeout=120)
    return res, [shlex.split(line) for line in log.read_text().splitlines()]


def calls_of(calls: list[list[str]], command: str) -> list[list[str]]:
    return [c for c in calls if c[0] == command]


def value(call: list[str], option: str) -> str:
    return call[len(call) - 1 - call[::-1].index(option) + 1]      # the last one wins


def test_help_lists_the_stages_and_every_option_with_its_default():
    res = subprocess.run([str(KD), "--help"], cwd=RECIPES / "yesno", capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for stage in ("1 lang", "4 ensemble", "10 report"):
        assert stage in out
    for opt, default in (("stage", "0"), ("stop-stage", "10"), ("nj", "2"), ("members-nj", "2"),
                         ("num-members", "5"), ("student-config", "conf/student.yaml"),
                         ("distill-mode", "cached"), ("gmm-pass", "auto"), ("train-seed", "1")):
        assert f"--{opt} (default: {default})" in out, opt
    assert "(here: conf/yesno.yaml)" in out          # the config default, resolved in the recipe
    for s in ("lang", "features", "align", "ensemble", "soft", "distill", "control", "mkgraph",
              "decode", "export", "report"):
        assert f"--{s}-args" in out


@pytest.mark.parametrize("recipe", ALL)
def test_run_sh_help_shows_its_own_options_and_points_at_kd_sh(recipe):
    res = subprocess.run(["bash", str(RECIPES / recipe / "run.sh"), "--help"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert "Options of this recipe" in res.stdout and "../common/kd.sh --help" in res.stdout
    assert "--stage (default" not in res.stdout       # kd.sh's options are listed by kd.sh only


@pytest.mark.parametrize("recipe", ALL)
def test_every_recipe_runs_every_stage_with_its_config(stub, recipe):
    res, calls = run_recipe(stub, recipe)
    assert res.returncode == 0, res.stderr
    commands = [c[0] for c in calls if c[0] != "plan"]
    assert calls_of(calls, "plan")[0][-3:] == ["--get", "gmm_stage", "tune_dev_every"]
    assert commands[:3] == ["prepare", "lang", "features"] and commands[-1] == "report"
    # the GMM pass, the control, 5 members, the ensemble and the student; each on test and dev
    decodes = calls_of(calls, "decode")
    assert len(calls_of(calls, "distill")) == 2 and len(decodes) == 2 * (1 + 5 + 3)
    gmm = [c for c in decodes if "--gmm" in c]
    assert [value(c, "--out").rsplit("/", 1)[-1] for c in gmm] == ["gmm_tri_test", "gmm_tri_dev"]
    assert all(value(c, "--gmm").endswith("/exp/tri") and "--model" not in c for c in gmm)
    assert value(gmm[0], "--graph") == value(decodes[-1], "--graph")    # the networks' graph
    ensemble = [c for c in decodes if value(c, "--out").endswith("/ensemble_test")][0]
    assert ensemble.count("--model") == 5
    config = value(calls_of(calls, "lang")[0], "--config")
    assert config.startswith("conf/") and "student" not in config
    assert value(calls_of(calls, "ensemble")[0], "--nj") == "2"


def test_nj_reaches_every_stage_that_splits(stub):
    """--nj goes to features, align, soft-targets and every decode (their parts or processes)."""
    res, calls = run_recipe(stub, "yesno", "--nj", "3")
    assert res.returncode == 0, res.stderr
    for command in ("features", "align", "soft-targets", "decode"):
        assert calls_of(calls, command), command
        assert {value(c, "--nj") for c in calls_of(calls, command)} == {"3"}, command
    assert value(calls_of(calls, "ensemble")[0], "--nj") == "2"     # --members-nj's


def test_the_plan_fills_the_auto_options_and_the_users_win(stub):
    res, calls = run_recipe(stub, "mboshi", "--stage", "3", "--stop-stage", "8", plan="tri2 3")
    assert res.returncode == 0, res.stderr
    assert value(calls_of(calls, "align")[0], "--through") == "tri2"
    assert value(calls_of(calls, "decode")[0], "--tune-on-dev").endswith("/dev_tune")
    res, calls = run_recipe(stub, "mboshi", "--gmm-pass", "tri", "--tune-dev-every=1",
                            "--stage", "3", "--stop-stage", "8", plan="tri2 3")
    assert res.returncode == 0, res.stderr
    assert value(calls_of(calls, "align")[0], "--through") == "tri"
    assert value(calls_of(calls, "decode")[0], "--tune-on-dev").endswith("/data/dev")
    # the option's older name still works for one release, and says so
    res, calls = run_recipe(stub, "yesno", "--gmm-stage", "tri2", "--stage", "3", "--stop-stage", "3")
    assert res.returncode == 0 and "--gmm-stage is now called --gmm-pass" in res.stderr, res.stderr
    assert value(calls_of(calls, "align")[0], "--through") == "tri2"


def test_stage_args_are_appended_to_their_stage_only(stub):
    res, calls = run_recipe(stub, "yesno", "--stage", "4", "--distill-args", "--T 2  --alpha 0.3",
                            "--decode-args", "--lattice", "--ensemble-args", "--seed 9",
                            "--recipe-title", "mine")
    assert res.returncode == 0, res.stderr
    kd, hard = calls_of(calls, "distill")
    assert kd[-4:] == ["--T", "2", "--alpha", "0.3"] and "--T" not in hard
    # the control: exp/control, given the members (its features normalised as theirs)
    assert value(hard, "--out").endswith("/exp/control") and value(hard, "--alpha") == "1"
    assert value(hard, "--members").endswith("/exp/members/m1/final.pt")
    assert all(c[-1] == "--lattice" for c in calls_of(calls, "decode"))
    assert value(calls_of(calls, "ensemble")[0], "--seed") == "9"
    assert value(calls_of(calls, "report")[0], "--title") == "mine"
    assert not calls_of(calls, "lang") and not calls_of(calls, "prepare")


def test_speed_perturb_trains_the_students_on_the_copies(stub):
    res, calls = run_recipe(stub, "fsdd", "--speed-perturb", "0.9 1.1", "--stop-stage", "6")
    assert res.returncode == 0, res.stderr
    perturb = [c for c in calls if c[:2] == ["data-dir", "speed-perturb"]]
    assert [value(c, "--factor") for c in perturb] == ["0.9", "1.1"]
    assert not any("--sample-rate" in c for c in perturb)   # (the copies keep the data's own rate)
    assert value(calls_of(calls, "distill")[0], "--train-data").endswith("/train_all")
    assert value(calls_of(calls, "ensemble")[0], "--train-data").endswith("/data/train")


@pytest.mark.parametrize("args, message", [
    (["--nmae", "1"], "unknown option --nmae"),
    (["--distill-mode", "cahced"], "--distill-mode is cached or online"),
    (["--num-members", "0"], "--num-members must be a positive integer"),
    (["--stage"], "option --stage needs a value"),
    (["stray"], "unexpected argument 'stray'"),
])
def test_wrong_options_stop_the_recipe_before_stage_0(stub, args, message):
    res, calls = run_recipe(stub, "yesno", *args)
    assert res.returncode != 0 and message in res.stderr, res.stderr
    assert "--help" in res.stderr and calls == []


def test_kd_sh_refuses_unknown_options_and_a_missing_config(tmp_path):
    res = subprocess.run([str(KD), "--members-nj", "1", "--bogus", "x"], cwd=RECIPES / "yesno",
                         capture_output=True, text=True)
    assert res.returncode == 1 and "unknown option --bogus" in res.stderr and "--help" in res.stderr
    res = subprocess.run([str(KD)], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 1 and "--config" in res.stderr


def test_mboshi_scale_builds_the_bigger_set_and_keeps_the_real_lm_dev_and_test(stub):
    """Stage 0: the real data and its lang, the augmented train set, the real dev/test copied;
    kd.sh gets the real LM, Mboshi's configs, the data dir and exp_<hours>h."""
    work, env, log = stub
    real, data = work / "real", work / "d30"
    (real / "local").mkdir(parents=True)
    (real / "local" / "lexicon.txt").write_text("a a\n")
    (data / "dev").mkdir(parents=True)
    (data / "dev" / "text").write_text("u1 a\n")
    res = subprocess.run(["bash", str(RECIPES / "mboshi_scale" / "run.sh"), "--real-data", str(real),
                          "--data", str(data), "--hours", "30", "--aug-seed", "4", "--nj", "3",
                          "--stop-stage", "3"],
                         env=dict(env, PLAN="tri2 1"), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    calls = [shlex.split(line) for line in log.read_text().splitlines()]
    aug = [c for c in calls if c[:2] == ["data-dir", "augment"]]
    assert aug == [["data-dir", "augment", f"{real}/train", f"{data}/train", "--hours", "30",
                    "--seed", "4", "--nj", "3"]]
    assert [c[2:] for c in calls if c[:2] == ["data-dir", "combine"]][:2] == \
        [[f"{data}/dev", f"{real}/dev"], [f"{data}/test", f"{real}/test"]]
    lang = calls_of(calls, "lang")
    assert value(lang[0], "--out") == f"{real}/lang"
    assert value(lang[1], "--arpa") == f"{real}/lang/G.arpa"
    assert value(lang[1], "--data") == f"{data}/train"
    assert value(lang[1], "--config") == "../mboshi/conf/mboshi.yaml"
    assert value(calls_of(calls, "align")[0], "--exp") == "exp_30h"
    assert (data / "local" / "lexicon.txt").read_text() == "a a\n"
