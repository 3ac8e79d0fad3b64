"""The `lang` stage on disk: training transcripts and a lexicon in, the lang dir out.

`LangJob` is one `acoustic-kd lang` run: `stage()` is its contract (the transcripts, the lexicon
and a given ARPA file in; the lang dir out), `run()` builds the lang dir (`langdir.prepare_lang`)
and installs a given ARPA LM as its G.arpa (`arpa.install_arpa`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import load_config, to_dict
from ..stage import Stage
from ..utils import read_table
from .arpa import install_arpa
from .langdir import Lang, LangConfig, prepare_lang
from .lexicon import MAX_OOV_RATE


def read_texts(data_dir: str | Path) -> dict[str, str]:
    """{utterance: transcript} of a data dir's text."""
    return {k: v for k, v, _ in read_table(Path(data_dir) / "text", min_fields=1)}


@dataclass
class LangJob:
    """One lang dir: the options of `acoustic-kd lang` by name; `options` holds the command-line
    values of the LangConfig fields (None = not given; `config` is the recipe YAML)."""

    data: str
    lexicon: str
    out: str
    vocab_data: list[str] = field(default_factory=list)
    arpa: str | None = None
    config: str | None = None
    max_oov_rate: float = MAX_OOV_RATE
    force: bool = False
    options: dict = field(default_factory=dict)

    def configs(self) -> LangConfig:
        return load_config(LangConfig, self.config, "lang", self.options)

    def stage(self, cfg: LangConfig) -> Stage:
        """The lang stage: the transcripts, the lexicon and the ARPA file in, the lang dir out."""
        lexicon = None if self.lexicon == "cmudict" else self.lexicon
        texts = [Path(d) / "text" for d in (self.data, *self.vocab_data)]
        return Stage("lang", self.out, {"lang": to_dict(cfg), "cmudict": lexicon is None,
                                        "vocab_sets": len(self.vocab_data), "arpa": bool(self.arpa)},
                     inputs=[*texts, lexicon, self.arpa], code=__name__, outputs=[Path(self.out)],
                     marker="", resumable=False)

    def run(self) -> Lang | None:
        """Build the lang dir; None when it is up to date."""
        cfg = self.configs()
        st = self.stage(cfg)
        if not st.begin(self.force):
            return None
        extra: dict[str, str] = {}
        for d in self.vocab_data:
            extra.update(read_texts(d))
        lang = prepare_lang(read_texts(self.data), self.lexicon, self.out, cfg, extra_texts=extra,
                            max_oov_rate=self.max_oov_rate)
        if self.arpa:
            install_arpa(self.arpa, self.out, lang.words)
        st.finish()
        return lang
