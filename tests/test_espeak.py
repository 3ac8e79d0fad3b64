"""Tests for the libespeak-ng ctypes wrapper: voices, audio, events, reproducible synthesis."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_kd.corpora import espeak


def test_lists_shipped_english_voices_and_variants():
    voices = espeak.list_voices("en")
    assert "en-us" in voices and "en" in voices and "en-shaw" not in voices
    variants = espeak.list_variants()
    assert variants["m1"] == "m" and variants["f1"] == "f" and "klatt" in variants


def test_synthesize_audio_and_word_spans():
    res = espeak.synthesize("one two oh", voice="en-us", variant="m3")
    assert res.sample_rate == 22050 and res.audio.dtype == np.float32
    assert 0.5 < len(res.audio) / res.sample_rate < 3.0
    assert np.abs(res.audio).max() <= 1.0 and np.abs(res.audio).max() > 0.05
    spans = res.word_spans()
    assert len(spans) == 3 == len(res.words())
    flat = [s for span in spans for s in span]
    assert flat == sorted(flat) and flat[-1] <= len(res.audio) and all(b > a for a, b in spans)
    # "one" = w V n: phoneme spans tile the word
    phones = [p for p in res.phone_spans() if p[3] == res.words()[0].text_position]
    assert [p[0].strip("'") for p in phones] == ["w", "V", "n"]
    assert phones[0][1] == spans[0][0] and phones[-1][2] == spans[0][1]


def test_word_starts_where_energy_rises():
    """With pauses between words, each word's first phoneme event is where its sound starts."""
    res = espeak.synthesize("one six nine eight", voice="en-gb-x-rp", variant="f2", word_gap=10)
    sr, x = res.sample_rate, res.audio.astype(np.float64)
    win = int(0.02 * sr)
    for start, _ in res.word_spans()[1:]:
        before = np.mean(x[start - win:start] ** 2) + 1e-12
        after = np.mean(x[start:start + win] ** 2) + 1e-12
        assert 10 * np.log10(after / before) > 20


def test_isolated_synthesis_is_reproducible():
    kw = dict(voice="en-us", variant="f2", rate=190, pitch=40)
    a = espeak.synthesize_isolated("seven three", seed=5, **kw)
    espeak.synthesize("nine nine nine", voice="en", variant="klatt")  # dirties the direct engine
    b = espeak.synthesize_isolated("seven three", seed=5, **kw)
    c = espeak.synthesize_isolated("seven three", seed=6, **kw)
    assert np.array_equal(a.audio, b.audio) and a.events == b.events
    assert not np.array_equal(a.audio, c.audio)


def test_isolated_synthesis_ignores_the_c_library_random_state():
    """Reed and caleb draw from libc's rand(); its state in the parent (advanced by whatever else
    the process ran, in any library) must not reach the output."""
    import ctypes

    libc = ctypes.CDLL(None)
    for variant in ("Reed", "caleb"):
        kw = dict(voice="en-us", variant=variant, seed=5)
        a = espeak.synthesize_isolated("four two", **kw)
        libc.srand(12345)
        libc.srandom(54321)
        for _ in range(3):
            libc.rand(), libc.random()
        b = espeak.synthesize_isolated("four two", **kw)
        assert np.array_equal(a.audio, b.audio), variant


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(espeak.EspeakError, match="no voice"):
        espeak.synthesize("one", voice="xx-nonexistent")
    with pytest.raises(espeak.EspeakError, match="no voice"):
        espeak.synthesize_isolated("one", voice="xx-nonexistent")
