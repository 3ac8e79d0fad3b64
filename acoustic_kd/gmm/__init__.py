"""GMM-HMM alignment: features (feats), GMMs (diag_gmm), utterance graphs (graph; cross-word
context: xword), Viterbi alignment (align), decision trees (tree), Viterbi-EM training (train),
LDA+MLLT (lda_mllt), SAT and fMLLR (sat, fmllr), the passes on disk (run), network realignment
(nnet_align) and the modes of `acoustic-kd align` (modes).

`acoustic-kd align --nj N [--backend local|slurm]` splits a data set into N parts of whole speakers
(parallel.split_speakers: balanced by frames, the same for every pass), each held by a worker job
(part.Part; jobs started once per data set through acoustic_kd.pool, one thread each). Per part:
the flat start, every (re)alignment and the final alignments of the training set and of
--align-sets, the Gaussian statistics of each EM iteration (and of the pass after a mix-up), the
tree statistics, the LDA and MLLT statistics, per-speaker fMLLR estimation (tri3), and DNN
realignment (--nnet). Summed here, then estimated once: the GMM update and mix-up, the transition
probabilities, the trees, LDA, MLLT. Results equal N = 1's up to the order of float additions
(tests/test_gmm_nj.py)."""
