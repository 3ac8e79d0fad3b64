"""Safe output dirs: a command writes into a dir it owns and never deletes a file it did not write.

Every stage (`acoustic_kd.stage.Stage`) claims its output dir in `begin` through `claim_output_dir`:

- a dir that holds the marker of *another* command under this stage's marker name (for example
  `decode --out` given an export dir: both write `.done`) is refused;
- a stage that owns its whole dir (decode, export, lang, mkgraph, soft-targets, a GMM pass, prepare)
  refuses a dir holding visible files when the dir is not its own output (no marker and no record
  of an interrupted run of it): choose an empty or new dir;
- in a dir it does own, the entries it did not write (a user's notes, another command's outputs,
  hidden files that were there first) are *foreign*: recorded, kept, never deleted. A re-run deletes
  only the entries the earlier run wrote (`own_entries`), so the old result is gone and nothing else.

`staged_dir` builds a result in a temporary sibling and moves its entries into the output dir one by
one, so an existing dir keeps what the command did not write (an atomic whole-dir rename would not).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from .errors import DataError

_FIX = "give an empty or new output dir, or move those files away"


def entries(directory: Path, skip: tuple[str, ...] = ()) -> set[str]:
    """Names of the entries directly in `directory` (none when it does not exist), less `skip`."""
    if not directory.is_dir():
        return set()
    return {e for e in os.listdir(directory) if e not in skip}


def legacy_owner(recorded: dict, config: dict) -> bool:
    """Whether a marker that names no command (an older version's) is this stage's: one without a
    signature was written by the stage's own code; one with a signature records a config with
    mostly the same top-level keys (decode's and export's share none, say)."""
    if "stage" not in recorded:
        return True
    old, new = set((recorded["stage"] or {}).get("config") or {}), set(config)
    return len(old & new) > len(old ^ new)


def claim_output_dir(directory: Path, owner: str, record: dict | None, config: dict,
                     whole_dir: bool, own_files: tuple[str, ...]) -> list[str]:
    """Check that `owner` may write `directory`; return its foreign entries (kept, never deleted).

    record: the stage's marker (or, after an interrupted run, its `.started` file) read as JSON,
    None when it has neither; config: the stage's config (to recognise an older version's marker);
    whole_dir: the stage owns the dir (else it writes only the files it names); own_files: the
    stage's marker and `.started` names. Raises DataError naming the dir and the fix.
    """
    present = entries(directory, own_files)
    if record is None:
        visible = sorted(e for e in present if not e.startswith("."))
        if whole_dir and visible:
            more = f" (+{len(visible) - 3} more)" if len(visible) > 3 else ""
            raise DataError(directory, f"is not empty and was not written by `{owner}`: it holds "
                            f"{', '.join(visible[:3])}{more}", _FIX)
        return sorted(present)
    theirs = record.get("owner")
    if theirs != owner and (theirs is not None or not legacy_owner(record, config)):
        raise DataError(directory, f"holds the output of another command ({theirs or 'unknown'}: "
                        f"{own_files[0]}), not of `{owner}`", _FIX)
    if record.get("written") is not None:   # a finished run: all it did not write is foreign
        return sorted(present - set(record["written"]))
    if record.get("foreign") is not None:   # an interrupted run: what was there before it
        return sorted(present & set(record["foreign"]))
    listed = {Path(p).parts[0] for p in record.get("outputs", []) if Path(p).parts}
    return sorted(present - listed)         # an older version's marker: only what it lists is its


def own_entries(directory: Path, foreign: list[str], skip: tuple[str, ...]) -> list[Path]:
    """The entries of `directory` that are the stage's own: all but `foreign` and `skip`."""
    return [directory / n for n in sorted(entries(directory, skip) - set(foreign))]


@contextlib.contextmanager
def staged_dir(directory: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary sibling of `directory`; on success move its entries into
    `directory` one by one (same names replaced, hidden ones such as markers last, every other
    entry kept). A failure removes the sibling and leaves `directory` as it was."""
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        directory.mkdir(parents=True, exist_ok=True)
        for name in sorted(os.listdir(tmp), key=lambda n: (n.startswith("."), n)):
            target = directory / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(tmp / name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
