"""Ensemble: combination rules (reference values), evaluation, and the train/ensemble commands."""

from __future__ import annotations

import json
import math

import kaldiio
import numpy as np
import pytest
import torch

from acoustic_kd.ali import write_alignments
from acoustic_kd.cli import main
from acoustic_kd.ensemble import combine, evaluate_set, format_table, member_jobs
from acoustic_kd.nnet.stage import TrainJob
from acoustic_kd.errors import ConfigError
from acoustic_kd.nnet import ModelConfig, build_model, load_checkpoint
from acoustic_kd.nnet.data import ArraySource, make_synthetic

pytestmark = pytest.mark.usefixtures("one_torch_thread")


P1 = np.log(np.array([[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]]))
P2 = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]]))


def test_arithmetic_mean_reference_values():
    out = combine([P1, P2], "arithmetic")
    np.testing.assert_allclose(np.exp(out), [[0.4, 0.4, 0.2], [0.5, 0.25, 0.25]], rtol=1e-6)


def test_geometric_mean_reference_values():
    out = combine([P1, P2], "geometric")
    g = np.sqrt([0.07, 0.12, 0.03])
    np.testing.assert_allclose(np.exp(out[0]), g / g.sum(), rtol=1e-6)
    np.testing.assert_allclose(np.exp(out[1]), [0.5, 0.25, 0.25], rtol=1e-6)
    # torch in -> torch out; one member is the identity for both rules
    t = combine([torch.from_numpy(P1)], "geometric")
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), P1, atol=1e-6)
    with pytest.raises(ConfigError):
        combine([P1], "median")


def test_evaluate_set_scores_members_and_combinations():
    feats, alis = make_synthetic(6, num_pdfs=4, dim=5, seed=3)
    torch.manual_seed(0)
    models = {"a": build_model(ModelConfig(hidden=8, layers=1, context=(1, 1)), 5, 4),
              "b": build_model(ModelConfig(hidden=8, layers=1, context=(3, 0)), 5, 4)}
    res = evaluate_set(models, ArraySource(feats), alis, batch_size=37)
    n = sum(len(a) for a in alis.values())
    assert res["frames"] == n
    # reference: per-utterance log-posteriors combined by hand
    from acoustic_kd.nnet import log_posteriors
    lps = {k: np.concatenate([log_posteriors(m, feats[u]) for u in sorted(feats)])
           for k, m in models.items()}
    y = np.concatenate([alis[u] for u in sorted(feats)])
    for k in models:
        assert res["members"][k]["acc"] == pytest.approx(np.mean(lps[k].argmax(1) == y))
        assert res["members"][k]["ce"] == pytest.approx(-lps[k][np.arange(n), y].mean(), rel=1e-5)
    ar = combine(list(lps.values()), "arithmetic")
    assert res["ensemble"]["arithmetic"]["ce"] == pytest.approx(-ar[np.arange(n), y].mean(),
                                                                rel=1e-5)
    table = format_table({"sets": {"dev": res}})
    assert "ensemble-geometric" in table and len(table.splitlines()) == 5


def test_member_jobs_vary_seed_arch_and_order(tmp_path):
    given = {"lr": 0.01, "seed": 99, "epochs": 2, "batch_size": 64}   # (no corpus to plan from)
    base = TrainJob(train_data="d", train_ali="a", out=str(tmp_path), options={"train": dict(given)})
    jobs = member_jobs(base, tmp_path, 3, base_seed=7, archs=["mlp", "tdnn"], data_order="fixed")
    assert [j.out for j in jobs] == [str(tmp_path / f"m{i}") for i in (1, 2, 3)]
    assert [j.configs()[1].seed for j in jobs] == [7, 8, 9]         # the member's seed wins
    assert [j.configs()[0].arch for j in jobs] == ["mlp", "tdnn", "mlp"]
    assert all(j.configs()[1].data_seed == 7 and j.configs()[1].lr == 0.01 for j in jobs)
    assert base.options == {"train": given}                         # the shared job is unchanged


def _data_dir(root, name, seed, utts=12):
    feats, alis = make_synthetic(utts, num_pdfs=5, dim=6, seed=seed)
    d = root / name
    d.mkdir(parents=True)
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as w:
        for u, x in feats.items():
            w[u] = x
    (d / "utt2spk").write_text("".join(f"{u} spk{i % 2}\n" for i, u in enumerate(feats)))
    write_alignments(root / f"ali_{name}", alis, 5)
    return str(d), str(root / f"ali_{name}")


@pytest.mark.slow
def test_train_and_ensemble_commands(tmp_path, capsys):
    trd, tra = _data_dir(tmp_path, "train", 0, 30)
    dvd, dva = _data_dir(tmp_path, "dev", 1)
    small = ["--hidden", "24", "--layers", "1", "--context", "2", "2", "--epochs", "3",
             "--batch-size", "64", "--warmup-steps", "5", "--lr", "0.003", "--cmvn", "speaker"]
    assert main(["train", "--train-data", trd, "--train-ali", tra, "--dev-data", dvd, "--dev-ali",
                 dva, "--out", str(tmp_path / "solo"), "--seed", "3", *small]) == 0
    model, meta = load_checkpoint(tmp_path / "solo" / "final.pt")
    assert meta["cmvn"] == "speaker" and len(meta["priors"]) == 5 and meta["input_dim"] == 6
    assert meta["train_config"]["seed"] == 3 and np.asarray(meta["cmvn_stats"]).shape == (2, 7)
    assert json.loads((tmp_path / "solo" / "info.json").read_text())["config"]["model"]["hidden"] == 24
    out = tmp_path / "members"
    assert main(["ensemble", "--num-members", "2", "--nj", "2", "--out", str(out), "--train-data",
                 trd, "--train-ali", tra, "--dev-data", dvd, "--dev-ali", dva, "--test-data", dvd,
                 "--test-ali", dva, "--", *small]) == 0
    res = json.loads((out / "eval.json").read_text())
    accs = [res["sets"]["test"]["members"][m]["acc"] for m in ("m1", "m2")]
    assert min(accs) > 0.4 and accs[0] != accs[1]          # chance is 0.2; seeds differ
    assert set(res["sets"]["dev"]["ensemble"]) == {"arithmetic", "geometric"}
    assert "m2" in (out / "eval.txt").read_text() and (out / "log" / "train.m1.log").exists()
    assert main(["ensemble", "--num-members", "2", "--out", str(out), "--dev-data", dvd,
                 "--dev-ali", dva, "--eval-only"]) == 0
    assert main(["ensemble", "--num-members", "3", "--out", str(out), "--dev-data", dvd,
                 "--dev-ali", dva, "--eval-only"]) == 1    # m3 missing: a clear error
    assert "m3" in capsys.readouterr().err
    assert math.isfinite(res["sets"]["dev"]["ensemble"]["geometric"]["ce"])


@pytest.mark.slow
def test_global_cmvn_dev_and_test_use_the_training_stats(tmp_path):
    """With cmvn global, dev selection, eval.txt and decode all normalise with the training set's stats.

    The dev set is the training distribution shifted by +3 in every dimension: its own stats would
    remove the shift, the training stats keep it (as decode and the exported model do).
    """
    from acoustic_kd.ensemble import evaluate
    from acoustic_kd.features import FeatureSet
    from acoustic_kd.nnet import log_posteriors
    from acoustic_kd.ali import read_alignments

    trd, tra = _data_dir(tmp_path, "train", 0, 30)
    dvd, dva = _data_dir(tmp_path, "dev", 1)
    src = kaldiio.load_scp(f"{dvd}/feats.scp")
    shifted = {u: np.asarray(src[u]) + 3.0 for u in src}
    with kaldiio.WriteHelper(f"ark,scp:{dvd}/shift.ark,{dvd}/shift.scp") as w:
        for u, x in shifted.items():
            w[u] = x
    (tmp_path / "dev" / "shift.scp").replace(tmp_path / "dev" / "feats.scp")
    out = tmp_path / "m"
    assert main(["train", "--train-data", trd, "--train-ali", tra, "--dev-data", dvd, "--dev-ali", dva,
                 "--out", str(out), "--seed", "3", "--cmvn", "global", "--hidden", "24", "--layers",
                 "1", "--context", "2", "2", "--epochs", "2", "--batch-size", "64",
                 "--warmup-steps", "5"]) == 0
    model, meta = load_checkpoint(out / "final.pt")
    alis = read_alignments(dva)

    def acc(fs):
        hits = n = 0
        for u in fs.utts:
            lp = log_posteriors(model, fs[u])
            hits += int((lp.argmax(1) == alis[u]).sum())
            n += len(lp)
        return hits / n

    with_train = acc(FeatureSet(dvd, cmvn="global", global_stats=meta["cmvn_stats"]))
    with_own = acc(FeatureSet(dvd, cmvn="global"))
    assert abs(with_train - with_own) > 0.02          # the shift matters
    res = evaluate([out / "final.pt"], {"dev": (dvd, dva)})
    assert res["sets"]["dev"]["members"]["m"]["acc"] == pytest.approx(with_train, abs=1e-9)
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    dev_accs = [r["dev_acc"] for r in log if r.get("type") == "epoch"]
    assert max(dev_accs) == pytest.approx(with_train, abs=1e-6)   # final.pt = the best dev epoch
