"""The sizing rule (acoustic_kd/plan.py) and `acoustic-kd plan`: monotone in hours, the anchors
reproduced, small corpora capped, and a value in the config or on the command line always wins."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from acoustic_kd.cli import build_parser, main
from acoustic_kd.errors import DataError
from acoustic_kd.plan import (ALIGN_PLAN, MEMBER_PLAN, corpus_stats, make_plan, planned_config,
                              record_plan, search_plan)

HOURS = [0.01, 0.05, 0.1, 0.3, 0.7, 1, 2, 2.37, 3, 5, 10, 30, 81, 100, 300, 960, 1000, 3000]


def test_sizes_grow_and_epochs_fall_with_the_hours():
    plans = [make_plan(h, phones=40, utts=int(h * 600)) for h in HOURS]
    for key in ("tri_leaves", "tri_gauss", "tri2_leaves", "tri2_gauss", "batch_size", "max_active"):
        vals = [getattr(p, key) for p in plans]
        assert vals == sorted(vals), (key, vals)
    for key in ("member_epochs", "student_epochs", "beam"):
        vals = [getattr(p, key) for p in plans]
        assert vals == sorted(vals, reverse=True), (key, vals)
    assert plans[0].tri2_leaves == 3 * 40 + 5 and plans[-1].tri_leaves > 5000   # the range is covered
    assert all(p.tri_gauss >= p.tri_leaves and p.tri2_gauss >= p.tri2_leaves for p in plans)
    assert [p.gmm_stage for p in plans].index("tri2") == HOURS.index(1)


@pytest.mark.parametrize("hours,leaves,gauss", [(5.0, 2500, 15000), (81.0, 4200, 40000),
                                                 (960.0, 7000, 150000)])
def test_kaldi_anchors_within_two_percent(hours, leaves, gauss):
    p = make_plan(hours, phones=39)
    assert abs(p.tri2_leaves / leaves - 1) < 0.02 and abs(p.tri2_gauss / gauss - 1) < 0.02
    # mini_librispeech's hand sizes 2000-2500 leaves / 10-15k Gaussians hold for both passes
    if hours == 5.0:
        assert 2000 <= p.tri_leaves <= p.tri2_leaves <= 2500
        assert 10000 <= p.tri_gauss <= p.tri2_gauss <= 15000


def test_mboshi_measured_recipe_reproduced_exactly():
    # the numbers corpus_stats reads from Mboshi's prepared data/train (and data/lang, data/dev)
    p = make_plan(2.3704, frames=853328, phones=31, speakers=3, utts=2684, dev_words=1729)
    assert (p.tri_leaves, p.tri_gauss, p.tri2_leaves, p.tri2_gauss) == (2000, 10000, 2500, 15000)
    assert (p.member_epochs, p.student_epochs, p.batch_size) == (6, 5, 512)
    assert (p.gmm_stage, p.mono_subset, p.beam, p.max_active) == ("tri2", 0, 13.0, 7000)
    assert p.tune_dev_every == 3                   # 100 of its 298 dev utterances
    assert make_plan(0.2919, frames=105098).member_epochs == 10        # FSDD's measured 10


def test_small_corpora_are_capped_by_frames_and_phones():
    p = make_plan(0.043, frames=15471, phones=5)                       # yesno
    assert p.tri2_leaves == round(15471 / 250) and p.tri2_gauss == round(15471 / 50)
    assert "250 frames a leaf" in p.reasons["tri2_leaves"]
    assert p.batch_size == 256 and p.beam == 15.0 and p.gmm_stage == "tri"
    few = make_plan(3.0, phones=2)                 # 2 phones: at most 3 x 2^3 triphone states
    assert few.tri2_leaves == 24 and "phones cubed" in few.reasons["tri2_leaves"]
    many = make_plan(0.01, frames=2000, phones=50)                     # at least the monophone states
    assert many.tri2_leaves == 3 * 50 + 5 and many.tri2_gauss >= many.tri2_leaves
    with pytest.raises(DataError, match="0 hours"):
        make_plan(0.0)


def _yaml(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_config_and_command_line_values_win_over_the_plan(tmp_path):
    from acoustic_kd.gmm.train import AlignConfig
    from acoustic_kd.nnet.trainer import TrainConfig

    plan = make_plan(2.3704, frames=853328)
    y = _yaml(tmp_path, "align: {tri_leaves: 60, tri_gauss: auto, tri2_gauss: null}\n"
                        "train: {epochs: 3}\n")
    over = {"tri2_leaves": 90, "tri_leaves": None}
    cfg, got, chosen = planned_config(AlignConfig, y, "align", over, lambda: plan, ALIGN_PLAN)
    assert got is plan and (cfg.tri_leaves, cfg.tri2_leaves) == (60, 90)         # YAML, CLI
    assert (cfg.tri_gauss, cfg.tri2_gauss, cfg.mono_subset) == (10000, 15000, 0)  # auto, null, absent
    assert set(chosen) == {"tri_gauss", "tri2_gauss", "mono_subset"}
    cfg, _, chosen = planned_config(TrainConfig, y, "train", {"batch_size": 64}, lambda: plan,
                                    MEMBER_PLAN)
    assert (cfg.epochs, cfg.batch_size, chosen) == (3, 64, {})

    def fail():
        raise AssertionError("the plan is not read when the config gives every value")

    assert planned_config(TrainConfig, y, "train", {"batch_size": 8}, fail, MEMBER_PLAN)[1] is None
    cfg, got, chosen = planned_config(TrainConfig, None, "train", {}, lambda: plan, MEMBER_PLAN)
    record_plan(tmp_path / "m1", got, chosen, MEMBER_PLAN, "member")
    rec = json.loads((tmp_path / "m1" / "plan.json").read_text())
    assert rec["chosen"]["epochs"]["value"] == 6 and "2.37 h" in rec["chosen"]["epochs"]["reason"]
    assert rec["inputs"]["frames"] == 853328


def _data_dir(tmp_path, durs=(1.5, 2.0, 0.5), rate=8000):
    """A data dir of generated WAVs (one speaker per two utterances), without utt2dur."""
    d = tmp_path / "train"
    d.mkdir()
    rng = np.random.default_rng(0)
    wav, u2s, text = [], [], []
    for i, dur in enumerate(durs):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(dur * rate))).astype(np.float32), rate)
        wav.append(f"u{i} {path}\n")
        u2s.append(f"u{i} s{i // 2}\n")
        text.append(f"u{i} a b c\n")
    for name, rows in (("wav.scp", wav), ("utt2spk", u2s), ("text", text)):
        (d / name).write_text("".join(rows))
    return d


def test_corpus_stats_from_audio_durations_segments_and_frames(tmp_path):
    d = _data_dir(tmp_path)
    s = corpus_stats(d)
    assert (s.utts, s.speakers, s.phones) == (3, 2, None)
    assert s.hours == pytest.approx(4.0 / 3600) and s.frames == 400
    (d / "utt2dur").write_text("u0 1.0\nu1 1.0\nu2 1.0\n")
    assert corpus_stats(d).hours == pytest.approx(3.0 / 3600)
    (d / "utt2num_frames").write_text("u0 100\nu1 200\nu2 300\n")
    (d / "fbank.json").write_text(json.dumps({"frame_shift_ms": 20.0}))
    s = corpus_stats(d)
    assert s.frames == 600 and s.hours == pytest.approx(12.0 / 3600)
    seg = tmp_path / "seg"
    seg.mkdir()
    (seg / "wav.scp").write_text(f"rec {tmp_path / 'u0.wav'}\n")
    (seg / "segments").write_text("a rec 0.0 0.5\nb rec 0.5 1.25\n")
    (seg / "utt2spk").write_text("a x\nb x\n")
    (seg / "text").write_text("a w\nb w\n")
    assert corpus_stats(seg).hours == pytest.approx(1.25 / 3600)
    lang = tmp_path / "lang"
    lang.mkdir()
    (lang / "phones.txt").write_text("<eps> 0\nSIL 1\nSPN 2\nA_B 3\nA_E 4\nB 5\n#0 6\n")
    assert corpus_stats(d, lang).phones == 2
    with pytest.raises(DataError, match="utt2spk"):
        corpus_stats(lang)


def test_plan_command_prints_choices_and_reasons(tmp_path, capsys):
    d = _data_dir(tmp_path, durs=(5.0,) * 4)
    assert main(["plan", "--data", str(d), "--dev", str(d)]) == 0
    out = capsys.readouterr().out
    assert "tri2_leaves" in out and "frames a leaf" in out and "tune_dev_every  1" in out
    assert main(["plan", "--data", str(d), "--get", "gmm_stage", "batch_size"]) == 0
    assert capsys.readouterr().out == "tri\n256\n"
    assert main(["plan", "--data", str(d), "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["choices"]["tri2_leaves"] == 2000 // 250 and js["inputs"]["utts"] == 4
    assert main(["plan", "--data", str(d), "--get", "leaves"]) == 1
    assert "choose from" in capsys.readouterr().err


def test_training_commands_take_the_plan_where_the_config_is_silent(tmp_path):
    from acoustic_kd.config import job_from_args
    from acoustic_kd.distill import stage as distill
    from acoustic_kd.nnet import stage as train

    def configs(module, job_cls, argv):   # the Job the command makes of its arguments
        args = build_parser().parse_args(argv)
        return job_from_args(job_cls, args, options=module.section_options(args)).configs()

    d = _data_dir(tmp_path, durs=(4.0,) * 3)
    y = _yaml(tmp_path, "train: {lr: 0.01}\n")
    base = ["--train-data", str(d), "--train-ali", "x", "--out", str(tmp_path / "o")]
    _, cfg, _ = configs(train, train.TrainJob, ["train", *base, "--config", str(y)])
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (12, 256, 0.01)
    argv = ["train", *base, "--config", str(y), "--epochs", "2"]
    assert configs(train, train.TrainJob, argv)[1].epochs == 2
    argv = ["distill", *base, "--student-config", str(y)]
    assert configs(distill, distill.DistillJob, argv)[1].epochs == 10


def test_help_names_the_plan_as_the_default(capsys):
    with pytest.raises(SystemExit):
        main(["align", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--tri2-leaves TRI2_LEAVES tied states" in out
    assert out.count("default: from the corpus: acoustic-kd plan)") == len(ALIGN_PLAN)


def test_search_plan_follows_the_pdf_count():
    """Beam 15 for tiny models, 13 from 1440 pdfs; max-active 3 a pdf within 2000..7000; the
    corpus plan applies the same rule to the leaves of the pass the networks use."""
    assert [(p.beam, p.max_active) for p in map(search_plan, (50, 1439, 1440, 2000, 2500))] == [
        (15.0, 2000), (15.0, 4317), (13.0, 4320), (13.0, 6000), (13.0, 7000)]
    p = make_plan(2.3704, frames=853328)
    assert (p.beam, p.max_active) == (search_plan(p.tri2_leaves).beam, search_plan(p.tri2_leaves).max_active)

