"""Features (pipeline step `features`): log-mel fbank, CMVN stats, Kaldi ark/scp, the parallel stage.

Modules: `fbank` (FbankConfig, compute_fbank: Kaldi-exact via kaldi-native-fbank), `cmvn` (Kaldi-layout
CMVN stats), `io` (ark/scp reading and writing), `stage` (make_features: a data dir in `nj` parallel
parts, `python -m acoustic_kd.features` being one part's job), `featureset` (FeatureSet: the read
side, CMVN on the fly).
"""

from .cmvn import apply_cmvn, compute_cmvn_stats
from .fbank import FBANK_BLOCK, INT16_SCALE, FbankConfig, compute_fbank
from .featureset import FeatureSet
from .stage import FAILED_FILE, make_features

__all__ = ["FbankConfig", "compute_fbank", "compute_cmvn_stats", "apply_cmvn", "make_features",
           "FeatureSet", "INT16_SCALE", "FBANK_BLOCK", "FAILED_FILE"]
