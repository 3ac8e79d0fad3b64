"""data-dir augment: the energy rule's silences, the copies' speed / gain / SNR, the plan up to N
hours, speaker-prefixed unique ids, determinism (seed, --nj) and the refusals, on generated audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from acoustic_kd.cli import main
from acoustic_kd.data.augment import (Copy, DataAugmentConfig, augment_data_dir, render,
                                      silence_spans)
from acoustic_kd.data.datadir import DataDir
from acoustic_kd.errors import ConfigError, DataError

SR = 8000


def speechlike(rng, pattern) -> np.ndarray:
    """Alternating tone bursts and quiet noise: pattern = [(seconds, loud?)...] -> float32 [N]."""
    parts = []
    for sec, loud in pattern:
        n = int(sec * SR)
        t = np.arange(n) / SR
        x = 0.002 * rng.standard_normal(n)
        if loud:
            x += 0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * t) * (1 + 0.5 * np.sin(9 * t))
        parts.append(x)
    return np.concatenate(parts).astype(np.float32)


def make_set(root, n_per_spk=3):
    """A data dir of 2 speakers x n_per_spk utterances (WAVs under root/wav), speaker-prefixed."""
    rng = np.random.default_rng(0)
    d = root / "src"
    (root / "wav").mkdir(parents=True)
    d.mkdir()
    rows = {"wav.scp": [], "text": [], "utt2spk": []}
    for spk in ("spkA", "spkB"):
        for i in range(n_per_spk):
            utt = f"{spk}-u{i}"
            x = speechlike(rng, [(0.4, False), (0.6 + 0.2 * i, True), (0.3, False), (0.5, True),
                                 (0.4, False)])
            sf.write(str(root / "wav" / f"{utt}.wav"), x, SR, subtype="PCM_16")
            rows["wav.scp"].append(f"{utt} {root / 'wav' / utt}.wav\n")
            rows["text"].append(f"{utt} HELLO WORLD {i}\n")
            rows["utt2spk"].append(f"{utt} {spk}\n")
    for name, lines in rows.items():
        (d / name).write_text("".join(sorted(lines)))
    return d


def test_the_energy_rule_finds_the_quiet_gaps_only():
    rng = np.random.default_rng(1)
    x = speechlike(rng, [(0.5, True), (0.4, False), (0.5, True), (0.1, False), (0.5, True)])
    spans = silence_spans(x, SR, silence_db=6.0, min_s=0.2)
    assert len(spans) == 1                     # the 0.1 s gap is too short
    a, b = spans[0]
    assert 0.5 * SR <= a < 0.56 * SR and 0.84 * SR < b <= 0.9 * SR
    assert silence_spans(np.zeros(SR, np.float32), SR, 6.0, 0.2) == []   # digital silence


def test_a_copy_has_its_gain_and_snr():
    rng = np.random.default_rng(2)
    x = (0.1 * rng.standard_normal(SR)).astype(np.float32)
    bank = rng.standard_normal(3 * SR).astype(np.float32)
    for snr, gain in ((10.0, 0.0), (25.0, -6.0)):
        cp = Copy("a1-u", "u", "a1-s", 1.0, gain, snr, 0.5)
        clean = render(x, SR, Copy("a1-u", "u", "a1-s", 1.0, gain, snr, 0.5), None)
        assert np.allclose(clean, x * 10 ** (gain / 20), atol=1e-6)
        noise = render(x, SR, cp, bank).astype(np.float64) - clean
        got = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise ** 2))
        assert got == pytest.approx(snr, abs=0.05)
    slow = render(x, SR, Copy("a1-u", "u", "a1-s", 0.8, 0.0, 30.0, 0.0), None)
    assert len(slow) == pytest.approx(len(x) / 0.8, abs=2)


def test_augment_reaches_the_hours_with_unique_speaker_prefixed_ids(tmp_path):
    src = make_set(tmp_path)
    data = DataDir.load(src)
    src_s = sum(len(sf.read(str(tmp_path / "wav" / f"{u}.wav"))[0]) / SR for u in data.utts)
    hours = 3.2 * src_s / 3600
    out = augment_data_dir(src, tmp_path / "big", DataAugmentConfig(hours=hours, seed=3), SR)
    total = sum(out.utt2dur.values())
    assert hours * 3600 <= total < hours * 3600 + 2.5 / 0.8
    assert len(out.utts) == len(set(out.utts)) > 3 * len(data.utts)
    assert all(u.startswith(out.utt2spk[u]) for u in out.utts)
    for u in data.utts:                          # the originals stay as they are
        assert out.wav_scp[u] == data.wav_scp[u] and out.text[u] == data.text[u]
    plan = [line.split() for line in (tmp_path / "big" / "augment.txt").read_text().splitlines()[1:]]
    assert len(plan) == len(out.utts) - len(data.utts)
    for utt, source, speed, *_ in plan:
        assert utt.endswith(source) and out.text[utt] == data.text[source]
        assert float(speed) in DataAugmentConfig().speeds
        assert out.utt2dur[utt] == pytest.approx(out.utt2dur[source] / float(speed), abs=0.01)
    assert len({p[2] for p in plan}) > 2         # speeds are drawn, not fixed
    assert main(["data-dir", "validate", str(tmp_path / "big")]) == 0


def test_augment_is_deterministic_across_nj_and_the_seed_matters(tmp_path):
    src = make_set(tmp_path)
    cfg = DataAugmentConfig(hours=0.01, seed=5)
    augment_data_dir(src, tmp_path / "one", cfg, SR)
    augment_data_dir(src, tmp_path / "two", cfg, SR, nj=2)
    for name in ("augment.txt", "text", "utt2spk", "utt2dur"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    files = sorted(p.name for p in (tmp_path / "one" / "audio").iterdir())
    assert files and files == sorted(p.name for p in (tmp_path / "two" / "audio").iterdir())
    for f in files:
        assert (tmp_path / "one" / "audio" / f).read_bytes() == \
            (tmp_path / "two" / "audio" / f).read_bytes()
    augment_data_dir(src, tmp_path / "other", DataAugmentConfig(hours=0.01, seed=6), SR)
    assert (tmp_path / "other" / "augment.txt").read_text() != \
        (tmp_path / "one" / "augment.txt").read_text()
    # the same DST with other settings is refused; with the same settings it is reused
    with pytest.raises(DataError, match="other augmentation settings"):
        augment_data_dir(src, tmp_path / "one", DataAugmentConfig(hours=0.01, seed=6), SR)
    before = (tmp_path / "one" / "audio" / files[0]).stat().st_mtime_ns
    augment_data_dir(src, tmp_path / "one", cfg, SR)
    assert (tmp_path / "one" / "audio" / files[0]).stat().st_mtime_ns == before
    assert json.loads((tmp_path / "one" / "augment.json").read_text())["seed"] == 5


def test_bad_requests_are_one_line_errors(tmp_path, capsys):
    src = make_set(tmp_path)
    assert main(["data-dir", "augment", str(src), str(tmp_path / "x")]) == 1
    assert "needs --hours" in capsys.readouterr().err
    assert main(["data-dir", "augment", str(src), str(tmp_path / "y"), "--hours", "0.0001",
                 "--sample-rate", str(SR)]) == 1
    assert "ask for more hours" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="MIN <= MAX"):
        DataAugmentConfig(snr_db=[30.0, 10.0])
    silent = tmp_path / "silent"
    silent.mkdir()
    sf.write(str(silent / "q.wav"), 0.3 * np.ones(SR, np.float32), SR, subtype="PCM_16")
    (silent / "wav.scp").write_text(f"s-q {silent / 'q.wav'}\n")
    (silent / "text").write_text("s-q A\n")
    (silent / "utt2spk").write_text("s-q s\n")
    with pytest.raises(DataError, match="no silence"):
        augment_data_dir(silent, tmp_path / "z", DataAugmentConfig(hours=0.001, silence_db=0.1,
                                                                   min_silence_s=5.0), SR)
