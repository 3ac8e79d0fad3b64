"""A small ctypes wrapper over libespeak-ng (as shipped by the `espeakng-loader` pip package).

Synthesizes text with a voice (`en-us`), a variant (`m3`, `f2`, `klatt`...), a speaking rate and a
pitch into a float32 array at espeak's native rate (22050 Hz), and collects the word and phoneme
events espeak reports through its synth callback, each with its sample position in that audio.

libespeak-ng keeps global state, so there is one engine per process (`get_engine()`); use
processes, not threads, to synthesize in parallel. That state also carries from one utterance to the
next (waveform generator statics), so `synthesize()` gives slightly different samples for the same
request depending on what was spoken before. `synthesize_isolated()` forks a child from an engine
that was initialized but never used (this process's, or else one on a private copy of the library,
which has its own state) and seeds the C library's random generator in the child (two variants,
Reed and caleb, draw from it), so its output depends only on the request: use it wherever output
must be reproducible (POSIX only).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AcousticKDError

# espeak_AUDIO_OUTPUT / options / event types / parameters, from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_NAMES = {1: "word", 2: "sentence", 3: "mark", 5: "end", 6: "msg_terminated", 7: "phoneme"}
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 2, 3, 4, 7


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


class EspeakError(AcousticKDError):
    """libespeak-ng could not be loaded or refused a request."""


@dataclass(frozen=True)
class SynthEvent:
    """One espeak event: kind ('word' | 'phoneme' | 'sentence' | 'end'), sample index in the output
    audio, 1-based character position and length in the input text (words), phoneme name (phonemes)."""

    kind: str
    sample: int
    text_position: int = 0
    length: int = 0
    name: str = ""


@dataclass
class SynthResult:
    """Synthesized audio (float32 [N] in [-1, 1] at `sample_rate` Hz) and the events in it."""

    audio: np.ndarray
    sample_rate: int
    events: list[SynthEvent] = field(default_factory=list)

    def words(self) -> list[SynthEvent]:
        return [e for e in self.events if e.kind == "word"]

    def phonemes(self) -> list[SynthEvent]:
        return [e for e in self.events if e.kind == "phoneme"]

    def phone_spans(self) -> list[tuple[str, int, int, int]]:
        """Spoken phonemes as (name, start, end, text_position), samples; pauses (`_`...) left out.

        A phoneme ends where the next phoneme or pause event starts (or at the end of the audio).
        """
        events = self.phonemes()
        spans = []
        for i, ev in enumerate(events):
            if not ev.name.startswith("_"):
                end = events[i + 1].sample if i + 1 < len(events) else len(self.audio)
                spans.append((ev.name, ev.sample, max(end, ev.sample), ev.text_position))
        return spans

    def word_spans(self) -> list[tuple[int, int]]:
        """(start, end) sample of each spoken word, in text order.

        From phoneme events when there are any: word events can fire at the previous word's last
        phoneme, phoneme events fire where the phoneme's audio starts. A word runs from its first
        phoneme to the end of its last one.
        """
        words = self.words()
        positions = [w.text_position for w in words]
        phones = self.phone_spans()
        if not phones:
            starts = [w.sample for w in words]
            return list(zip(starts, starts[1:] + [len(self.audio)]))
        spans: dict[int, list[int]] = {}
        for _, start, end, pos in phones:
            # the word whose text starts at or before this phoneme's text position
            idx = max([i for i, p in enumerate(positions) if p <= pos], default=0)
            span = spans.setdefault(idx, [start, end])
            span[1] = end
        if len(spans) != len(words):
            raise EspeakError(f"espeak gave phonemes for {len(spans)} of {len(words)} words")
        return [tuple(spans[i]) for i in range(len(words))]


def data_path() -> Path:
    """The espeak-ng-data directory shipped by espeakng-loader."""
    try:
        import espeakng_loader
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise EspeakError("the espeakng-loader package is missing (fix: pip install espeakng-loader)") from e
    return Path(espeakng_loader.get_data_path())


def list_voices(language: str = "en") -> list[str]:
    """Voice names (lower case, as espeak_SetVoiceByName takes them) for one language family.

    Scripts other than Latin (e.g. en-Shaw, the Shavian alphabet) are left out.
    """
    names = set()
    for p in (data_path() / "lang").rglob("*"):
        if p.is_file() and (p.name == language or p.name.startswith(language + "-")):
            if p.name.lower() != f"{language}-shaw":
                names.add(p.name.lower())
    return sorted(names)


def list_variants() -> dict[str, str]:
    """Variant file name -> gender ('m', 'f' or '' when the file does not say)."""
    out = {}
    for p in sorted((data_path() / "voices" / "!v").iterdir()):
        gender = ""
        for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].lower() == "gender":
                gender = {"male": "m", "female": "f"}.get(parts[1].lower(), "")
                break
        out[p.name] = gender
    return out


class Espeak:
    """The libespeak-ng engine of this process, in synchronous mode with phoneme events on."""

    def __init__(self, library_path: str | None = None) -> None:
        import espeakng_loader

        lib_path = library_path or espeakng_loader.get_library_path()
        try:
            self._lib = ctypes.CDLL(lib_path)
        except OSError as e:
            raise EspeakError(f"cannot load {lib_path}: {e}") from e
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path()).encode(),
                                           _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {rate}) with data {data_path()}")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._events: list[SynthEvent] = []
        self._callback = _CALLBACK(self._on_synth)  # kept referenced: espeak holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._set_seed = getattr(self._lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
        self.used = False  # True once this process synthesized directly (state no longer pristine)

    def _on_synth(self, wav, num_samples, events) -> int:
        i = 0
        while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            ev = events[i]
            kind = _EVENT_NAMES.get(ev.type)
            if kind is not None:
                name = ev.id.string.decode("utf-8", "replace") if kind == "phoneme" else ""
                # `sample` (documented as internal; `audio_position` is only in ms) counts from the
                # start of this espeak_Synth call, i.e. indexes our output array
                self._events.append(SynthEvent(kind, int(ev.sample), int(ev.text_position),
                                               int(ev.length), name))
            i += 1
        if num_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def synthesize(self, text: str, voice: str = "en", variant: str | None = None, rate: int = 175,
                   pitch: int = 50, pitch_range: int = 50, word_gap: int = 0, seed: int = 0) -> SynthResult:
        """Speak `text`; rate in words/minute (80-450), pitch and range 0-100, word_gap in 10 ms
        units, seed for espeak's random generator (voice jitter/noise)."""
        self.used = True
        name = voice if not variant else f"{voice}+{variant}"
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise EspeakError(f"espeak has no voice '{name}' (see list_voices() / list_variants())")
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range),
                             (_PARAM_WORDGAP, word_gap), (_PARAM_VOLUME, 100)):
            self._lib.espeak_SetParameter(param, int(value), 0)
        if self._set_seed is not None:
            self._set_seed(int(seed))
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        err = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise EspeakError(f"espeak_Synth failed with code {err} for text {text!r}")
        self._lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        audio = pcm.astype(np.float32) / 32768.0
        return SynthResult(audio, self.sample_rate, list(self._events))


_ENGINE: Espeak | None = None


def get_engine() -> Espeak:
    """The process-wide engine (created on first use)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak()
    return _ENGINE


def synthesize(text: str, **kwargs) -> SynthResult:
    """Synthesize with the process-wide engine; keyword arguments as `Espeak.synthesize`."""
    return get_engine().synthesize(text, **kwargs)


_PRISTINE: Espeak | None = None


def _pristine_engine() -> Espeak:
    """An initialized engine that never synthesized in this process (its state is the same in every run)."""
    global _PRISTINE
    if _PRISTINE is None:
        engine = get_engine()
        if engine.used:
            # dlopen of a differently named copy maps a second instance with its own static state
            import espeakng_loader

            tmp = Path(tempfile.mkdtemp(prefix="espeak-"))
            try:
                copy = tmp / "libespeak-ng-private.so"
                shutil.copyfile(espeakng_loader.get_library_path(), copy)
                engine = Espeak(str(copy))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)  # the mapping outlives the file
        _PRISTINE = engine
    return _PRISTINE


def _reset_libc_random() -> None:
    """Seed the C library's rand()/random(): some variants (e.g. Reed, caleb) draw from them, and
    their state is whatever the process did before the fork."""
    libc = ctypes.CDLL(None)
    libc.srand(1)
    libc.srandom(1)


def synthesize_isolated(text: str, **kwargs) -> SynthResult:
    """Synthesize in a child forked from a pristine engine: the output depends only on the request.

    Keyword arguments as `Espeak.synthesize`. Costs one fork (about a millisecond).
    """
    engine = _pristine_engine()
    if engine.used:
        raise EspeakError("internal error: the pristine espeak engine was used directly")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: synthesize, send the pickled result, exit without running parent cleanup
        status = 0
        try:
            os.close(read_fd)
            _reset_libc_random()
            try:
                payload = pickle.dumps(("ok", engine.synthesize(text, **kwargs)))
            except Exception as e:  # sent to the parent, which raises it
                payload = pickle.dumps(("error", f"{type(e).__name__}: {e}"))
            with os.fdopen(write_fd, "wb") as f:
                f.write(payload)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        payload = f.read()
    _, wait_status = os.waitpid(pid, 0)
    if wait_status != 0 or not payload:
        raise EspeakError(f"espeak child process failed (wait status {wait_status}) for text {text!r}")
    kind, value = pickle.loads(payload)
    if kind != "ok":
        raise EspeakError(value)
    return value
