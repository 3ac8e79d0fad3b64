"""Decoding and scoring: HL∘G graph (kaldifst), FasterDecoder search, WER/CER/SER, acwt tuning on dev."""

from .decoder import (ChunkedLogPost, DecodeConfig, DecodeResult, Graph, decode_loglikes, decode_set,
                      decode_to_dir, decode_utterance, hybrid_loglikes, nnet_log_posteriors, words_of)
from .graph import GraphConfig, arpa_to_fst, build_graph, compile_graph, make_hl, with_word_penalty
from .score import (ScoreFile, WerResult, align_words, chars_of, edit_counts, format_errs,
                    frame_accuracy, read_wer_file, score, score_both, score_files, wer)
from .tune import TuneConfig, TuneResult, grid_search, pick_best, tune_on_dev

__all__ = ["ChunkedLogPost", "DecodeConfig", "DecodeResult", "Graph", "decode_loglikes", "decode_set",
           "decode_to_dir", "decode_utterance", "hybrid_loglikes", "nnet_log_posteriors", "words_of",
           "GraphConfig", "arpa_to_fst", "build_graph", "compile_graph", "make_hl",
           "with_word_penalty", "ScoreFile", "WerResult", "align_words", "chars_of", "edit_counts",
           "format_errs", "frame_accuracy", "read_wer_file", "score", "score_both", "score_files",
           "wer", "TuneConfig", "TuneResult", "grid_search", "pick_best", "tune_on_dev"]
