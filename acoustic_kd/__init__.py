"""acoustic_kd: speech acoustic-model distillation, Kaldi-style.

Stages: prepare corpus -> lang -> features -> GMM-HMM alignment -> DNN ensemble ->
soft targets -> distilled student -> WFST decoding -> export -> report.
"""

__version__ = "0.1.0"
