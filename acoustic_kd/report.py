"""The comparison report: one table (GMM, control, members, ensemble, distilled, int8 export) + plots.

Reads what earlier stages left in an experiment dir:
- `exp/decode/<system>_<set>/wer` and `cer` (Kaldi format `%WER 1.23 [ 12 / 975, ...]`, read by
  `acoustic_kd.decode.score.read_wer_file`), `frame_acc` (a float, percent) and `decode.json`
  (`rtf`, ...); a GMM pass's decodes are `exp/decode/gmm_<pass>_<set>` (`acoustic-kd decode
  --gmm`), and every system's WER is also given over the GMM's (the lowest GMM WER of the set):
  the floor the networks must clear, as Kaldi's RESULTS files show tri3b beside the DNN;
- `exp/<system dir>/final.pt` for parameters and MACs per frame (the hard-target control's dir is
  `exp/control`, or `exp/student_hard` in an experiment made before that name), `exp/<pass>/
  final.gmm.npz` for a GMM's;
- `train_log.jsonl` of each trained model for the training-curve plot.
Writes `exp/RESULTS.md` and `exp/plots/*.png`. `ReportJob` is one `acoustic-kd report` run: its
stage contract (every system's checkpoint, training log and decode results in; RESULTS.md and
plots/ out) and `run()`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .decode.score import read_wer_file
from .errors import DataError
from .report_plots import plot_all, plot_curves  # noqa: F401 (plot_curves: recipes/common/study.py)
from .stage import Stage
from .utils import atomic_write_text, get_logger

log = get_logger(__name__)


@dataclass
class SystemRow:
    """One row of the comparison table (None = not measured)."""

    name: str
    frame_acc: dict[str, float | None] = field(default_factory=dict)  # set -> percent
    wer: dict[str, float | None] = field(default_factory=dict)        # set -> percent
    partial: dict[str, bool] = field(default_factory=dict)
    params: int | None = None
    macs_per_frame: int | None = None
    rtf: float | None = None
    cer: dict[str, float | None] = field(default_factory=dict)        # set -> percent
    role: str = ""   # gmm | control | member | ensemble | student | export: what the row is, by key


def parse_wer_file(path: Path) -> tuple[float, bool] | None:
    """Read a Kaldi-format `wer` (or `cer`) file -> (rate percent, partial?) or None when absent or
    unparsable."""
    res = read_wer_file(path)
    if res is None:
        if Path(path).exists():
            log.warning("%s: no '%%WER'/'%%CER' line found; left blank", path)
        return None
    return res.rate, res.partial


def read_float(path: Path) -> float | None:
    if not path.exists():
        return None
    try:
        return float(path.read_text().split()[0])
    except (ValueError, IndexError):
        log.warning("%s: not a number; left blank", path)
        return None


def collect_decode(row: SystemRow, decode_root: Path, system: str, sets: list[str]) -> None:
    """Fill WER, frame accuracy and RTF of `row` from `decode_root/<system>_<set>/`."""
    rtfs = []
    for s in sets:
        d = decode_root / f"{system}_{s}"
        w = parse_wer_file(d / "wer")
        row.wer[s], row.partial[s] = (w if w else (None, False))
        c = parse_wer_file(d / "cer")
        row.cer[s] = c[0] if c else None
        row.frame_acc[s] = read_float(d / "frame_acc")
        summ = d / "decode.json"
        if summ.exists():
            info = json.loads(summ.read_text())
            if row.frame_acc[s] is None and info.get("frame_acc") is not None:
                row.frame_acc[s] = float(info["frame_acc"])
            if info.get("rtf") is not None:
                rtfs.append(float(info["rtf"]))
    row.rtf = sum(rtfs) / len(rtfs) if rtfs else None


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def _fmt_count(n: int | None) -> str:
    if n is None:
        return "–"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def gmm_floor(rows: list[SystemRow], sets: list[str]) -> dict[str, SystemRow]:
    """Per set, the GMM row with the lowest WER there (sets without a GMM WER left out)."""
    out = {}
    for s in sets:
        scored = [r for r in rows if r.role == "gmm" and r.wer.get(s) is not None]
        if scored:
            out[s] = min(scored, key=lambda r: r.wer[s])
    return out


def gmm_ratio(row: SystemRow, floor: SystemRow | None, s: str) -> float | None:
    """`row`'s WER on set `s` over the GMM floor's (None when either is missing or the GMM's is 0)."""
    if floor is None or row.wer.get(s) is None or not floor.wer.get(s):
        return None
    return row.wer[s] / floor.wer[s]


def format_table(rows: list[SystemRow], sets: list[str]) -> str:
    """A Markdown table: frame accuracy, WER and CER per set, params, MACs/frame, real-time factor;
    with a GMM row, each system's WER over the GMM's per set after the WER columns."""
    floor = gmm_floor(rows, sets)
    ratio_sets = [s for s in sets if s in floor]
    head = ["system"] + [f"frame acc {s} %" for s in sets] + [f"WER {s} %" for s in sets] + \
        [f"WER {s} ÷ GMM" for s in ratio_sets] + [f"CER {s} %" for s in sets] + \
        ["params", "MACs/frame", "RTF"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        wers = [_fmt(r.wer.get(s), ".2f") + (" [PARTIAL]" if r.partial.get(s) else "") for s in sets]
        ratios = [_fmt(gmm_ratio(r, floor[s], s), ".2f") for s in ratio_sets]
        cers = [_fmt(r.cer.get(s), ".2f") for s in sets]
        cells = [r.name] + [_fmt(r.frame_acc.get(s), ".2f") for s in sets] + wers + ratios + \
            cers + [_fmt_count(r.params), _fmt_count(r.macs_per_frame), _fmt(r.rtf, ".4f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def gmm_note(rows: list[SystemRow], sets: list[str]) -> str:
    """The line that explains the ÷ GMM columns: which GMM each set's ratio is taken over; '' when
    no GMM was decoded."""
    floor = gmm_floor(rows, sets)
    if not floor:
        return ""
    refs = "; ".join(f"{s}: {r.name}, {r.wer[s]:.2f} %" for s, r in floor.items())
    return (f"WER ÷ GMM: each system's WER over the GMM's on the same set and graph ({refs}); "
            "below 1 the system beats the GMM.")


def table_with_notes(rows: list[SystemRow], sets: list[str]) -> str:
    """`format_table` with the lines under it: the GMM ratios' reference and the kept share."""
    notes = [n for n in (gmm_note(rows, sets), kept_share(rows, sets)) if n]
    return format_table(rows, sets) + "".join(f"\n{n}\n" for n in notes)


def read_train_log(path: Path) -> list[dict]:
    """Read a JSONL training log (one JSON object per line); unreadable lines are counted and logged."""
    out, bad = [], 0
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1
    if bad:
        log.warning("%s: %d unreadable line(s) skipped", path, bad)
    return out


def kept_fraction(control: float, student: float, ensemble: float) -> float:
    """The share of the ensemble's gain over the control that the student keeps:
    (student − control) / (ensemble − control), the same for an accuracy and an error rate
    (both differences change sign); nan when the ensemble equals the control. Above 1: the
    student beat the ensemble."""
    return (student - control) / (ensemble - control) if ensemble != control else float("nan")


def kept_share(rows: list[SystemRow], sets: list[str]) -> str:
    """The distilled student's share of the ensemble's gain over the hard-target control, per set:
    frame accuracy (kd − hard)/(ensemble − hard) and WER (hard − kd)/(hard − ensemble); '' when a
    system is missing. A share above 1 means the student beat the ensemble."""
    by = {r.role: r for r in rows}
    hard, kd, ens = by.get("control"), by.get("student"), by.get("ensemble")
    if not (hard and kd and ens):
        return ""
    parts = []
    for s in sets:
        for what, get, sign in (("frame accuracy", lambda r: r.frame_acc.get(s), 1),
                                ("WER", lambda r: r.wer.get(s), -1)):
            h, k, e = get(hard), get(kd), get(ens)
            if None in (h, k, e):
                continue
            share = "n/a (no ensemble gain)" if sign * (e - h) <= 0 else f"{kept_fraction(h, k, e):.2f}"
            parts.append(f"{what} {s} {share} (control {h:.2f}, student {k:.2f}, ensemble {e:.2f})")
    return ("Kept share of the ensemble's gain over the hard-target control: " + "; ".join(parts) +
            ".") if parts else ""


def seed_summaries(exp_dir: Path) -> str:
    """The seed studies' summaries (`exp/<name>/SEEDS.md`, recipes/common/student_seeds.sh)."""
    out = []
    for p in sorted(Path(exp_dir).glob("*/SEEDS.md")):
        out.append(f"### {p.parent.name}\n\n{p.read_text().strip()}\n")
    return "\n".join(out)


def write_results(rows: list[SystemRow], sets: list[str], exp_dir: Path, title: str,
                  notes: str = "", curves: dict[str, list[dict]] | None = None) -> str:
    """Write `exp/RESULTS.md` (+ plots) and return the table text (with the lines under it:
    `table_with_notes`)."""
    table = table_with_notes(rows, sets)
    plots = plot_all(rows, curves or {}, sets, exp_dir / "plots")
    body = [f"# {title}\n", table]
    if notes:
        body.append("\n" + notes.strip() + "\n")
    seeds = seed_summaries(exp_dir)
    if seeds:
        body.append("\n## Seeds\n\n" + seeds)
    body.append("\n" + "\n".join(f"![{p.stem}](plots/{p.name})" for p in plots) + "\n")
    atomic_write_text(exp_dir / "RESULTS.md", "".join(body))
    return table


def model_size(checkpoint: Path) -> tuple[int | None, int | None]:
    """(parameters, MACs per frame) of a checkpoint, or (None, None) when it is absent."""
    if not checkpoint.exists():
        return None, None
    from .nnet.checkpoint import load_checkpoint
    from .nnet.models import count_params, macs_per_frame

    model, _ = load_checkpoint(checkpoint)
    return count_params(model), macs_per_frame(model)


def gmm_size(gmm_file: Path) -> tuple[int | None, int | None]:
    """(parameters, MACs per frame) of a GMM pass's final.gmm.npz: means, variances and weights of
    its C Gaussians of dimension D, C·(2D + 1); a frame's log-likelihoods cost C·2D multiply-adds
    (x² and x against every Gaussian); (None, None) when the file is absent."""
    if not gmm_file.exists():
        return None, None
    import numpy as np

    c, d = np.load(gmm_file)["means"].shape
    return c * (2 * d + 1), c * 2 * d


GMM_PREFIX = "gmm_"   # exp/decode/gmm_<pass>_<set>: the decodes of GMM pass exp/<pass>


def gmm_systems(exp_dir: Path, sets: list[str]) -> list[str]:
    """The GMM decodes of an experiment (`gmm_<pass>`, sorted), from its decode dirs of `sets`."""
    found = {d.name[:-len(s) - 1] for s in sets
             for d in (Path(exp_dir) / "decode").glob(f"{GMM_PREFIX}*_{s}") if d.is_dir()}
    return sorted(found)


def gmm_rows(exp_dir: Path, sets: list[str]) -> list[SystemRow]:
    """A row per GMM pass decoded (`GMM-HMM <pass>`), its size from exp/<pass>/final.gmm.npz."""
    rows = []
    for name in gmm_systems(exp_dir, sets):
        gmm_pass = name[len(GMM_PREFIX):]
        row = SystemRow(f"GMM-HMM {gmm_pass}", role="gmm")
        row.params, row.macs_per_frame = gmm_size(Path(exp_dir) / gmm_pass / "final.gmm.npz")
        collect_decode(row, Path(exp_dir) / "decode", name, sets)
        rows.append(row)
    return rows


def _sum(values):
    return None if any(v is None for v in values) else sum(values)


CONTROL_NAMES = ("control", "student_hard")   # the control's dir and decode name; the old one second


def control_name(exp_dir: Path) -> str:
    """The hard-target control's name in an experiment dir (its dir exp/<name>, its decodes
    exp/decode/<name>_<set>): "control", or "student_hard" where an older run left only that."""
    exp_dir = Path(exp_dir)
    for name in CONTROL_NAMES:
        if (exp_dir / name).is_dir() or any((exp_dir / "decode").glob(f"{name}_*")):
            return name
    return CONTROL_NAMES[0]


def collect_rows(exp_dir: Path, num_members: int, sets: list[str]) -> list[SystemRow]:
    """Rows: each GMM pass decoded, the control, each member, ensemble, distilled student, int8
    export (when present)."""
    exp_dir = Path(exp_dir)
    decode_root = exp_dir / "decode"
    control = control_name(exp_dir)
    members = [f"m{i}" for i in range(1, num_members + 1)]
    sizes = {m: model_size(exp_dir / "members" / m / "final.pt") for m in members}
    for name in (control, "student_kd"):
        sizes[name] = model_size(exp_dir / name / "final.pt")
    sizes["ensemble"] = (_sum([sizes[m][0] for m in members]), _sum([sizes[m][1] for m in members]))
    sizes["export_int8"] = sizes["student_kd"]
    roles = {control: "control", **{m: "member" for m in members}, "ensemble": "ensemble",
             "student_kd": "student", "export_int8": "export"}
    labels = {control: "control (hard targets)", "ensemble": f"ensemble ({num_members} members)",
              "student_kd": "distilled student", "export_int8": "distilled, int8 export"}
    rows = gmm_rows(exp_dir, sets)
    for name, role in roles.items():
        if not any((decode_root / f"{name}_{s}").exists() for s in sets) and sizes[name][0] is None:
            continue
        row = SystemRow(labels.get(name, f"member {name[1:]}"), role=role)
        row.params, row.macs_per_frame = sizes[name]
        collect_decode(row, decode_root, name, sets)
        rows.append(row)
    return rows


def training_curves(exp_dir: Path, num_members: int) -> dict[str, list[dict]]:
    """Per-epoch records of every trained model's `train_log.jsonl`."""
    dirs = {f"m{i}": exp_dir / "members" / f"m{i}" for i in range(1, num_members + 1)}
    control = control_name(exp_dir)
    dirs.update({control: exp_dir / control, "student_kd": exp_dir / "student_kd"})
    curves = {}
    for name, d in dirs.items():
        recs = [r for r in read_train_log(d / "train_log.jsonl") if r.get("type", "epoch") == "epoch"]
        if recs:
            curves[name] = recs
    return curves


@dataclass
class ReportJob:
    """One report of an experiment dir: the options of `acoustic-kd report` by name."""

    exp: str
    num_members: int = 5
    sets: list[str] = field(default_factory=lambda: ["dev", "test"])
    title: str = "acoustic_kd results"
    notes: str = ""
    force: bool = False

    def stage(self) -> Stage:
        """The report stage: every system's checkpoint, training log and decode results in;
        RESULTS.md and plots/ out."""
        exp = Path(self.exp)
        models = [exp / "members" / f"m{i}" for i in range(1, self.num_members + 1)]
        models += [exp / control_name(exp), exp / "student_kd"]
        inputs = [d / n for d in models for n in ("final.pt", "train_log.jsonl")]
        inputs += [d / n for d in sorted((exp / "decode").glob("*_*")) if d.is_dir()
                   for n in ("wer", "cer", "frame_acc", "decode.json")]
        inputs += sorted(exp.glob("*/SEEDS.md"))
        inputs += [exp / n[len(GMM_PREFIX):] / "final.gmm.npz" for n in gmm_systems(exp, self.sets)]
        return Stage("report", exp, {"num_members": self.num_members, "sets": list(self.sets),
                                     "title": self.title, "notes": self.notes},
                     inputs=[p for p in inputs if p.exists()], code=__name__,
                     outputs=[exp / "RESULTS.md", exp / "plots"], resumable=False)

    def run(self) -> str:
        """Write RESULTS.md and the plots (or keep them when up to date); the table text."""
        exp = Path(self.exp)
        rows = collect_rows(exp, self.num_members, self.sets)
        if not rows:
            raise DataError(exp, "no trained or decoded systems found",
                            "run the recipe's training and decoding stages first")
        st = self.stage()
        if st.begin(self.force):
            table = write_results(rows, self.sets, exp, self.title, self.notes,
                                  training_curves(exp, self.num_members))
            st.finish()
            return table
        return table_with_notes(rows, self.sets)
