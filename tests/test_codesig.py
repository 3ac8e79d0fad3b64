"""The computed code signature (acoustic_kd.codesig): an edit deep in a stage's import chain re-runs
the stage, an edit to a module outside it does not. Runs on a copy of the package in tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acoustic_kd.codesig import closure, code_signature, direct_imports

from conftest import REPO

TRAIN = "acoustic_kd.nnet.stage"


@pytest.fixture
def pkg(tmp_path) -> Path:
    """A copy of acoustic_kd/ under tmp_path (the root for `code_signature`)."""
    shutil.copytree(REPO / "acoustic_kd", tmp_path / "acoustic_kd",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / "acoustic_kd" / rel
    text = path.read_text()
    assert old in text, f"{rel} no longer holds {old!r}: pick another edit"
    path.write_text(text.replace(old, new, 1))


def test_relative_and_from_package_imports_are_followed(pkg):
    (pkg / "acoustic_kd" / "probe.py").write_text(
        "from . import ali\nfrom .features import cmvn\nfrom .corpora import CORPORA\n"
        "def f():\n    import acoustic_kd.hmm\n    from .lang.arpa import read_arpa\n")
    got = direct_imports("acoustic_kd.probe", pkg)
    assert got == {"acoustic_kd.ali", "acoustic_kd.features.cmvn", "acoustic_kd.corpora",
                   "acoustic_kd.hmm", "acoustic_kd.lang.arpa"}
    # a parent package run on the way is not counted; the stage contract is not followed
    assert "acoustic_kd.features" not in closure(["acoustic_kd.probe"], pkg)
    assert "acoustic_kd.stage" not in closure(["acoustic_kd.decode.stage"], pkg)


def test_an_edit_deep_in_the_chain_changes_the_train_signature_an_unrelated_one_does_not(pkg):
    before = code_signature(TRAIN, pkg)
    assert {"acoustic_kd.features.cmvn", "acoustic_kd.features.featureset"} <= set(before)
    assert not {"acoustic_kd.corpora.yesno", "acoustic_kd.export.writer"} & set(before)
    _edit(pkg, "corpora/yesno.py", "def ", "def _unused():\n    return 0\n\n\ndef ")
    _edit(pkg, "export/writer.py", "def ", "def _unused():\n    return 0\n\n\ndef ")
    assert code_signature(TRAIN, pkg) == before
    _edit(pkg, "features/cmvn.py", "VAR_FLOOR = 1.0e-20", "VAR_FLOOR = 1.0e-18")
    after = code_signature(TRAIN, pkg)
    assert [m for m in after if after[m] != before[m]] == ["acoustic_kd.features.cmvn"]


_RUN_STAGE = """
import json, sys
import acoustic_kd
from acoustic_kd.nnet.stage import TrainJob
assert acoustic_kd.__file__.startswith(sys.argv[2]), acoustic_kd.__file__
# (epochs and batch size given: no corpus to plan them from)
st = TrainJob(train_data="data/train", train_ali="exp/tri/ali_train", out=sys.argv[1],
              options={"train": {"epochs": 2, "batch_size": 64}}).stage()
ran = st.begin()
if ran:
    st.finish()
print(json.dumps({"ran": ran, "reason": st.reason}))
"""


def _stage_run(root: Path, out: Path) -> dict:
    """Begin (and finish) a member's train stage (`TrainJob.stage()`) in `out`, in a process that
    imports the package at `root`."""
    env = dict(os.environ, PYTHONPATH=str(root))
    res = subprocess.run([sys.executable, "-c", _RUN_STAGE, str(out), str(root)],
                         env=env, cwd=root, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.splitlines()[-1])


def test_the_train_stage_reruns_after_a_cmvn_edit_and_skips_after_an_unrelated_one(pkg, tmp_path):
    out = tmp_path / "exp" / "m1"
    assert _stage_run(pkg, out)["ran"]
    _edit(pkg, "corpora/yesno.py", "def ", "def _unused():\n    return 0\n\n\ndef ")
    assert not _stage_run(pkg, out)["ran"]
    _edit(pkg, "features/cmvn.py", "VAR_FLOOR = 1.0e-20", "VAR_FLOOR = 1.0e-18")
    again = _stage_run(pkg, out)
    assert again["ran"] and "code of acoustic_kd.features.cmvn changed" in again["reason"]
