"""The sizing rule: a corpus' hours, frames, phones, speakers and utterances -> the recipe's sizes.

`make_plan(hours, ...)` is pure and returns a `Plan`: the GMM tree leaves and Gaussians of the Δ
pass (tri) and of the LDA+MLLT pass (tri2, and tri3 by default), the monophone flat-start subset,
which GMM pass the networks train on, member and student epochs, the batch size and the decode beam
and max-active, each with its reason. The rule, piece by piece:

- Leaves and Gaussians of the last (LDA+MLLT) pass are piecewise log-linear in the training hours
  through four anchors: our Mboshi (2.37 h of training speech: 2500 / 15000, measured in
  recipes/mboshi/RESULTS.md), Kaldi's mini_librispeech (5 h: 2500 / 15000), WSJ si284 (81 h:
  4200 / 40000) and LibriSpeech (960 h: 7000 / 150000); constant below the first anchor and the
  last segment's slope above the last. The Δ pass gets 0.8x the leaves and 2/3 of the Gaussians
  (Kaldi's and Mboshi's 2000 / 10000 before 2500 / 15000).
  Caps for small corpora: at least 250 frames a leaf and 50 frames a Gaussian on average; at most
  3 states x phones^3 leaves (every triphone state seen) and at least the monophone states (the
  tree's roots). Caps apply only to what the data can say: without a lang dir no phone cap.
- Monophone subset: all utterances up to 4000 (Mboshi's 2684 measured with all), else the 2000
  shortest (Kaldi's wsj / librispeech train_mono).
- Networks train on tri2 (LDA+MLLT) alignments from 1 h up, on tri below (the tiny corpora's
  measured recipes; Mboshi: tri2 as good as tri and steadier across seeds).
- Epochs fall as the fourth root of the hours: members 6 at Mboshi's 2.37 h (cosine schedule,
  best dev epoch the last) and 10 at FSDD's 0.29 h (its measured recipe), clamped to 2..12;
  students 5 at Mboshi's 7.11 h (its training set and two speed-perturbed copies), clamped 1..10.
- Batch size: 256 frames below 1 h (yesno's measured 256: enough steps per epoch), 512 below
  100 h (Mboshi), 1024 from 100 h.
- Decode: from the pdfs of the model the networks use (`search_plan`, which `acoustic-kd decode`
  applies to its graph's pdf count): beam 15 below 1440 pdfs (the leaves of 1 h at 250 frames a
  leaf: tiny graphs, where the wide beam costs nothing; yesno's 15), else 13 (Kaldi's default;
  Mboshi: 0.14 WER points from beam 16 at a third of the search); max-active 3 tokens a pdf,
  within 2000..7000 (Kaldi's 7000 from 2500 leaves up).
- The dev subset for tuning decode scales: every N-th dev utterance, N = dev words // 500, at
  least 1 (Mboshi: 100 of 298 utterances, ~580 words, every optimum interior).

`corpus_stats(data_dir, lang_dir)` reads the numbers from a data dir; `planned_config` resolves a
step config where a planned field is absent, null or "auto" in the YAML and not on the command line.
"""

from __future__ import annotations

import dataclasses

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import load_config, load_yaml
from .errors import DataError
from .utils import atomic_write_json, get_logger, read_table

log = get_logger(__name__)

FRAME_SHIFT_S = 0.01
# (training hours, LDA+MLLT leaves, LDA+MLLT Gaussians): Mboshi measured, then Kaldi's recipes
ANCHORS = ((2.37, 2500, 15000), (5.0, 2500, 15000), (81.0, 4200, 40000), (960.0, 7000, 150000))
DELTA_LEAVES, DELTA_GAUSS = 0.8, 2 / 3        # the Δ pass against the LDA+MLLT pass
FRAMES_PER_LEAF, FRAMES_PER_GAUSS = 250, 50
STATES_PER_PHONE, SIL_STATES = 3, 5
MEMBER_REF = (2.37, 6)      # (hours, epochs): Mboshi's members
STUDENT_REF = (7.11, 5)     # (student hours, epochs): Mboshi's students on train + 2 speed copies
EPOCH_EXPONENT = 0.25       # ln(10/6) / ln(2.37/0.29) = 0.24: FSDD's 10 member epochs at 0.29 h
TUNE_WORDS = 500


@dataclass
class CorpusStats:
    """What the rule reads from a training set (phones: speech phones of the lang dir, or None)."""

    hours: float
    frames: int
    utts: int
    speakers: int
    phones: int | None = None
    source: str = ""


@dataclass
class Plan:
    """The sizes chosen for one corpus, each with its reason in `reasons`."""

    tri_leaves: int
    tri_gauss: int
    tri2_leaves: int
    tri2_gauss: int
    mono_subset: int
    gmm_stage: str
    member_epochs: int
    student_epochs: int
    batch_size: int
    beam: float
    max_active: int
    tune_dev_every: int | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)   # what the rule read: hours, frames, phones, ...

    def choices(self) -> dict:
        """The chosen values by name (no reasons, no inputs)."""
        return {k: v for k, v in asdict(self).items() if k not in ("reasons", "inputs")}


def _interp(hours: float, col: int) -> float:
    """The anchors' column `col` at `hours`: log-linear in hours between anchors."""
    pts = [(math.log(a[0]), math.log(a[col])) for a in ANCHORS]
    x = math.log(max(hours, 1e-6))
    if x <= pts[0][0]:
        return math.exp(pts[0][1])
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x <= x1:
            return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    (x0, y0), (x1, y1) = pts[-2], pts[-1]
    return math.exp(y1 + (y1 - y0) * (x - x1) / (x1 - x0))


def tree_sizes(hours: float, frames: int, phones: int | None) -> tuple[dict, dict]:
    """Leaves and Gaussians of the Δ and LDA+MLLT passes -> (values, reasons)."""
    leaves, gauss = _interp(hours, 1), _interp(hours, 2)
    why_l = f"{leaves:.0f} from the hours (anchors {', '.join(f'{a[0]:g} h: {a[1]}' for a in ANCHORS)})"
    why_g = f"{gauss:.0f} from the hours (anchors {', '.join(f'{a[0]:g} h: {a[2]}' for a in ANCHORS)})"
    if frames / FRAMES_PER_LEAF < leaves:
        leaves = frames / FRAMES_PER_LEAF
        why_l += f"; capped at {FRAMES_PER_LEAF} frames a leaf ({frames} frames)"
    if phones:
        most, least = STATES_PER_PHONE * phones ** 3, STATES_PER_PHONE * phones + SIL_STATES
        if leaves > most:
            leaves, why_l = most, why_l + f"; capped at {most} (3 x {phones} phones cubed)"
        if leaves < least:
            leaves, why_l = least, why_l + f"; raised to the {least} monophone states"
    if frames / FRAMES_PER_GAUSS < gauss:
        gauss = frames / FRAMES_PER_GAUSS
        why_g += f"; capped at {FRAMES_PER_GAUSS} frames a Gaussian"
    gauss = max(gauss, leaves)
    l2, g2 = int(round(leaves)), int(round(gauss))
    l1 = max(1, int(round(DELTA_LEAVES * l2)))
    values = {"tri2_leaves": l2, "tri2_gauss": g2, "tri_leaves": l1,
              "tri_gauss": max(l1, int(round(DELTA_GAUSS * g2)))}
    reasons = {"tri2_leaves": why_l, "tri2_gauss": why_g,
               "tri_leaves": f"{DELTA_LEAVES:g} x tri2_leaves (the Δ pass only bootstraps LDA+MLLT)",
               "tri_gauss": "2/3 x tri2_gauss (as Kaldi's and Mboshi's 10000 before 15000)"}
    return values, reasons


def epochs(hours: float, ref: tuple[float, int], lo: int, hi: int) -> int:
    """ref's epochs scaled by (ref hours / hours) ** EPOCH_EXPONENT, clamped to [lo, hi]."""
    e = ref[1] * (ref[0] / max(hours, 1e-6)) ** EPOCH_EXPONENT
    return int(min(hi, max(lo, round(e))))


SMALL_PDFS = round(3600 / FRAME_SHIFT_S / FRAMES_PER_LEAF)   # the leaves of 1 h at the frame cap


@dataclass
class SearchPlan:
    """The decode beam and max-active of a model with `num_pdfs` pdfs (`search_plan`)."""

    beam: float
    max_active: int
    reasons: dict[str, str] = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)


def search_plan(num_pdfs: int) -> SearchPlan:
    """Beam 15 below SMALL_PDFS pdfs (tiny graphs), else 13; max-active 3 a pdf in 2000..7000."""
    small = num_pdfs < SMALL_PDFS
    return SearchPlan(
        beam=15.0 if small else 13.0, max_active=int(min(7000, max(2000, 3 * num_pdfs))),
        reasons={"beam": (f"15 below {SMALL_PDFS} pdfs (tiny graphs), 13 above (Kaldi's; Mboshi "
                          f"measured): {num_pdfs} pdfs"),
                 "max_active": f"3 tokens a pdf, in 2000..7000 (Kaldi's 7000): {num_pdfs} pdfs"},
        inputs={"num_pdfs": num_pdfs})


def tune_dev_every(dev_words: int) -> int:
    """Tune decode scales on every N-th dev utterance: about TUNE_WORDS words, N >= 1."""
    return max(1, dev_words // TUNE_WORDS)


def make_plan(hours: float, frames: int | None = None, phones: int | None = None,
              speakers: int | None = None, utts: int | None = None,
              student_hours: float | None = None, dev_words: int | None = None) -> Plan:
    """The recipe's sizes for a training set of `hours` (frames default to hours at 10 ms;
    student_hours default: the set and two speed-perturbed copies, 3 x hours)."""
    if hours <= 0:
        raise DataError(None, f"the training set has {hours} hours of speech", "give a data dir with audio")
    frames = frames if frames is not None else int(hours * 3600 / FRAME_SHIFT_S)
    s_hours = student_hours if student_hours is not None else 3 * hours
    sizes, reasons = tree_sizes(hours, frames, phones)
    small = hours < 1.0
    batch = 256 if small else 512 if hours < 100 else 1024
    search = search_plan(sizes["tri_leaves" if small else "tri2_leaves"])
    many = utts is not None and utts > 4000
    plan = Plan(**sizes, mono_subset=2000 if many else 0, gmm_stage="tri" if small else "tri2",
                member_epochs=epochs(hours, MEMBER_REF, 2, 12),
                student_epochs=epochs(s_hours, STUDENT_REF, 1, 10), batch_size=batch,
                beam=search.beam, max_active=search.max_active,
                tune_dev_every=tune_dev_every(dev_words) if dev_words is not None else None)
    reasons.update({
        "mono_subset": (f"the 2000 shortest of {utts} utterances (Kaldi's train_mono subset)" if many
                        else f"all {utts if utts is not None else 'the'} utterances (<= 4000)"),
        "gmm_stage": "Δ triphones below 1 h" if small else "LDA+MLLT from 1 h up",
        "member_epochs": f"{MEMBER_REF[1]} at {MEMBER_REF[0]} h x (that / {hours:.3g} h)^{EPOCH_EXPONENT}, in 2..12",
        "student_epochs": (f"{STUDENT_REF[1]} at {STUDENT_REF[0]} h x (that / {s_hours:.3g} h of "
                           f"student data)^{EPOCH_EXPONENT}, in 1..10"),
        "batch_size": "256 below 1 h, 512 below 100 h, 1024 from 100 h",
        **search.reasons})
    if plan.tune_dev_every is not None:
        reasons["tune_dev_every"] = f"{dev_words} dev words // {TUNE_WORDS}, at least 1"
    if speakers is not None:
        reasons["speakers"] = (f"{speakers} speaker(s): no size depends on them yet (SAT, tri3, "
                               "measured no gain with Mboshi's 3)")
    plan.reasons = reasons
    plan.inputs = {"hours": round(hours, 4), "frames": frames, "phones": phones, "speakers": speakers,
                   "utts": utts, "student_hours": round(s_hours, 4), "dev_words": dev_words}
    return plan


def _seconds(data_dir: Path) -> tuple[float, int | None]:
    """(seconds of speech, frames or None) of a data dir: utt2num_frames, utt2dur, segments or
    the audio headers, the first that is there."""
    if (data_dir / "utt2num_frames").is_file():
        shift = FRAME_SHIFT_S
        if (data_dir / "fbank.json").is_file():
            import json

            shift = json.loads((data_dir / "fbank.json").read_text()).get("frame_shift_ms", 10.0) / 1000
        frames = sum(int(v) for _, v, _ in read_table(data_dir / "utt2num_frames"))
        return frames * shift, frames
    if (data_dir / "utt2dur").is_file():
        return sum(float(v) for _, v, _ in read_table(data_dir / "utt2dur")), None
    from .data.datadir import DataDir

    data = DataDir.load(data_dir, validate=False)
    if data.segments is not None and all(e >= 0 for _, _, e in data.segments.values()):
        return sum(e - s for _, s, e in data.segments.values()), None
    import soundfile as sf

    total = 0.0
    for rec, entry in data.wav_scp.items():
        if entry.rstrip().endswith("|"):
            raise DataError(data_dir / "wav.scp", f"the duration of piped recording {rec!r} is unknown",
                            "write utt2dur (acoustic-kd data-dir fix --check-audio) or compute features")
        path = Path(entry) if Path(entry).is_absolute() else (data.corpus_root or Path.cwd()) / entry
        info = sf.info(str(path))
        total += info.frames / info.samplerate
    return total, None


def speech_phones(lang_dir) -> int:
    """Speech phones of a lang dir's phones.txt: no <eps>, SIL, SPN, #n; word-position variants
    (_B _I _E _S) counted once."""
    path = Path(lang_dir) / "phones.txt"
    if not path.is_file():
        raise DataError(path, "no phones.txt in the lang dir", "run `acoustic-kd lang` first")
    names = {p.rsplit("_", 1)[0] if p[-2:] in ("_B", "_I", "_E", "_S") else p
             for p, _, _ in read_table(path)}
    return len({p for p in names if p not in ("<eps>", "SIL", "SPN") and not p.startswith("#")})


def corpus_stats(data_dir, lang_dir=None) -> CorpusStats:
    """Hours, frames, utterances and speakers of a data dir (+ speech phones of a lang dir)."""
    data_dir = Path(data_dir)
    if not (data_dir / "utt2spk").is_file():
        raise DataError(data_dir / "utt2spk", "not a data dir (no utt2spk)", "pass --data DIR of a data dir")
    u2s = {u: s for u, s, _ in read_table(data_dir / "utt2spk")}
    secs, frames = _seconds(data_dir)
    hours = secs / 3600
    return CorpusStats(hours=hours, frames=frames if frames is not None else int(secs / FRAME_SHIFT_S),
                       utts=len(u2s), speakers=len(set(u2s.values())),
                       phones=speech_phones(lang_dir) if lang_dir else None, source=str(data_dir))


def dev_words(dev_dir) -> int:
    """Word tokens of a data dir's transcripts."""
    return sum(len(t.split()) for _, t, _ in read_table(Path(dev_dir) / "text", min_fields=1))


def plan_for(data_dir, lang_dir=None, dev_dir=None, student_hours: float | None = None) -> Plan:
    """`make_plan` of a data dir (and lang dir, dev dir)."""
    s = corpus_stats(data_dir, lang_dir)
    return make_plan(s.hours, s.frames, s.phones, s.speakers, s.utts, student_hours,
                     dev_words(dev_dir) if dev_dir else None)


def planned_config(cls, yaml_path, section: str, overrides: dict, make, fields: dict[str, str]):
    """A step config, defaults < YAML < command line, where each field of `fields` (config field ->
    Plan attribute) absent, null or "auto" in the YAML and not given on the command line takes the
    value of the plan `make()` returns (called only then) -> (config, plan or None, {field: value})."""
    given = {k: v for k, v in (load_yaml(yaml_path).get(section) or {}).items()}
    given.update({k: v for k, v in overrides.items() if v is not None})
    todo = [f for f in fields if given.get(f, "auto") in (None, "auto")]
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.name in todo}
    load_config(cls, yaml_path, section, {**overrides, **defaults})   # bad values first, plan after
    plan = make() if todo else None
    chosen = {f: getattr(plan, fields[f]) for f in todo}
    return load_config(cls, yaml_path, section, {**overrides, **chosen}), plan, chosen


def record_plan(out_dir, plan: Plan | None, chosen: dict, fields: dict[str, str], what: str) -> None:
    """Log the planned values a stage takes and write them with their reasons to OUT/plan.json."""
    if not chosen:
        return
    rows = {f: {"value": v, "reason": plan.reasons.get(fields[f], "")} for f, v in chosen.items()}
    for f, r in rows.items():
        log.info("%s plan: %s = %s (%s)", what, f, r["value"], r["reason"])
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(out_dir) / "plan.json", {"what": what, "inputs": plan.inputs, "chosen": rows})


# config field -> Plan attribute, per step
ALIGN_PLAN = {"tri_leaves": "tri_leaves", "tri_gauss": "tri_gauss", "tri2_leaves": "tri2_leaves",
              "tri2_gauss": "tri2_gauss", "mono_subset": "mono_subset"}
MEMBER_PLAN = {"epochs": "member_epochs", "batch_size": "batch_size"}
STUDENT_PLAN = {"epochs": "student_epochs", "batch_size": "batch_size"}
SEARCH_PLAN = {"beam": "beam", "max_active": "max_active"}


def train_plan(cls, yaml_path, section: str, overrides: dict, data_dir, student: bool = False):
    """A network's training config with its epochs and batch size planned from its training data
    (a student's epochs from that data's own hours) -> (config, plan, chosen, fields)."""
    def make() -> Plan:
        s = corpus_stats(data_dir)
        return make_plan(s.hours, s.frames, speakers=s.speakers, utts=s.utts,
                         student_hours=s.hours if student else None)

    fields = STUDENT_PLAN if student else MEMBER_PLAN
    return (*planned_config(cls, yaml_path, section, overrides, make, fields), fields)
