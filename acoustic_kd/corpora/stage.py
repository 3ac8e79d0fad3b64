"""The `prepare` stage on disk: a corpus download (or nothing, for a synthesized corpus) in,
validated Kaldi data dirs OUT/{train,dev,test}/ and OUT/local/ out.

`PrepareJob` is one `acoustic-kd prepare` run: `stage()` is its contract (the source audio by size
and modification time, a lexicon file and the options in; the data dirs the corpus function
returns out), `run()` calls the corpus's `prepare_<name>` function (`CORPORA`).
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config_types import FieldError
from ..errors import ConfigError
from ..stage import Stage
from . import CORPORA


# options that are paths or run settings, not part of the result's config
_PATHS = ("out_dir", "src_dir", "nj", "force", "recordings", "supervisions")


@dataclass
class PrepareJob:
    """One corpus preparation: the options of `acoustic-kd prepare` by name; `opts` holds the extra
    options of the corpus's prepare function (`--opt KEY=VALUE`, values already parsed)."""

    corpus: str
    out: str
    src: str | None = None
    seed: int | None = None
    lexicon: str | None = None
    nj: int | None = None
    split: str | None = None
    recordings: str | None = None
    supervisions: str | None = None
    force: bool = False
    opts: dict = field(default_factory=dict)

    def options(self) -> dict:
        """The keyword arguments of the prepare function (unset ones left out), checked against
        what it takes."""
        opts = {"out_dir": self.out, "src_dir": self.src, "seed": self.seed,
                "lexicon": self.lexicon, "nj": self.nj, "force": self.force or None,
                "split": self.split, "recordings": self.recordings,
                "supervisions": self.supervisions, **self.opts}
        opts = {k: v for k, v in opts.items() if v is not None}
        params = inspect.signature(CORPORA[self.corpus]).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        if "src_dir" in params and "src_dir" not in opts:
            raise ConfigError(f"prepare {self.corpus} needs --src DIR (the corpus download)")
        unknown = [k for k in opts if k not in params and not takes_any]
        if unknown:
            valid = [p for p in params if p not in ("out_dir",)]
            raise ConfigError(f"prepare {self.corpus} does not take {unknown}; it takes {valid}")
        return opts

    def stage(self, opts: dict) -> Stage:
        """The prepare stage: the corpus download (audio by size and modification time), a lexicon
        file and the options in; the data dirs the corpus function returns out (recorded in the
        marker, so that a changed option or source removes them before they are made again)."""
        config = {"corpus": self.corpus, **{k: v for k, v in opts.items() if k not in _PATHS}}
        lexicon = opts.get("lexicon")
        inputs = [lexicon] if isinstance(lexicon, str) and Path(lexicon).is_file() else []
        if inputs:
            config["lexicon"] = "file"
        inputs += [opts[k] for k in ("recordings", "supervisions") if k in opts]
        src = opts.get("src_dir")
        return Stage("prepare", self.out, config, inputs=inputs, audio=[src] if src else [],
                     code=CORPORA[self.corpus], outputs=[self.out])

    def run(self) -> tuple[dict[str, str], float | None]:
        """({set: data dir}, seconds taken; None when the preparation was up to date)."""
        fn = CORPORA[self.corpus]
        opts = self.options()
        st = self.stage(opts)
        if not st.begin(self.force):
            return json.loads(st.marker.read_text()).get("prepared", {}), None
        t0 = time.time()
        fresh = {"force": True} if st.fresh and "force" in inspect.signature(fn).parameters else {}
        try:
            out = {k: str(v) for k, v in fn(**{**opts, **fresh}).items()}
        except FieldError as e:   # a corpus config value given with --opt
            raise ConfigError(f"prepare {self.corpus} --opt {e.key}={e.value}: expected "
                              f"{e.expected}") from None
        st.finish({"prepared": out},   # (never the stage dir itself: it keeps later stages' files)
                  outputs=[v for v in out.values()
                           if Path(v).exists() and Path(v).resolve() != st.dir.resolve()])
        return out, time.time() - t0
