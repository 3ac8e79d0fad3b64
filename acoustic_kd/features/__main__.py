"""Job entry point of the features stage: `python -m acoustic_kd.features --data DIR --config JSON
--part J --nj N` computes part J of N (what `make_features` runs as jobs for nj > 1)."""

import sys

from .stage import main

sys.exit(main())
