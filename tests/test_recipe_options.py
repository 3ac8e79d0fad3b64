"""recipes/common/parse_options.sh: `--name value` into caller variables, typos refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

PARSE = Path(__file__).resolve().parents[1] / "recipes" / "common" / "parse_options.sh"


def run(args: str, defs: str = 'name=seeds; soft=""; value=1; kd_opts=""') -> subprocess.CompletedProcess:
    script = f'{defs}; set -- {args}; . "{PARSE}"; echo "$name|$soft|$value|$kd_opts"'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True)


def test_options_land_in_their_own_variables_whatever_their_names():
    # a caller variable called `name` or `value` must not be clobbered by the parser itself
    r = run('--name seeds_sp --soft exp/x --kd-opts "--T 2"')
    assert r.returncode == 0 and r.stdout.strip() == "seeds_sp|exp/x|1|--T 2"
    r = run("--value=7 --name=n")
    assert r.stdout.strip() == "n||7|"


def test_unknown_options_and_internal_names_are_refused():
    for bad in ("--nmae x", "--po-name x", "--_po_value x"):
        r = run(bad)
        assert r.returncode == 1 and "unknown option" in r.stderr, (bad, r.stderr)
    r = run("--name")
    assert r.returncode == 1 and "needs a value" in r.stderr


def _fake_toolkit(tmp_path: Path) -> tuple[dict, Path]:
    """An environment whose `acoustic-kd` only logs its arguments (one call a line)."""
    import os

    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    fake = bin_dir / "acoustic-kd"
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> "{log}"\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


def test_mboshi_speaker_split_gets_its_own_data_and_exp_dirs(tmp_path):
    run_sh = PARSE.parents[1] / "mboshi" / "run.sh"
    env, log = _fake_toolkit(tmp_path)
    cases = [([], "--out data --split upstream"), (["--split", "speaker"], "--out data_spk --split speaker"),
             (["--split", "speaker", "--data", "mine"], "--out mine --split speaker")]
    for extra, want in cases:
        log.unlink(missing_ok=True)
        r = subprocess.run(["bash", str(run_sh), "--src", "SRC", "--stop-stage", "0", *extra],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        assert log.read_text() == f"prepare mboshi --src SRC {want}\n", extra
    r = subprocess.run(["bash", str(run_sh), "--split", "both"], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "--split is upstream or speaker" in r.stderr


def test_bring_your_own_recipe_is_mboshi_s_where_the_data_does_not_decide():
    """recipes/kaldi_datadir/conf = recipes/mboshi/conf, except the values the data decides:
    the sample rate (auto) and the planned sizes, which the plan gives as Mboshi's on its numbers;
    neither run.sh passes kd.sh a setting (alignment pass and tuning subset: kd.sh's auto)."""
    import yaml

    from acoustic_kd.plan import ALIGN_PLAN, MEMBER_PLAN, STUDENT_PLAN, make_plan

    recipes = PARSE.parents[1]
    plan = make_plan(2.3704, frames=853328, phones=31, speakers=3, utts=2684, dev_words=1729)
    for name, planned in (("mboshi.yaml", {"align": ALIGN_PLAN, "train": MEMBER_PLAN}),
                          ("student.yaml", {"train": STUDENT_PLAN})):
        own = yaml.safe_load((recipes / "mboshi" / "conf" / name).read_text()) or {}
        byo = yaml.safe_load((recipes / "kaldi_datadir" / "conf" / name.replace("mboshi", "kaldi"))
                             .read_text()) or {}
        for section, fields in planned.items():
            for f, attr in fields.items():
                if f in own.get(section, {}):
                    assert own[section].pop(f) == getattr(plan, attr), (name, section, f)
                assert f not in byo.get(section, {}), (name, section, f)
        if name == "mboshi.yaml":
            from acoustic_kd.features.fbank import FbankConfig
            assert own["features"].pop("sample_rate", FbankConfig().sample_rate) == 16000
            assert byo["features"].pop("sample_rate") == "auto"
        assert own == byo, name
    assert (plan.gmm_stage, plan.tune_dev_every) == ("tri2", 3)
    for recipe in ("mboshi", "kaldi_datadir"):
        assert "kd_settings=" not in (recipes / recipe / "run.sh").read_text()


def test_mboshi_as_plain_kaldi_data_dirs(tmp_path):
    """local/as_kaldi_datadir.sh writes plain data dirs (no spk2utt), the lexicon and the trigram
    ARPA; `prepare kaldi` of them gives back the recipe's sets."""
    import os
    import sys

    import numpy as np
    import soundfile as sf

    from acoustic_kd.cli import main

    src = tmp_path / "staged"
    (src / "audio").mkdir(parents=True)
    texts = {"abiayi_a_1": "kyéma wó adí", "abiayi_a_2": "ikóó wó", "abiayi_a_3": "wó adí kyéma",
             "kouarata_b_1": "sωndω wó", "martial_c_1": "adí ikóó"}
    for u in texts:
        sf.write(src / "audio" / f"{u}.flac", 0.1 * np.random.default_rng(0).standard_normal(8000), 16000)
    (src / "transcripts.txt").write_text("".join(f"{u} {t}\n" for u, t in texts.items()), encoding="utf-8")
    (src / "split.txt").write_text("".join(f"{u} {'test' if u[0] == 'm' else 'train'}\n" for u in texts))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = tmp_path / "byo"
    r = subprocess.run(["bash", "local/as_kaldi_datadir.sh", "--src", str(src), "--out", str(out)],
                       cwd=PARSE.parents[1] / "mboshi", capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in (out / "data" / "train").iterdir()) == ["text", "utt2spk", "wav.scp"]
    assert (out / "lexicon.txt").read_text() == (out / "prepared" / "local" / "lexicon.txt").read_text()
    assert "ngram 3=" in (out / "lm.arpa").read_text()
    assert main(["prepare", "kaldi", "--src", str(out / "data"), "--lexicon", str(out / "lexicon.txt"),
                 "--out", str(tmp_path / "again")]) == 0
    for s in ("train", "dev", "test"):
        for f in ("wav.scp", "text", "utt2spk", "spk2utt"):
            assert (tmp_path / "again" / s / f).read_text() == (out / "prepared" / s / f).read_text()
