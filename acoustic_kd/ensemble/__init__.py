"""The teacher ensemble (pipeline step `ensemble`): K members trained as jobs, run, combined, evaluated.

Modules: `members` (the K members' training jobs: seeds, architectures, data order), `combine`
(the combination rules: arithmetic / geometric, at T = 1 and at temperature T), `runner`
(TeacherEnsemble: the members run together on one shared window; what distillation, soft targets,
decoding and realignment run), `evaluate` (frame accuracy and CE of every member and rule), `stage` (EnsembleJob: the
`acoustic-kd ensemble` step).
"""

from .combine import RULES, check_rule, combine, combine_logits
from .evaluate import evaluate, evaluate_set, format_table
from .members import member_jobs, member_dirs, train_members
from .runner import TeacherEnsemble, crop_window, load_teacher, model_context, union_context

__all__ = ["RULES", "check_rule", "combine", "combine_logits", "evaluate", "evaluate_set",
           "format_table", "member_jobs", "member_dirs", "train_members", "TeacherEnsemble",
           "crop_window", "load_teacher", "model_context", "union_context"]
