"""Kaldi data dirs (pipeline step `data-dir`, and what every later step reads): tables, checks, audio.

Modules: `datadir` (the tables: read, check, `DataDir` load/save/subset), `ops` (validate with
every problem, fix, subset, combine, speed-perturb: the `acoustic-kd data-dir` actions), `audio`
(wav.scp entries, `cmd |` pipes, segments, mono, resampling, audio checks).
"""

from .audio import AudioError, check_data_audio, load_audio, read_wav_entry, resample
from .datadir import REQUIRED, TABLES, DataDir, Problem, resolve_corpus_root
from .ops import combine_data_dirs, fix_data_dir, speed_perturb_data_dir, subset_data_dir, validate_data_dir

__all__ = ["AudioError", "check_data_audio", "load_audio", "read_wav_entry", "resample", "REQUIRED",
           "TABLES", "DataDir", "Problem", "resolve_corpus_root", "combine_data_dirs", "fix_data_dir",
           "speed_perturb_data_dir", "subset_data_dir", "validate_data_dir"]
