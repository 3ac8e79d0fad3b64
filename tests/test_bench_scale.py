"""bench/bench_scale_corpus.py: the exponent fit, the per-command accounting, and --smoke end to
end (every stage measured at two sizes, the second twice as long, results and table written)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_scale_corpus.py"
STAGES = ("features", "gmm_mono", "gmm_tri", "member_epoch", "soft_targets", "student_epoch",
          "decode_test")


def _bench():
    spec = importlib.util.spec_from_file_location("bench_scale_corpus", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_exponent_and_rss_spread():
    b = _bench()
    hours = [1.0, 3.0, 10.0, 30.0]
    assert b.fit_exponent(hours, [5 * h ** 1.2 for h in hours]) == pytest.approx(1.2, abs=1e-3)
    assert b.fit_exponent([2.0], [1.0]) is None
    sizes = [{"hours": h, "stages": {"s": {"wall_s": 2 * h, "cpu_s": 3 * h, "peak_rss_mb": m,
                                           "disk_mb": 4 * h}}}
             for h, m in ((10.0, 120.0), (1.0, 100.0))]
    fit = b.summarise(sizes)["s"]
    assert fit["exponent_wall"] == pytest.approx(1.0) and fit["exponent_cpu"] == pytest.approx(1.0)
    assert fit["rss_max_over_min"] == pytest.approx(1.2) and fit["disk_mb_per_hour"] == 4.0
    assert fit["cpu_s_per_hour"] == pytest.approx(3.0)


def test_a_command_is_measured_with_its_children(tmp_path):
    """CPU time spent in a child process of the command is counted, as /usr/bin/time counts it."""
    b = _bench()
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'sum(range(10**7))'])"
    pid_code, use = b._usage(*_spawn(tmp_path, code))
    assert pid_code == 0 and use["cpu_s"] > 0.1 and use["wall_s"] >= use["cpu_s"] * 0.5
    assert use["peak_rss_mb"] > 1


def _spawn(tmp_path, code):
    import os
    import time
    t0 = time.perf_counter()
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", code], dict(os.environ))
    return pid, t0


@pytest.mark.slow
def test_smoke_runs_every_stage_at_two_sizes(tmp_path):
    res = subprocess.run([sys.executable, str(BENCH), "--smoke", "--work", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    out = json.loads((tmp_path / "scale_corpus.json").read_text())
    small, big = sorted(out["sizes"], key=lambda s: s["hours"])
    assert big["hours"] / small["hours"] == pytest.approx(2.0, rel=0.05)
    for size in (small, big):
        assert set(size["stages"]) == set(STAGES)
        for use in size["stages"].values():
            assert use["wall_s"] > 0 and use["cpu_s"] > 0 and use["peak_rss_mb"] > 10
    # the store and the feature archives grow with the hours
    for stage in ("soft_targets", "features"):
        assert big["stages"][stage]["disk_mb"] / small["stages"][stage]["disk_mb"] == \
            pytest.approx(2.0, rel=0.1)
    assert set(out["exponents"]) == set(STAGES)
    assert all(f["exponent_cpu"] is not None for f in out["exponents"].values())
    table = (tmp_path / "scale_corpus.md").read_text()
    assert all(f"| {s} |" in table for s in STAGES)
    # a second run keeps what was measured (measured.json) and only rewrites the results
    again = subprocess.run([sys.executable, str(BENCH), "--smoke", "--work", str(tmp_path)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert json.loads((tmp_path / "scale_corpus.json").read_text())["sizes"] == out["sizes"]
