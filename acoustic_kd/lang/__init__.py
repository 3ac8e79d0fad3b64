"""The lang dir (pipeline step `lang`): phone set, lexicon, HMM topology, OOV policy, grammar.

Modules: `lexicon` (phone-set constants, the lexicon reader, cmudict, word positions, OOV counts),
`arpa` (n-gram estimation, ARPA reading / writing), `langdir` (LangConfig, Lang, the topology,
`prepare_lang` / `load_lang`: the files of data/lang/), `stage` (LangJob: the `acoustic-kd lang` step).
"""

from .arpa import estimate_ngram, read_arpa, write_arpa
from .langdir import Lang, LangConfig, load_lang, make_topology, prepare_lang
from .lexicon import (ARPABET, POSITIONS, SIL, SPN, UNK, Lexicon, base_phone, cmudict_lexicon,
                      load_lexicon, oov_report, position_dependent, strip_stress)

__all__ = ["estimate_ngram", "read_arpa", "write_arpa", "Lang", "LangConfig", "load_lang",
           "make_topology", "prepare_lang", "ARPABET", "POSITIONS", "SIL", "SPN", "UNK", "Lexicon",
           "base_phone", "cmudict_lexicon", "load_lexicon", "oov_report", "position_dependent",
           "strip_stress"]
