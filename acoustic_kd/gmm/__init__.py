"""GMM-HMM alignment: features (feats), GMMs (diag_gmm), utterance graphs (graph), Viterbi
alignment (align), decision trees (tree), Viterbi-EM training (train) and the on-disk stage (run)."""
