"""Features: Kaldi-exact fbank, CMVN, ark/scp storage, the parallel stage and the read side."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import kaldi_native_fbank as knf
import kaldiio
import numpy as np
import pytest
import soundfile as sf

from acoustic_kd import cli
from acoustic_kd.errors import ConfigError
from acoustic_kd.features import (INT16_SCALE, FbankConfig, FeatureSet, apply_cmvn,
                                  compute_cmvn_stats, compute_fbank, make_features)
from acoustic_kd.features.io import ArkWriter

SR = 8000


def _signal(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
    return (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def make_data_dir(root: Path, rng: np.random.Generator,
                  bad: dict[str, bytes | np.ndarray] | None = None,
                  speakers=("spkA", "spkB"), per_speaker: int = 3) -> Path:
    """A tiny Kaldi data dir of 8 kHz tones (+ `bad` utterances: raw bytes or float samples)."""
    d, wav = root / "train", root / "wav"
    d.mkdir(parents=True)
    wav.mkdir()
    utt2spk: dict[str, str] = {}
    for s in speakers:
        for i in range(per_speaker):
            utt = f"{s}-u{i}"
            sf.write(wav / f"{utt}.wav", _signal(rng, 0.25 + 0.1 * i, SR), SR, subtype="PCM_16")
            utt2spk[utt] = s
    for utt, content in (bad or {}).items():
        if isinstance(content, bytes):
            (wav / f"{utt}.wav").write_bytes(content)
        else:
            sf.write(wav / f"{utt}.wav", content, SR, subtype="FLOAT")
        utt2spk[utt] = speakers[0]
    utts = sorted(utt2spk, key=lambda u: u.encode())
    (d / "wav.scp").write_text("".join(f"{u} {wav / u}.wav\n" for u in utts))
    (d / "text").write_text("".join(f"{u} HELLO\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u} {utt2spk[u]}\n" for u in utts))
    spk2utt = {s: [u for u in utts if utt2spk[u] == s] for s in sorted(set(utt2spk.values()))}
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in spk2utt.items()))
    return d


# ---------------------------------------------------------------- fbank
@pytest.mark.parametrize("sr", [8000, 16000])
def test_fbank_equals_kaldi_native_fbank(sr, rng):
    x = _signal(rng, 0.73, sr)
    cfg = FbankConfig(sample_rate=sr)
    ours = compute_fbank(x, sr, cfg)
    # reference built independently from knf's own options
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = sr
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 40
    ref = knf.OnlineFbank(opts)
    ref.accept_waveform(sr, (x * 32768).tolist())
    ref.input_finished()
    expected = np.stack([ref.get_frame(i) for i in range(ref.num_frames_ready)])
    frame_len, shift = int(sr * 0.025), int(sr * 0.010)
    assert ours.dtype == np.float32 and ours.shape == (1 + (x.size - frame_len) // shift, 40)
    assert np.abs(ours - expected).max() <= 1e-4


def test_fbank_options_and_short_input(rng):
    x = _signal(rng, 0.5, SR)
    cfg = FbankConfig(sample_rate=SR, num_mel_bins=23, use_energy=True, snip_edges=False)
    feats = compute_fbank(x, SR, cfg)
    assert feats.shape == (round(x.size / 80), 24) and cfg.dim == 24
    assert compute_fbank(x[:100], SR, FbankConfig(sample_rate=SR)).shape == (0, 40)
    with pytest.raises(ConfigError, match="resample"):
        compute_fbank(x, 16000, FbankConfig(sample_rate=SR))
    assert INT16_SCALE == 32768.0


# ---------------------------------------------------------------- config
def test_kaldi_conf_and_yaml(tmp_path):
    conf = tmp_path / "fbank.conf"
    conf.write_text("# Kaldi fbank options\n--sample-frequency=8000\n--num-mel-bins=23  # Kaldi default\n"
                    "--snip-edges=false\n\n--dither=1.0 --frame-shift=12.5\n")
    cfg = FbankConfig.from_kaldi_conf(conf)
    assert (cfg.sample_rate, cfg.num_mel_bins, cfg.snip_edges, cfg.dither, cfg.frame_shift_ms) == \
        (8000, 23, False, 1.0, 12.5)
    assert cfg.low_freq == 20.0 and cfg.window_type == "povey"  # untouched options keep the base
    assert FbankConfig.from_kaldi_conf(conf, base=FbankConfig(low_freq=64.0)).low_freq == 64.0
    conf.write_text("--num-mel-bins=40\n--vtln-warp=1.1\n")
    with pytest.raises(ConfigError, match=r"fbank.conf:2: unsupported option '--vtln-warp=1.1'"):
        FbankConfig.from_kaldi_conf(conf)
    conf.write_text("--snip-edges=maybe\n")
    with pytest.raises(ConfigError, match="fbank.conf:1: bad value"):
        FbankConfig.from_kaldi_conf(conf)
    y = tmp_path / "r.yaml"
    y.write_text("features:\n  sample_rate: 8000\n  num_mel_bins: 30\n")
    assert FbankConfig.from_yaml(y, overrides={"num_mel_bins": 20}) == FbankConfig(8000, 20)
    y.write_text("features:\n  num_bins: 30\n")
    with pytest.raises(ConfigError, match="unknown option"):
        FbankConfig.from_yaml(y)


# ---------------------------------------------------------------- CMVN
def test_cmvn_stats_and_apply_by_hand(rng):
    a = rng.normal(3.0, 2.0, (50, 5)).astype(np.float32)
    b = rng.normal(-1.0, 0.5, (30, 5)).astype(np.float32)
    stats = compute_cmvn_stats([a, b])
    both = np.concatenate([a, b]).astype(np.float64)
    assert stats.shape == (2, 6) and stats.dtype == np.float64
    np.testing.assert_allclose(stats[0, :5], both.sum(0), rtol=1e-12)
    np.testing.assert_allclose(stats[1, :5], (both ** 2).sum(0), rtol=1e-12)
    assert stats[0, 5] == 80 and stats[1, 5] == 0
    np.testing.assert_allclose(stats, knf.compute_cmvn_stats(np.concatenate([a, b])), rtol=1e-9)
    mean_only = apply_cmvn(a, stats)
    np.testing.assert_allclose(mean_only, a - both.mean(0), atol=1e-5)
    full = apply_cmvn(a, stats, norm_vars=True)
    np.testing.assert_allclose(full, (a - both.mean(0)) / both.std(0), atol=1e-5)
    own = apply_cmvn(a, compute_cmvn_stats(a), norm_vars=True)
    np.testing.assert_allclose(own.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(own.std(0), 1, atol=1e-4)
    assert full.dtype == np.float32
    # a constant dimension is floored, not divided by zero
    const = np.ones((4, 2), np.float32)
    assert np.isfinite(apply_cmvn(const, compute_cmvn_stats(const), norm_vars=True)).all()


# ---------------------------------------------------------------- storage
def test_kaldiio_round_trip(tmp_path, rng):
    mats = {f"u{i}": rng.standard_normal((7 + i, 4)).astype(np.float32) for i in range(3)}
    with ArkWriter(tmp_path / "x.ark") as w:
        for k, m in mats.items():
            w.write(k, m)
    (tmp_path / "x.scp").write_text("".join(f"{k} {v}\n" for k, v in w.entries))
    back = kaldiio.load_scp(str(tmp_path / "x.scp"))
    assert set(back) == set(mats)
    for k in mats:
        np.testing.assert_array_equal(back[k], mats[k])
    assert not list(tmp_path.glob(".*tmp*"))


def test_featureset_reads_kaldi_made_features(tmp_path, rng):
    """A feats.scp written Kaldi-style (no fbank.json, no cmvn.scp) is read; CMVN computed on the fly."""
    d = tmp_path / "kaldi_train"
    d.mkdir()
    mats = {f"s{i % 2}-u{i}": rng.normal(i, 1.0, (10 + i, 13)).astype(np.float32) for i in range(4)}
    with kaldiio.WriteHelper(f"ark,scp:{d}/raw_mfcc.1.ark,{d}/feats.scp") as w:
        for k in sorted(mats):
            w[k] = mats[k]
    (d / "utt2spk").write_text("".join(f"{k} {k.split('-')[0]}\n" for k in sorted(mats)))
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    logging.getLogger("acoustic_kd.features").addHandler(handler)
    try:
        fs = FeatureSet(d)
        assert fs.config is None and fs.dim == 13 and len(fs) == 4
        x = fs["s0-u2"]
    finally:
        logging.getLogger("acoustic_kd.features").removeHandler(handler)
    assert any("no cmvn.scp" in m for m in records)
    spk0 = np.concatenate([mats["s0-u0"], mats["s0-u2"]])
    np.testing.assert_allclose(x, mats["s0-u2"] - spk0.mean(0), atol=1e-4)
    g = FeatureSet(d, cmvn="global", norm_vars=True)["s1-u1"]
    allf = np.concatenate(list(mats.values()))
    np.testing.assert_allclose(g, (mats["s1-u1"] - allf.mean(0)) / allf.std(0), atol=1e-4)
    np.testing.assert_array_equal(FeatureSet(d, cmvn="none")["s1-u3"], mats["s1-u3"])
    assert FeatureSet(d).num_frames("s1-u3") == 13


# ---------------------------------------------------------------- the stage
def _read_all(d: Path) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in kaldiio.load_scp(str(d / "feats.scp")).items()}


def test_make_features_parallel_equals_serial(tmp_path, rng):
    d1 = make_data_dir(tmp_path / "a", rng)
    d2 = tmp_path / "b" / "train"
    shutil.copytree(d1, d2)
    cfg = FbankConfig(sample_rate=SR)
    c1 = make_features(d1, cfg, nj=1)
    c2 = make_features(d2, cfg, nj=2)
    assert c1["done"] == c2["done"] == 6 and c1["failed"] == 0 and c1["speakers"] == 2
    f1, f2 = _read_all(d1), _read_all(d2)
    assert list(f1) == list(f2) == sorted(f1)
    for k in f1:
        np.testing.assert_array_equal(f1[k], f2[k])
    assert (d1 / "utt2num_frames").read_text() == (d2 / "utt2num_frames").read_text()
    assert len(list((d2 / "data").glob("raw_fbank_train.*.ark"))) == 2
    assert (d2 / "log" / "make_fbank_train.2.log").read_text().rstrip().endswith("seconds")
    s1, s2 = FeatureSet(d1).speaker_stats(), FeatureSet(d2).speaker_stats()
    for spk in s1:
        np.testing.assert_allclose(s1[spk], s2[spk], rtol=1e-12)
        spk_feats = [f1[u] for u in f1 if u.startswith(spk)]
        np.testing.assert_allclose(s1[spk], compute_cmvn_stats(spk_feats), rtol=1e-12)
    fs = FeatureSet(d2, norm_vars=True)
    assert fs.config == cfg and fs.dim == 40 and fs.num_frames("spkB-u2") == f1["spkB-u2"].shape[0]
    np.testing.assert_allclose(fs["spkB-u2"], apply_cmvn(f1["spkB-u2"], s1["spkB"], True), atol=1e-6)
    assert set(fs.load_all()) == set(f1)
    np.testing.assert_allclose(fs.global_cmvn_stats(), s1["spkA"] + s1["spkB"], rtol=1e-12)
    # deployment: another set's global stats are used as given
    dep = FeatureSet(d2, cmvn="global", global_stats=s1["spkA"])
    np.testing.assert_allclose(dep["spkB-u0"], apply_cmvn(f1["spkB-u0"], s1["spkA"]), atol=1e-6)


def test_bad_audio_is_counted_and_the_rest_completes(tmp_path, rng):
    nan = _signal(rng, 0.3, SR)
    nan[100] = np.nan
    bad = {"spkA-bad1": b"", "spkA-bad2": b"RIFF\x00\x01garbage" * 10,
           "spkA-bad3": np.zeros(50, np.float32), "spkA-bad4": nan}
    d = make_data_dir(tmp_path, rng, bad=bad)
    counts = make_features(d, FbankConfig(sample_rate=SR), nj=2)
    assert (counts["utts"], counts["done"], counts["failed"]) == (10, 6, 4)
    failed = dict(line.split(" ", 1) for line in (d / "features_failed.txt").read_text().splitlines())
    assert sorted(failed) == sorted(bad)
    assert "too short" in failed["spkA-bad3"] and "non-finite audio" in failed["spkA-bad4"]
    assert "cannot read audio" in failed["spkA-bad1"]
    assert set(_read_all(d)) == {f"{s}-u{i}" for s in ("spkA", "spkB") for i in range(3)}
    assert len(FeatureSet(d)) == 6


def test_rerun_skips_done_work_and_resumes_parts(tmp_path, rng):
    d = make_data_dir(tmp_path, rng)
    cfg = FbankConfig(sample_rate=SR)
    assert make_features(d, cfg, nj=2)["skipped"] is False
    arks = sorted((d / "data").glob("raw_fbank_train.*.ark"))
    mtimes = [p.stat().st_mtime_ns for p in arks]
    assert make_features(d, cfg, nj=2)["skipped"] is True
    assert [p.stat().st_mtime_ns for p in arks] == mtimes
    # a run killed after part 1: only part 2 is redone, its leftover temporary file removed
    (d / ".features.done").unlink()
    (d / "data" / "raw_fbank_train.2.json").unlink()
    (d / "data" / ".raw_fbank_train.2.ark.tmp.99999").write_bytes(b"half")
    before = _read_all(d)
    assert make_features(d, cfg, nj=2)["skipped"] is False
    assert arks[0].stat().st_mtime_ns == mtimes[0] and arks[1].stat().st_mtime_ns != mtimes[1]
    after = _read_all(d)
    assert not list((d / "data").glob(".*tmp*"))
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # a changed config or --force recomputes; fewer jobs remove the stale part files
    assert make_features(d, FbankConfig(sample_rate=SR, num_mel_bins=23), nj=1)["skipped"] is False
    assert FeatureSet(d).dim == 23 and not (d / "data" / "raw_fbank_train.2.ark").exists()
    forced = make_features(d, FbankConfig(sample_rate=SR, num_mel_bins=23), nj=1, force=True)
    assert forced["skipped"] is False


def test_features_command_and_moved_data_dir(tmp_path, rng):
    d = make_data_dir(tmp_path / "orig", rng)
    conf = tmp_path / "fbank.conf"
    conf.write_text("--num-mel-bins=30\n--sample-frequency=8000\n")
    argv = ["features", "--data", str(d), "--fbank-conf", str(conf), "--num-mel-bins", "24"]
    assert cli.main(argv) == 0
    assert json.loads((d / "fbank.json").read_text())["num_mel_bins"] == 24  # CLI beats the conf
    moved = tmp_path / "moved" / "train"
    shutil.move(str(d), moved)  # scp paths are absolute; the reader finds the arks beside the dir
    fs = FeatureSet(moved)
    assert fs["spkA-u1"].shape == (fs.num_frames("spkA-u1"), 24)


def test_sample_rate_auto_is_the_recordings_own(tmp_path, rng, capsys):
    from acoustic_kd.data import DataDir
    from acoustic_kd.data.audio import native_rate
    from acoustic_kd.errors import DataError

    d = make_data_dir(tmp_path / "a", rng)              # 8 kHz
    y = tmp_path / "c.yaml"
    y.write_text("features: {sample_rate: auto}\n")
    assert cli.main(["features", "--data", str(d), "--config", str(y)]) == 0
    assert json.loads((d / "fbank.json").read_text())["sample_rate"] == SR
    assert f"sample_rate auto -> {SR} Hz" in capsys.readouterr().out
    # mixed rates: the most common wins (ties: the higher); one 16 kHz recording among six at 8 kHz
    sf.write(tmp_path / "a" / "wav" / "spkA-u0.wav", _signal(rng, 0.3, 16000), 16000)
    assert native_rate(DataDir.load(d)) == SR
    assert native_rate(DataDir.load(d), probe=1) == 16000   # only the first recording probed
    (d / "wav.scp").write_text("")
    (d / "text").write_text("")
    (d / "utt2spk").write_text("")
    (d / "spk2utt").write_text("")
    with pytest.raises(DataError, match="wav.scp is empty"):
        native_rate(DataDir.load(d, validate=False))


def test_nan_features_are_a_counted_failure(tmp_path, rng, monkeypatch):
    import acoustic_kd.features.policy as policy

    d = make_data_dir(tmp_path, rng, speakers=("spkA",), per_speaker=3)
    real = policy.compute_fbank

    def poisoned(x, sr, cfg):
        out = real(x, sr, cfg)
        if x.size == int(0.35 * SR):  # spkA-u1
            out[3, 7] = np.inf
        return out

    monkeypatch.setattr(policy, "compute_fbank", poisoned)
    counts = make_features(d, FbankConfig(sample_rate=SR), nj=1)
    assert (counts["done"], counts["failed"]) == (2, 1)
    assert (d / "features_failed.txt").read_text() == "spkA-u1 non-finite feature values (NaN/inf)\n"


def test_write_failure_names_the_path(tmp_path, rng, monkeypatch):
    import errno

    import acoustic_kd.features.io as fio
    from acoustic_kd.errors import DataError

    d = make_data_dir(tmp_path, rng, speakers=("spkA",), per_speaker=2)

    def full(self, key, mat):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(fio.ArkWriter, "write", full)
    with pytest.raises(DataError, match="raw_fbank_train.1.ark: cannot write features: No space left"):
        make_features(d, FbankConfig(sample_rate=SR))
    assert not (d / "feats.scp").exists() and not list((d / "data").glob(".*tmp*"))


def test_dither_is_deterministic_and_lifts_digital_silence():
    """Exact zeros get Kaldi-style dither, seeded by the signal: same audio -> same features."""
    rng = np.random.default_rng(3)
    speech = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    x = np.concatenate([np.zeros(4000, np.float32), speech])
    cfg = FbankConfig(sample_rate=8000, dither=1.0)
    a, b = compute_fbank(x, 8000, cfg), compute_fbank(x, 8000, cfg)
    assert np.array_equal(a, b)
    plain = compute_fbank(x, 8000, FbankConfig(sample_rate=8000))
    silent = slice(0, 40)  # frames inside the zero run
    assert plain[silent].max() < -10          # log(FLT_EPSILON)-like floor without dither
    assert a[silent].min() > plain[silent].max() + 5
    assert np.abs(a[-20:] - plain[-20:]).max() < 0.05  # dither is negligible on real signal


def test_utterance_cmvn_normalises_each_utterance_by_itself(tmp_path):
    """cmvn='utterance': zero mean per utterance, independent of speakers and of other utterances."""
    import kaldiio

    rng = np.random.default_rng(0)
    d = tmp_path / "d"
    d.mkdir()
    mats = {"a": rng.normal(5, 2, (30, 4)).astype(np.float32), "b": rng.normal(-3, 1, (20, 4)).astype(np.float32)}
    with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
        for k, v in mats.items():
            w[k] = v
    (d / "utt2spk").write_text("a s\nb s\n")
    fs = FeatureSet(d, cmvn="utterance", norm_vars=True)
    for k, v in mats.items():
        out = fs[k]
        assert np.allclose(out.mean(0), 0, atol=1e-5) and np.allclose(out.std(0), 1, atol=1e-4)
        assert np.allclose(out, (v - v.mean(0)) / v.std(0), atol=1e-4)


def test_fbank_in_blocks_equals_one_block():
    """compute_fbank feeds long audio to the streaming fbank in blocks: the same frames."""
    from acoustic_kd.features import FBANK_BLOCK, compute_fbank

    x = (0.1 * np.random.default_rng(5).standard_normal(2 * FBANK_BLOCK + 1234)).astype(np.float32)
    cfg = FbankConfig(sample_rate=8000, dither=0.0)
    fb = knf.OnlineFbank(cfg.knf_options())
    fb.accept_waveform(8000.0, (x * 32768.0).tolist())
    fb.input_finished()
    ref = np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])
    assert np.array_equal(compute_fbank(x, 8000, cfg), ref)
