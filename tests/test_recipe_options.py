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
