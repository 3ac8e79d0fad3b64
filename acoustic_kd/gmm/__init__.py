"""GMM-HMM alignment: features (feats), GMMs (diag_gmm), utterance graphs (graph), Viterbi
alignment (align), decision trees (tree), Viterbi-EM training (train), the passes on disk (run),
network realignment (nnet_align) and the modes of `acoustic-kd align` (modes)."""
