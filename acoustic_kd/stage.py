"""The stage contract every command follows: skip when nothing that matters changed, else re-run.

A stage's `.done` marker holds its *signature*: the resolved config (without paths), a fingerprint
of every input it reads (keyed by its path relative to the stage's output dir, so a whole
data/ + exp/ tree can be moved or copied without re-running anything) and the hash of the source of
every acoustic_kd module that the stage's entry module imports, transitively (computed by
`acoustic_kd.codesig`, never listed by hand). A re-run compares:

- signature equal                   -> skip (logged "up to date")
- config, an input or the code differ -> log what changed, delete the stage's old outputs, re-run
- no marker, an interrupted run      -> resume when the interrupted run had the same signature
  (recorded in `.<name>.started`), else start afresh
- `--force`                          -> delete the old outputs and re-run

One run holds a stage's dir at a time: `begin` takes its lock (acoustic_kd.lock), `finish` lets go.

Before any of this the stage claims its output dir (`acoustic_kd.outdir`): a dir holding another
command's marker, or (for a stage that owns its whole dir, i.e. names `out_dir` among its outputs)
visible files it did not write, is refused; "old outputs" are only ever what the stage wrote (for
a whole dir: the entries its marker lists as `written`), so a file someone else put there stays.

Input fingerprints: files up to `HASH_LIMIT` bytes by content (SHA-256), bigger ones and audio by
size + modification time; a directory stands for the files under it (hidden files, i.e. markers
and temporary siblings, excluded); a missing input is recorded as missing.

    st = Stage("lang", out, config={"lang": to_dict(cfg)}, inputs=[text, lexicon],
               code=prepare_lang, outputs=[out])   # the function (or module) doing the work
    if st.begin(force=args.force):       # False: up to date, nothing to do
        ...  (st.fresh: the old result was discarded, so resume state must not be used)
        st.finish({"words": n})
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from .codesig import code_signature, entry_modules
from .lock import DirLock
from .outdir import claim_output_dir, legacy_owner, own_entries
from .utils import done_marker, get_logger, mark_done, remove_path, text_lines

log = get_logger("stage")

HASH_LIMIT = 4 << 20   # files up to this size are fingerprinted by content


def file_fingerprint(path: Path, by_content: bool = True) -> str:
    """'sha256:<hex>' of a file's content (small files), else 'stat:<size>:<mtime_ns>'."""
    st = path.stat()
    if by_content and st.st_size <= HASH_LIMIT:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return "sha256:" + h.hexdigest()
    return f"stat:{st.st_size}:{st.st_mtime_ns}"


def _files_under(path: Path) -> list[Path]:
    """`path` itself when it is a file, else the non-hidden files below it (sorted)."""
    if not path.is_dir():
        return [path]
    out = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / f for f in sorted(files) if not f.startswith(".")]
    return out


def fingerprints(paths: Iterable, relative_to: Path, by_content: bool = True) -> dict[str, str]:
    """{path relative to `relative_to`: fingerprint} for files and directories (None skipped).

    An entry may also be a triple (table, name, file): a file a table names (an archive of an scp,
    a recording of wav.scp), keyed by the table's relative path and the name it has there (tables
    hold the paths they were written with, so a copied data dir still points at the original
    files)."""
    base = os.path.abspath(relative_to)
    out: dict[str, str] = {}
    for p in paths:
        if p is None:
            continue
        if isinstance(p, tuple):
            table, name, f = p
            key = os.path.relpath(os.path.abspath(table), base) + "#" + name
            out[key] = file_fingerprint(Path(f), by_content) if Path(f).is_file() else "missing"
            continue
        for f in _files_under(Path(p)):
            key = os.path.relpath(os.path.abspath(f), base)
            out[key] = file_fingerprint(f, by_content) if f.is_file() else "missing"
    return out


def _jsonable(obj) -> object:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _flat(d, prefix: str = "") -> dict:
    if not isinstance(d, dict):
        return {prefix or "value": d}
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flat(v, key) if isinstance(v, dict) else {key: v})
    return out


def describe_changes(old: dict | None, new: dict, limit: int = 4) -> str:
    """A short human-readable list of what differs between two signatures."""
    if not old:
        return "the previous result records no signature (made by an older version)"
    items: list[str] = []
    oc, nc = _flat(old.get("config", {})), _flat(new.get("config", {}))
    for k in sorted(set(oc) | set(nc)):
        if oc.get(k) != nc.get(k):
            items.append(f"config {k}: {oc.get(k, '(unset)')!r} -> {nc.get(k, '(unset)')!r}")
    oi, ni = old.get("inputs", {}), new.get("inputs", {})
    for k in sorted(set(oi) | set(ni)):
        if k not in oi:
            items.append(f"new input {k}")
        elif k not in ni:
            items.append(f"input {k} no longer read")
        elif oi[k] != ni[k]:
            items.append(f"input {k} changed" if ni[k] != "missing" else f"input {k} is missing")
    ocode, ncode = old.get("code", {}), new.get("code", {})
    changed = sorted(m for m in set(ocode) | set(ncode) if ocode.get(m) != ncode.get(m))
    if changed:
        items.append("code of " + ", ".join(changed) + " changed")
    if not items:
        return "signature differs"
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


class Stage:
    """One command's unit of work in `out_dir` (see the module docstring).

    name: the stage's marker is `out_dir/.<name>.done` (`marker` overrides the name; "" = `.done`).
    config: JSON-able resolved settings (no paths: those belong in `inputs`).
    inputs: files/dirs read; audio: files fingerprinted by size+mtime only (never hashed).
    code: the entry of the stage's work (a module name, a module or the function itself), or
    several: the signature hashes every acoustic_kd module they import, transitively.
    outputs: files/dirs deleted before a re-run, so the old result is left nowhere; `out_dir`
    itself means the stage owns its whole dir (its own entries are deleted, never the dir).
    resumable: the stage's code resumes interrupted work (else a started run is only recorded, in
    `.<name>.started`, to show whose the dir is).
    owner: the command named in the marker (default `name`), told apart from another command's.
    alias: an older name of the marker (`.<alias>.done`), taken over when no marker of the current
    name is there and the old one is this stage's (`owner`), so that a finished result made before
    a rename is still found.
    """

    def __init__(self, name: str, out_dir, config: dict | None = None, inputs: Iterable = (),
                 code=(), outputs: Iterable = (), marker: str | None = None,
                 audio: Iterable = (), resumable: bool = True, owner: str | None = None,
                 alias: str | None = None):
        self.name = name
        self.owner = owner or name
        self.dir = Path(out_dir)
        self.config = _jsonable(config or {})
        self.inputs = [p if isinstance(p, tuple) else Path(p) for p in inputs if p is not None]
        self.audio = [p if isinstance(p, tuple) else Path(p) for p in audio if p is not None]
        self.code = entry_modules(code)
        outputs = [Path(p) for p in outputs if p is not None]
        self.whole_dir = any(os.path.abspath(p) == os.path.abspath(self.dir) for p in outputs)
        self.outputs = [p for p in outputs if os.path.abspath(p) != os.path.abspath(self.dir)]
        self.marker = done_marker(self.dir, name if marker is None else marker)
        self.started = self.marker.with_name(self.marker.name[:-len(".done")] + ".started")
        self.resumable = resumable
        self.alias = done_marker(self.dir, alias) if alias else None
        self.owned = False      # the dir holds this stage's marker or the record of its started run
        self.foreign: list[str] = []   # entries of a whole dir the stage did not write (kept)
        self.fresh = False
        self.reason = ""
        self._sig: dict | None = None
        self._lock: DirLock | None = None

    # ------------------------------------------------------------ signature
    def signature(self) -> dict:
        if self._sig is None:
            inputs = fingerprints(self.inputs, self.dir)
            inputs.update(fingerprints(self.audio, self.dir, by_content=False))
            self._sig = {"config": self.config, "inputs": inputs,
                         "code": code_signature(self.code)}
        return self._sig

    def recorded(self) -> dict | None:
        """The signature in the marker (None: no marker, or one without a signature)."""
        return _read(self.marker).get("stage") if self.marker.exists() else None

    def current(self) -> bool:
        """The marker exists and records this very signature."""
        self._adopt_alias()
        return self.marker.exists() and self.recorded() == self.signature()

    # ------------------------------------------------------------ protocol
    def claim(self) -> None:
        """Check that this stage may write its dir (`outdir.claim_output_dir`; a DataError if not)
        and note which of its entries are someone else's. A marker of the older name (`alias`)
        still there after `begin` took over its own is another command's: refused as such."""
        path = self.alias if self.alias is not None and self.alias.exists() and \
            not self.marker.exists() else self.marker
        marker = _read(path) if path.exists() else None
        started = _read(self.started) if self.started.exists() else None
        mine = marker if marker is not None and ("owner" in marker or "stage" in marker) else None
        record = mine or started or marker
        self.owned = record is not None
        self.foreign = claim_output_dir(self.dir, self.owner, record, self.config, self.whole_dir,
                                        (path.name, self.started.name))

    def begin(self, force: bool = False) -> bool:
        """Decide whether to run; True = run it (old outputs already removed when `self.fresh`).
        Takes the dir's lock first (acoustic_kd.lock: LockError while another run holds it); held
        until `finish`, or until this Stage is collected when its command failed."""
        if _main_process():
            self._lock = DirLock(self.dir).acquire()
        self._adopt_alias()
        self.claim()
        sig = self.signature()
        if force:
            self.reason = "--force"
        elif self.marker.exists():
            old = self.recorded()
            if old == sig:
                log.info("%s: %s is up to date; skipping (use --force to redo)", self.dir, self.name)
                self.release()
                return False
            self.reason = describe_changes(old, sig)
        elif self.started.exists():
            old = _read(self.started).get("stage")
            if old == sig:
                self.reason = ""
                log.info("%s: %s resumes an interrupted run", self.dir, self.name)
            else:
                self.reason = "interrupted run had other settings: " + describe_changes(old, sig)
        self.fresh = bool(self.reason)
        if not _main_process():  # under torchrun only rank 0 touches the stage's files
            return True
        if self.reason:
            log.info("%s: %s re-runs: %s", self.dir, self.name, self.reason)
            self.discard()
        # a plain write: a torn file only reads as "other settings" (start afresh)
        self.started.parent.mkdir(parents=True, exist_ok=True)
        self.started.write_text(json.dumps({"stage": sig, "owner": self.owner, "foreign": self.foreign},
                                           sort_keys=True), encoding="utf-8")
        return True

    def _adopt_alias(self) -> None:
        """Rename a marker written under the stage's older name to its current name, when this
        stage wrote it (it names this stage's command, or an older version's marker names none
        and `outdir.legacy_owner` recognises it): another command's marker of that name stays."""
        if self.alias is None or not self.alias.exists() or self.marker.exists() \
                or not _main_process():
            return
        old = _read(self.alias)
        if old.get("owner", self.owner if legacy_owner(old, self.config) else None) == self.owner:
            os.replace(self.alias, self.marker)

    def discard(self) -> None:
        """Delete the marker and the old outputs: those given now, those the marker recorded and,
        for a whole dir, its entries that are not foreign; nothing when the dir is not the stage's."""
        if not self.owned:
            return
        recorded = [self.dir / p for p in _read(self.marker).get("outputs", [])] \
            if self.marker.exists() else []
        mine = own_entries(self.dir, self.foreign, (self.started.name,)) if self.whole_dir else []
        self.marker.unlink(missing_ok=True)
        for p in [*self.outputs, *recorded, *mine]:
            remove_path(p)

    def finish(self, info: dict | None = None, outputs: Iterable = ()) -> None:
        """Write the marker (merged with what the stage's own code wrote there) with the signature."""
        if not _main_process():
            return
        payload = _read(self.marker) if self.marker.exists() else {}
        payload.pop("time", None)
        extra = [os.path.relpath(os.path.abspath(p), os.path.abspath(self.dir)) for p in outputs]
        if extra:
            payload["outputs"] = sorted(set(payload.get("outputs", [])) | set(extra))
        if self.reason:
            payload["ran_because"] = self.reason
        if self.whole_dir:   # what a re-run may delete: what this run wrote, nothing else
            skip = (self.marker.name, self.started.name)
            payload["written"] = [p.name for p in own_entries(self.dir, self.foreign, skip)]
        mark_done(self.dir, self.marker.name[1:-len(".done")],
                  {**payload, **(info or {}), "owner": self.owner, "stage": self.signature()})
        self.started.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        """Let the next run into the dir (done by `finish`)."""
        if self._lock is not None:
            self._lock.release()


def _main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _read(path: Path) -> dict:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- inputs of common kinds
def scp_archives(scp) -> list[tuple[Path, str, Path]]:
    """(scp, path as written, archive) for each archive a Kaldi scp points to, resolved as the
    feature reader does (as written, else relative to the scp's dir, else in its data/ by name)."""
    scp = Path(scp)
    if not scp.is_file():
        return []
    arks: dict[str, None] = {}
    for _, line in text_lines(scp):
        parts = line.split(None, 1)
        if len(parts) == 2 and not parts[1].rstrip().endswith("|"):
            arks[parts[1].strip().rsplit(":", 1)[0]] = None
    out = []
    for a in arks:
        cands = [Path(a), scp.parent / a, scp.parent / "data" / Path(a).name]
        out.append((scp, a, next((c for c in cands if c.is_file()), Path(a))))
    return out


def feature_inputs(data_dir, *extra: str) -> list:
    """What a stage reading a data dir's features reads: feats.scp, cmvn.scp, utt2num_frames,
    fbank.json, the archives they point to, and `extra` files of the dir (e.g. "text")."""
    d = Path(data_dir)
    out = [d / n for n in ("feats.scp", "cmvn.scp", "utt2num_frames", "fbank.json", *extra)
           if (d / n).exists()]
    return out + scp_archives(d / "feats.scp") + scp_archives(d / "cmvn.scp")


def ali_inputs(ali_dir) -> list:
    """What a stage reading an alignment dir reads (not its summary, which holds timings)."""
    d = Path(ali_dir)
    return [d / n for n in ("ali.scp", "num_pdfs", "priors.txt") if (d / n).exists()] + \
        scp_archives(d / "ali.scp")
