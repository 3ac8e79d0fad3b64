"""The Makefile's venv step on a copy of the Makefile (installs replaced by `true`): an interrupted
`python -m venv` (a python without pip) is repaired by `make` itself, and only a venv the Makefile
made is ever deleted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BROKEN_PYTHON = "#!/bin/sh\nexit 1\n"   # a python that cannot run pip nor ensurepip

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@pytest.fixture
def checkout(tmp_path) -> Path:
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    for name in ("setup.cfg", "pyproject.toml"):
        (tmp_path / name).write_text("")
    return tmp_path


def make_venv(d: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "venv", "INSTALL=true", f"PYTHON={sys.executable}"], cwd=d,
                          capture_output=True, text=True, timeout=300)


def pip_works(d: Path) -> bool:
    return subprocess.run([str(d / ".venv" / "bin" / "python"), "-m", "pip", "--version"],
                          capture_output=True).returncode == 0


def broken_venv(d: Path, made_by_make: bool) -> None:
    (d / ".venv" / "bin").mkdir(parents=True)
    (d / ".venv" / "mine.txt").write_text("kept")
    (d / ".venv" / "bin" / "python").write_text(BROKEN_PYTHON)
    (d / ".venv" / "bin" / "python").chmod(0o755)
    if made_by_make:
        (d / ".venv" / ".made-by-make").write_text("")


def test_an_interrupted_venv_gets_pip_back_without_being_deleted(checkout):
    (checkout / ".venv").mkdir()
    (checkout / ".venv" / ".made-by-make").write_text("")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(checkout / ".venv")], check=True)
    (checkout / ".venv" / "mine.txt").write_text("kept")
    assert not pip_works(checkout)
    res = make_venv(checkout)
    assert res.returncode == 0, res.stderr
    assert pip_works(checkout) and (checkout / ".venv" / "mine.txt").exists()
    assert (checkout / ".venv" / ".installed").exists()
    assert make_venv(checkout).returncode == 0    # done: nothing more to do


@pytest.mark.parametrize("made_by_make", [True, False])
def test_a_venv_beyond_repair_is_made_again_only_when_make_made_it(checkout, made_by_make):
    broken_venv(checkout, made_by_make)
    res = make_venv(checkout)
    if made_by_make:
        assert res.returncode == 0, res.stderr
        assert ".venv has no working pip: making it again" in res.stdout
        assert pip_works(checkout) and not (checkout / ".venv" / "mine.txt").exists()
        assert (checkout / ".venv" / ".made-by-make").exists()   # the new one is marked too
    else:
        assert res.returncode != 0
        assert ".venv has no working pip and was not made by this Makefile: repair or delete it" in res.stderr
        assert (checkout / ".venv" / "mine.txt").read_text() == "kept"
        assert (checkout / ".venv" / "bin" / "python").read_text() == BROKEN_PYTHON

