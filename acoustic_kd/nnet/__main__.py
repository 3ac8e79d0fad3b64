"""Job entry point of one training run: `python -m acoustic_kd.nnet JOB.json` runs the TrainJob
written there (what `acoustic-kd ensemble` runs for each member)."""

import sys

from .stage import main

sys.exit(main())
