"""End to end on tiny synthetic data: members -> soft targets -> distilled student and hard control,
through the `acoustic-kd` commands and the Python API."""

import json

import numpy as np
import pytest
import torch

from acoustic_kd.ali import write_alignments
from acoustic_kd.cli import main
from acoustic_kd.ensemble import load_teacher
from acoustic_kd.nnet.augment import AugmentConfig
from acoustic_kd.distill.store import SoftTargetStore
from acoustic_kd.distill.train import ConcatFrames, DistillConfig, fraction_utts, train_student
from acoustic_kd.features.io import ArkWriter
from acoustic_kd.nnet.data import FrameDataset
from acoustic_kd.nnet.infer import frame_metrics
from acoustic_kd.nnet.models import ModelConfig, build_model
from acoustic_kd.nnet.trainer import TrainConfig
from acoustic_kd.utils import write_table

P, D = 4, 6


def synth(n_utts, seed):
    """Runs of 5 frames per class; each class has a mean pattern + noise, so context helps."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(99).standard_normal((P, D)) * 2.5
    feats, alis = {}, {}
    for i in range(n_utts):
        t = int(rng.integers(20, 40))
        y = np.repeat(rng.integers(0, P, size=t // 5 + 1), 5)[:t]
        feats[f"s{seed}u{i:03d}"] = (means[y] + rng.standard_normal((t, D))).astype(np.float32)
        alis[f"s{seed}u{i:03d}"] = y.astype(np.int32)
    return feats, alis


def write_set(root, name, n_utts, seed):
    feats, alis = synth(n_utts, seed)
    d = root / "data" / name
    d.mkdir(parents=True)
    with ArkWriter(d / "feats.ark") as w:
        for u in sorted(feats):
            w.write(u, feats[u])
    write_table(d / "feats.scp", w.entries)
    write_table(d / "utt2spk", {u: "spk" for u in feats})
    write_table(d / "utt2num_frames", {u: str(len(f)) for u, f in feats.items()})
    write_alignments(root / "ali" / name, alis, P)
    return str(d), str(root / "ali" / name)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("kd")
    sets = {n: write_set(root, n, k, s) for n, k, s in (("train", 60, 1), ("dev", 15, 2),
                                                      ("test", 15, 3))}
    common = ["--train-data", sets["train"][0], "--train-ali", sets["train"][1],
              "--dev-data", sets["dev"][0], "--dev-ali", sets["dev"][1], "--context", "1", "1",
              "--epochs", "3", "--batch-size", "64", "--lr", "0.01", "--log-every", "0",
              "--num-threads", "1"]
    for i in (1, 2):
        assert main(["train", *common, "--hidden", "32", "--layers", "2", "--seed", str(i),
                     "--out", str(root / f"m{i}")]) == 0
    return root, sets


def test_soft_targets_over_jobs_equal_one_process(recipe, tmp_path):
    """--nj 2 (two local jobs, each reading only its shards' utterances) writes the same shards,
    byte for byte, as --nj 1 and as the store computed from the whole set held in memory."""
    from acoustic_kd.distill.soft_targets import (SoftTargetConfig, compute_soft_targets,
                                                  transfer_frames)

    root, sets = recipe
    members = [str(root / "m1" / "final.pt"), str(root / "m2" / "final.pt")]
    args = ["soft-targets", "--members", *members, "--data", sets["train"][0], "--T", "2",
            "--k", "2", "--shard-frames", "300", "--batch-size", "64"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--nj", "2", "--out", str(tmp_path / "two")]) == 0
    teacher, metas = load_teacher(members)
    feats = transfer_frames(teacher, metas, members, sets["train"][0]).feats
    compute_soft_targets(teacher, FrameDataset(feats, None, teacher.context),
                         SoftTargetConfig(T=2.0, k=2, shard_frames=300, batch_size=64),
                         tmp_path / "mem", members, sets["train"][0])
    names = sorted(p.name for p in (tmp_path / "one").glob("shard-*.npy"))
    assert len(names) >= 8          # >= 4 shards, split 2 + 2 (or more) between the jobs
    for name in names:
        one = (tmp_path / "one" / name).read_bytes()
        assert (tmp_path / "two" / name).read_bytes() == one, name
        assert (tmp_path / "mem" / name).read_bytes() == one, name
    metas_ = [json.loads((tmp_path / d / "meta.json").read_text()) for d in ("one", "two", "mem")]
    for m in metas_:
        m.pop("seconds")
    assert metas_[0] == metas_[1] == metas_[2]
    request = json.loads((tmp_path / "two" / "log" / "soft_targets.json").read_text())
    assert len(request["parts"]) == 2 and sum(map(len, request["parts"])) == len(names) // 2
    assert (tmp_path / "two" / "log" / "soft_targets.2.log").is_file()


def test_commands_end_to_end(recipe, capsys):
    root, sets = recipe
    members = [str(root / "m1" / "final.pt"), str(root / "m2" / "final.pt")]
    assert main(["soft-targets", "--members", *members, "--data", sets["train"][0], "--T", "2",
                 "--k", "2", "--out", str(root / "soft")]) == 0
    assert "bytes/frame" in capsys.readouterr().out
    store = SoftTargetStore(root / "soft")
    assert store.k == 2 and store.meta["members"] == members
    # the same store from a bf16 teacher: the same top-k ids on almost every frame, close probs
    assert main(["soft-targets", "--members", *members, "--data", sets["train"][0], "--T", "2",
                 "--k", "2", "--bf16", "true", "--out", str(root / "soft_bf16")]) == 0
    fast = SoftTargetStore(root / "soft_bf16")
    assert fast.meta["config"]["bf16"] is True and store.meta["config"]["bf16"] is False
    idx = torch.arange(store.meta["num_frames"])
    (i32, p32), (i16, p16) = store.lookup(idx), fast.lookup(idx)
    same = (i32 == i16).all(dim=1)
    assert same.float().mean() > 0.9
    assert (p32[same] - p16[same]).abs().max() < 0.05
    common = ["--train-data", sets["train"][0], "--train-ali", sets["train"][1],
              "--dev-data", sets["dev"][0], "--dev-ali", sets["dev"][1], "--test-data",
              sets["test"][0], "--test-ali", sets["test"][1], "--student-context", "1", "1",
              "--student-hidden", "16", "--student-layers", "1", "--epochs", "3", "--lr", "0.01",
              "--batch-size", "64", "--log-every", "0", "--num-threads", "1"]
    runs = {"kd": ["--soft", str(root / "soft"), "--alpha", "0.5"],  # T: the store's (2)
            "online": ["--online", "--members", *members, "--T", "3", "--alpha", "0.5",
                       "--alpha-final", "0", "--warmup-epochs", "1", "--noise-std", "0.3",
                       "--mixup-alpha", "0.4"],
            "hard": ["--alpha", "1"]}
    acc = {}
    for name, extra in runs.items():
        assert main(["distill", *common, *extra, "--out", str(root / name)]) == 0
        res = json.loads((root / name / "distill.json").read_text())
        acc[name] = res["test"]["acc"]
        assert (root / name / "final.pt").exists() and (root / name / "info.json").exists()
    assert min(acc.values()) > 0.6, acc        # chance is 0.25
    hard = json.loads((root / "hard" / "distill.json").read_text())
    assert hard["teachers"] == [] and hard["distill"]["alpha"] == 1.0
    # a re-run of a finished student reuses it and keeps its record (training time included)
    assert main(["distill", *common, *runs["hard"], "--out", str(root / "hard")]) == 0
    again = json.loads((root / "hard" / "distill.json").read_text())
    assert again["seconds"] == hard["seconds"] > 0 and again["test"] == hard["test"]
    # a student finished before its marker was renamed (.train.done) is found and skipped too
    (root / "hard" / ".distill.done").rename(root / "hard" / ".train.done")
    final = (root / "hard" / "final.pt").stat().st_mtime_ns
    assert main(["distill", *common, *runs["hard"], "--out", str(root / "hard")]) == 0
    assert (root / "hard" / ".distill.done").exists() and not (root / "hard" / ".train.done").exists()
    assert (root / "hard" / "final.pt").stat().st_mtime_ns == final
    # the cached store was made at T=2: another T is a clear error naming it
    capsys.readouterr()
    assert main(["distill", *common, "--soft", str(root / "soft"), "--T", "5",
                 "--out", str(root / "bad")]) == 1
    assert "made at T=2" in capsys.readouterr().err


def test_fraction_with_the_rest_as_cached_transfer_set(recipe, capsys):
    """The 3 % experiment's shape: a fraction labelled, the rest of the same training set as an
    unlabelled transfer set scored by the cached store (no utterance taken twice)."""
    root, sets = recipe
    members = [str(root / "m1" / "final.pt"), str(root / "m2" / "final.pt")]
    soft = root / "soft_frac"
    assert main(["soft-targets", "--members", *members, "--data", sets["train"][0], "--T", "2",
                 "--k", "3", "--out", str(soft)]) == 0
    common = ["--train-data", sets["train"][0], "--train-ali", sets["train"][1],
              "--dev-data", sets["dev"][0], "--dev-ali", sets["dev"][1], "--test-data",
              sets["test"][0], "--test-ali", sets["test"][1], "--student-context", "1", "1",
              "--student-hidden", "16", "--student-layers", "1", "--epochs", "3", "--lr", "0.01",
              "--batch-size", "64", "--log-every", "0", "--num-threads", "1",
              "--train-fraction", "0.1", "--fraction-seed", "3"]
    res = {}
    for name, extra in (("frac_hard", ["--alpha", "1"]),
                        ("frac_soft", ["--soft", str(soft), "--alpha", "0.5"]),
                        ("frac_transfer", ["--soft", str(soft), "--alpha", "0.5",
                                           "--transfer-data", sets["train"][0]])):
        assert main(["distill", *common, *extra, "--out", str(root / name)]) == 0
        res[name] = json.loads((root / name / "distill.json").read_text())
    total = sum(int(l.split()[1]) for l in open(f"{sets['train'][0]}/utt2num_frames"))
    few = res["frac_soft"]["train_frames"]
    assert res["frac_hard"]["train_frames"] == few < 0.3 * total
    assert res["frac_transfer"]["train_frames"] == total    # the rest once, not the fraction twice
    # the ensemble's labels of the other 90 % help a student that has 10 % of the transcripts
    assert res["frac_transfer"]["test"]["acc"] > res["frac_hard"]["test"]["acc"] + 0.04, res
    # a transfer set that is all labelled already is an error that says so
    full = [a for a in common if a not in ("--train-fraction", "0.1")]
    capsys.readouterr()
    assert main(["distill", *full, "--soft", str(soft), "--transfer-data", sets["train"][0],
                 "--out", str(root / "frac_bad")]) == 1
    assert "already in the labelled training set" in capsys.readouterr().err


def test_python_api_unlabelled_transfer_and_fraction(recipe, tmp_path):
    root, _ = recipe
    teacher, _ = load_teacher([root / "m1" / "final.pt", root / "m2" / "final.pt"], "geometric")
    lab_f, lab_a = synth(40, 5)
    unl_f, _ = synth(40, 6)
    test_f, test_a = synth(20, 7)
    utts = sorted(lab_f)
    keep = fraction_utts(utts, [len(lab_f[u]) for u in utts], 0.25, seed=0)
    kept_frames = sum(len(lab_f[u]) for u in keep)
    assert 0 < len(keep) < 20 and kept_frames >= 0.25 * sum(len(f) for f in lab_f.values())
    assert keep == fraction_utts(utts, [len(lab_f[u]) for u in utts], 0.25, seed=0)
    ctx = (1, 1)
    lab = FrameDataset.from_arrays({u: lab_f[u] for u in keep}, {u: lab_a[u] for u in keep}, ctx)
    unl = FrameDataset.from_arrays(unl_f, None, ctx)
    both = ConcatFrames([lab, unl])
    idx = torch.tensor([both.num_frames - 1, 0, lab.num_frames, 3])
    b = both.batch(idx)
    assert torch.equal(b["x"][1], lab.batch(torch.tensor([0]))["x"][0])
    assert torch.equal(b["x"][0], unl.batch(torch.tensor([unl.num_frames - 1]))["x"][0])
    assert b["y"][0] == -1 and b["y"][2] == -1 and b["y"][1] == lab.batch(torch.tensor([0]))["y"][0]
    assert both.offsets[-1] == both.num_frames and len(both.utts) == len(keep) + 40
    # mostly untranscribed transfer data (y = -1: KD term only) + a few labelled utterances
    torch.manual_seed(0)
    student = build_model(ModelConfig(hidden=16, layers=1, context=ctx), D, P)
    res = train_student(student, both, FrameDataset.from_arrays(test_f, test_a, ctx),
                        TrainConfig(epochs=3, batch_size=64, lr=0.01, log_every=0),
                        DistillConfig(teacher="online", alpha=0.3, alpha_final=0.0, T=2.0),
                        AugmentConfig(), tmp_path / "unl", teacher=teacher)
    assert res["train_frames"] == lab.num_frames + unl.num_frames
    assert frame_metrics(student, FrameDataset.from_arrays(test_f, test_a, ctx))["acc"] > 0.6


def test_student_initialised_from_a_member(recipe):
    from acoustic_kd.distill.train import init_student
    from acoustic_kd.errors import ConfigError
    from acoustic_kd.nnet.checkpoint import load_checkpoint

    root, _ = recipe
    member, _ = load_checkpoint(root / "m1" / "final.pt")
    same = build_model(ModelConfig(hidden=32, layers=2, context=(1, 1)), D, P)
    init_student(same, str(root / "m1" / "final.pt"))
    x = torch.randn(3, 3, D)
    assert torch.equal(same.eval()(x), member(x))
    with pytest.raises(ConfigError, match="architecture differs"):
        init_student(build_model(ModelConfig(hidden=16, layers=1, context=(1, 1)), D, P),
                     str(root / "m1" / "final.pt"))


def test_a_student_normalises_its_features_as_its_teachers(recipe, capsys):
    """Members trained with global CMVN and variance normalisation: a student whose config says
    nothing of CMVN normalises as they do (online: with the members' own training stats, since the
    teacher runs on the student's features; cached and the control given --members: the mode), and
    an online teacher with a student told another CMVN is an error naming both."""
    from acoustic_kd.nnet.checkpoint import read_checkpoint

    root, sets = recipe
    train = ["--train-data", sets["train"][0], "--train-ali", sets["train"][1], "--dev-data",
             sets["dev"][0], "--dev-ali", sets["dev"][1], "--context", "1", "1", "--epochs", "2",
             "--batch-size", "64", "--lr", "0.01", "--log-every", "0", "--num-threads", "1",
             "--hidden", "16", "--layers", "1", "--cmvn", "global", "--norm-vars", "true"]
    members = [str(root / f"g{i}" / "final.pt") for i in (1, 2)]
    for i, m in enumerate(members, 1):
        assert main(["train", *train, "--seed", str(i), "--out", str(root / f"g{i}")]) == 0
    teacher = read_checkpoint(members[0])["meta"]
    # the student trains on the test set: its own global stats differ from the members'
    student = ["--train-data", sets["test"][0], "--train-ali", sets["test"][1], "--dev-data",
               sets["dev"][0], "--dev-ali", sets["dev"][1], "--student-context", "1", "1",
               "--student-hidden", "8", "--student-layers", "1", "--epochs", "1", "--lr", "0.01",
               "--batch-size", "64", "--log-every", "0", "--num-threads", "1"]
    assert main(["distill", *student, "--online", "--members", *members, "--T", "2",
                 "--out", str(root / "g_online")]) == 0
    meta = read_checkpoint(root / "g_online" / "final.pt")["meta"]
    assert (meta["cmvn"], meta["norm_vars"]) == ("global", True)
    assert np.allclose(meta["cmvn_stats"], teacher["cmvn_stats"])
    assert main(["soft-targets", "--members", *members, "--data", sets["test"][0], "--T", "2",
                 "--k", "2", "--out", str(root / "g_soft")]) == 0
    for name, extra in (("g_cached", ["--soft", str(root / "g_soft")]),
                        ("g_control", ["--alpha", "1", "--members", *members])):
        assert main(["distill", *student, *extra, "--out", str(root / name)]) == 0
        meta = read_checkpoint(root / name / "final.pt")["meta"]
        assert (meta["cmvn"], meta["norm_vars"]) == ("global", True), name
    capsys.readouterr()
    assert main(["distill", *student, "--online", "--members", *members, "--T", "2",
                 "--cmvn", "speaker", "--out", str(root / "g_clash")]) == 1
    err = capsys.readouterr().err
    assert members[0] in err and "global" in err and "speaker" in err, err
    assert not (root / "g_clash" / "final.pt").exists()


def test_a_batch_size_the_options_leave_out_comes_from_the_plan_and_is_recorded(recipe):
    """A member and a student trained without --batch-size take the plan's (256 frames below 1 h
    of speech) and write it with its reason to OUT/plan.json."""
    root, sets = recipe
    data = ["--train-data", sets["train"][0], "--train-ali", sets["train"][1], "--epochs", "1",
            "--log-every", "0", "--num-threads", "1"]
    assert main(["train", *data, "--context", "1", "1", "--hidden", "8", "--layers", "1",
                 "--out", str(root / "planned_m")]) == 0
    assert main(["distill", *data, "--alpha", "1", "--student-context", "1", "1",
                 "--student-hidden", "8", "--student-layers", "1", "--out", str(root / "planned_s")]) == 0
    for out, what in (("planned_m", "member"), ("planned_s", "student")):
        rec = json.loads((root / out / "plan.json").read_text())
        assert rec["what"] == what and set(rec["chosen"]) == {"batch_size"}
        assert rec["chosen"]["batch_size"]["value"] == 256 and "1 h" in rec["chosen"]["batch_size"]["reason"]
        info = json.loads((root / out / "info.json").read_text())
        assert info["config"]["train"]["batch_size"] == 256 and info["config"]["train"]["epochs"] == 1
