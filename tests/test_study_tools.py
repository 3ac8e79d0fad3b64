"""recipes/common/study.py: the study scripts' summaries on small fake exp dirs (any corpus, paths
given), and the one kept-share rule of acoustic_kd.report."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "recipes" / "common" / "study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("study", STUDY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _decode(d: Path, acc: float, wer: float, cer: float) -> None:
    d.mkdir(parents=True)
    (d / "frame_acc").write_text(f"{acc}\n")
    (d / "wer").write_text(f"%WER {wer:.2f} [ {round(wer * 10)} / 1000, 1 ins, 2 del, 3 sub ]\n")
    (d / "cer").write_text(f"%CER {cer:.2f} [ {round(cer * 10)} / 1000, 1 ins, 2 del, 3 sub ]\n")


def _seed_exp(tmp_path: Path, recipe_control: str = "control") -> Path:
    """Ensemble decode + seed 1001 as the recipe's own runs (its control in EXP/`recipe_control`)
    + seed 1002 under exp/seeds."""
    exp = tmp_path / "exp"
    _decode(exp / "decode" / "ensemble_test", 60.0, 40.0, 20.0)
    runs = {("student_kd", "1001"): (58.0, 41.0, 21.0, 100), (recipe_control, "1001"): (55.0, 44.0, 22.0, 80),
            ("student_kd", "1002"): (57.0, 42.0, 21.5, 110), ("control", "1002"): (54.0, 46.0, 23.0, 90)}
    for (system, seed), (acc, wer, cer, secs) in runs.items():
        if seed == "1001":
            train, dec = exp / system, exp / "decode" / f"{system}_test"
        else:
            train, dec = exp / "seeds" / f"s{seed}" / system, exp / "decode" / "seeds" / f"{system}_s{seed}_test"
        _decode(dec, acc, wer, cer)
        train.mkdir(parents=True)
        (train / "distill.json").write_text(json.dumps({"seconds": secs}))
    return exp


def test_kept_fraction_is_one_rule_for_accuracy_and_error_rate():
    from acoustic_kd.report import kept_fraction

    assert kept_fraction(55.0, 58.0, 60.0) == pytest.approx(0.6)         # frame accuracy
    assert kept_fraction(44.0, 41.0, 40.0) == pytest.approx(0.75)        # WER: lower is better
    assert kept_fraction(44.0, 39.0, 40.0) > 1                           # the student beat the ensemble
    assert math.isnan(kept_fraction(50.0, 51.0, 50.0))


def test_seeds_summary_table_kept_shares_and_times(tmp_path, study):
    exp = _seed_exp(tmp_path)
    text = study.seeds_summary(exp, "seeds", ["1001", "1002"], "--T 2", "1001", tune_once=True)
    assert (exp / "seeds" / "SEEDS.md").read_text() == text
    lines = text.splitlines()
    assert lines[0] == ("Seeds 1001 1002 (students; ensemble fixed) (extra options `--T 2`): test set, "
                        "mean ± std")
    assert lines[4] == "| distilled student | 57.50 ± 0.71 | 41.50 ± 0.71 | 21.25 ± 0.35 |"
    assert lines[5] == "| hard-target control | 54.50 ± 0.71 | 45.00 ± 1.41 | 22.50 ± 0.71 |"
    assert lines[6] == "| ensemble (one run) | 60.00 | 40.00 | 20.00 |"
    # frame accuracy (58-55)/(60-55) = 0.60, (57-54)/(60-54) = 0.50; WER (44-41)/(44-40) = 0.75,
    # (46-42)/(46-40) = 0.67
    assert ("frame accuracy (kd − hard)/(ensemble − hard) 0.60 0.50 → 0.55 ± 0.07; "
            "WER (hard − kd)/(hard − ensemble) 0.75 0.67 → 0.71 ± 0.06") in text
    assert "distilled 105.00 ± 7.07, hard control 85.00 ± 7.07" in text
    assert lines[-1] == "decode scales tuned on dev for seed 1001 and reused for the other seeds"
    one = study.seeds_summary(exp, "seeds", ["1001"], recipe_seed="1001")
    assert "(extra options" not in one and "0.60 → 0.60 ± 0.00" in one and "tuned on dev" not in one


def test_seeds_summary_finds_a_recipe_control_made_before_the_rename(tmp_path, study):
    new = study.seeds_summary(_seed_exp(tmp_path / "new"), "seeds", ["1001", "1002"], "", "1001")
    old = study.seeds_summary(_seed_exp(tmp_path / "old", "student_hard"), "seeds", ["1001", "1002"],
                              "", "1001")
    assert old == new and "| hard-target control | 54.50 ± 0.71 |" in old


def test_seeds_summary_command_line_and_missing_decode(tmp_path):
    exp = _seed_exp(tmp_path)
    r = subprocess.run([sys.executable, str(STUDY), "seeds-summary", "--exp", str(exp), "--opts= --T 2",
                        "--recipe-seed=1001", "1001", "1002"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "(extra options `--T 2`)" in r.stdout and r.stdout.endswith("\n\n")
    r = subprocess.run([sys.executable, str(STUDY), "seeds-summary", "--exp", str(exp), "1003"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "study.py seeds-summary: error:" in r.stderr and "s1003" in r.stderr


def _train_log(d: Path, recs: list[dict]) -> None:
    d.mkdir(parents=True)
    lines = [json.dumps({"type": "step", "step": 1, "loss": 3.0})]
    lines += [json.dumps({"type": "epoch", **r}) for r in recs]
    (d / "train_log.jsonl").write_text("\n".join(lines) + "\n")


def test_sweep_summary(tmp_path, study):
    name = tmp_path / "sweep"
    _train_log(name / "none", [{"epoch": 1, "dev_acc": 0.25, "train_acc": 0.3},
                               {"epoch": 2, "dev_acc": 0.281, "train_acc": 0.4},
                               {"epoch": 3, "dev_acc": 0.27, "train_acc": 0.5}])
    _train_log(name / "drop0.2", [{"epoch": 1, "dev_acc": 0.26, "train_acc": 0.28}])
    variants = study.parse_variants("none:|drop0.2:--dropout 0.2")
    assert variants == [("none", ""), ("drop0.2", "--dropout 0.2")]
    text = study.sweep_summary(name, variants)
    assert text.splitlines()[2:] == ["| none | `-` | 25.0 28.1 27.0 | 2 | 28.10 | 40.00 |",
                                     "| drop0.2 | `--dropout 0.2` | 26.0 | 1 | 26.00 | 28.00 |"]
    assert (name / "SWEEP.md").read_text() == text
    _train_log(name / "empty", [])
    with pytest.raises(Exception, match="no epoch with a dev accuracy"):
        study.sweep_summary(name, [("empty", "")])


def test_ali_summary(tmp_path, study):
    out = tmp_path / "cmp"
    for label, seed, wer, cer in (("exp_tri", 1, 50.0, 27.0), ("exp_tri", 2, 52.0, 28.0),
                                  ("exp_tri2", 1, 51.0, 27.5)):
        _decode(out / f"f0.03_{label}_s{seed}" / "decode", 0.0, wer, cer)
    text = study.ali_summary(out, "0.03", ["exp_tri", "exp_tri2"], ["1", "2"])
    lines = text.splitlines()
    assert lines[0] == "# The same DNN on each stage's alignments (train fraction 0.03, seeds 1 2)"
    assert lines[4] == "| exp_tri | 50.00 / 27.00 | 52.00 / 28.00 | 51.00 ± 1.41 | 27.50 ± 0.71 |"
    assert lines[5] == "| exp_tri2 | 51.00 / 27.50 | nan / nan | nan ± nan | nan ± nan |"
    assert (out / "COMPARE_f0.03.md").read_text() == text
    single = study.ali_summary(out, "0.03", ["exp_tri"], ["1"])
    assert "| exp_tri | 50.00 / 27.00 | 50.00 | 27.00 |" in single     # one seed: the value alone


def test_fraction_list_is_the_distill_subset(tmp_path, study):
    from acoustic_kd.ali import write_alignments
    from acoustic_kd.distill.train import fraction_utts

    import kaldiio

    d = tmp_path / "data"
    d.mkdir()
    lens = {f"u{i:02d}": 20 + 7 * i for i in range(12)}
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as w:
        for u, n in lens.items():
            w(u, np.zeros((n, 4), np.float32))
    (d / "utt2num_frames").write_text("".join(f"{u} {n}\n" for u, n in lens.items()))
    (d / "utt2spk").write_text("".join(f"{u} s\n" for u in lens))
    alis = {u: np.zeros(n, np.int32) for u, n in lens.items() if u != "u03"}
    write_alignments(tmp_path / "ali", alis, 2)
    got = study.fraction_list(d, tmp_path / "ali", 0.25, 1, tmp_path / "list")
    want = fraction_utts(sorted(alis), [lens[u] for u in sorted(alis)], 0.25, 1)
    assert got == want and "u03" not in got and 0 < len(got) < 11
    assert (tmp_path / "list").read_text() == "".join(u + "\n" for u in want)


def test_curves_of_members_and_every_seed(tmp_path, study):
    exp = tmp_path / "exp"
    for d in (exp / "members" / "m1", exp / "members" / "m2", exp / "student_kd",
              exp / "seeds" / "s1002" / "student_hard"):
        _train_log(d, [{"epoch": 1, "dev_acc": 0.4, "train_acc": 0.4}, {"epoch": 2, "dev_acc": 0.45}])
    (exp / "members" / "eval.json").write_text(json.dumps(
        {"sets": {"dev": {"ensemble": {"arithmetic": {"acc": 0.5}}}}}))
    line = study.curves(exp, tmp_path / "plots" / "c.png", "dev", num_members=2)
    assert line == (f"{tmp_path / 'plots' / 'c.png'} - member m1, member m2, student (seed 1001), "
                    "control (seed 1002)")
    assert (tmp_path / "plots" / "c.png").stat().st_size > 1000
