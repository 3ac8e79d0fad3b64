"""Decoding (steps `mkgraph`, `decode`, `score`): the HCLG graph, search, lattices, scoring, tuning.

Modules: `graph` (mkgraph: lang dir + HMM -> HCLG on disk), built from `lexicon_fst` (HL / L),
`grammar_fst` (G from ARPA) and `hclg` (determinization, cross-word context, self-loops);
`search` (the torch-free beam search shared with the exported runtime), `decoder` (decode a set),
`lattice` (lattices, n-best, LM rescoring, CTM), `latgen` (lattice generation in numpy), `latgrid`
(a lattice's best paths at many acwt / penalty points), `score` (WER / CER / SER), `tune` (acwt
etc. on dev).
"""

from .decoder import (ChunkedLogPost, DecodeConfig, DecodeResult, Graph, decode_loglikes, decode_set,
                      decode_to_dir, decode_utterance, hybrid_loglikes, nnet_log_posteriors, words_of)
from .grammar_fst import arpa_to_fst
from .graph import GraphConfig, build_graph, compile_graph, with_word_penalty
from .lexicon_fst import make_hl
from .score import (ScoreFile, WerResult, align_words, chars_of, edit_counts, format_errs,
                    frame_accuracy, read_wer_file, score, score_both, score_files, wer)
from .tune import TuneConfig, TuneResult, grid_search, pick_best, tune_on_dev

__all__ = ["ChunkedLogPost", "DecodeConfig", "DecodeResult", "Graph", "decode_loglikes", "decode_set",
           "decode_to_dir", "decode_utterance", "hybrid_loglikes", "nnet_log_posteriors", "words_of",
           "GraphConfig", "arpa_to_fst", "build_graph", "compile_graph", "make_hl",
           "with_word_penalty", "ScoreFile", "WerResult", "align_words", "chars_of", "edit_counts",
           "format_errs", "frame_accuracy", "read_wer_file", "score", "score_both", "score_files",
           "wer", "TuneConfig", "TuneResult", "grid_search", "pick_best", "tune_on_dev"]
