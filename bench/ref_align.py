"""Phone alignments of finished GMM passes against an independent reference phone alignment.

Usage: python bench/ref_align.py --data DATA_DIR --lang LANG_DIR --exp EXP_DIR --ref REF_FILE
           [--passes mono tri tri2] [--max-utts N] [--json OUT.json]
REF_FILE has lines `utt PHONE start_s end_s` (e.g. Mboshi's `reference_alignments.txt`, a
supervised forced alignment). Each pass re-aligns DATA_DIR with its final model and reports, over
the utterances whose non-silence phone sequence matches the reference (phone names compared
case-insensitively, a phone the reference lacks by its letters without diacritics; others are
counted as skipped):

- phone starts within 20 and 50 ms of the reference, overall and by boundary type (a phone that
  starts after silence or the utterance start vs after another phone), and the median |error|;
- the share of phones at the topology's minimum duration (one frame per HMM state);
- the mean share of an utterance's speech frames taken by its longest phone;
- per-phone median durations (ms), hypothesis vs reference;
- an acoustic check of both: where the onset of a fricative (`--landmark`, default `s`: the
  steepest rise of high-band energy averaged over its tokens) lies relative to the phone starts,
  in frames (0 = on the boundary); the reference's own lag tells whether its boundaries are offset.
The same duration statistics of the reference itself are printed for comparison.
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from collections import defaultdict
from pathlib import Path

import numpy as np

from acoustic_kd.gmm.align import align, compile_graphs
from acoustic_kd.gmm.diag_gmm import DiagGmm
from acoustic_kd.gmm.run import pass_features
from acoustic_kd.hmm import HmmModel
from acoustic_kd.lang import load_lang

SHIFT = 0.01


def read_reference(path: Path, silence: str = "SIL") -> dict[str, list[tuple[str, float, float]]]:
    """utt -> [(phone lower-cased, start s, end s)] of the non-silence phones, in time order."""
    out: dict[str, list] = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 4:
                raise SystemExit(f"{path}:{lineno}: expected `utt PHONE start end`, got {line!r}")
            if parts[1] != silence:
                out[parts[0]].append((parts[1].lower(), float(parts[2]), float(parts[3])))
    return {u: sorted(v, key=lambda r: r[1]) for u, v in out.items()}


def phone_segments(g, path: np.ndarray, phones: list[str]) -> list[tuple[str, int, int, int]]:
    """(phone, start frame, end frame, states) of each non-silence phone on a graph-state path:
    a phone starts where the path enters the first HMM state of a chain."""
    info, word = g.info[path], g.word[path]
    segs: list[list] = []
    for t in range(len(path)):
        new_state = t == 0 or path[t] != path[t - 1]
        if word[t] < 0:
            continue
        if new_state and info[t, 3] == 0:
            segs.append([phones[info[t, 1]], t, t + 1, 1])
        elif segs:
            segs[-1][2] = t + 1
            segs[-1][3] += int(new_state)
    return [tuple(s) for s in segs]


def folder(ref: dict):
    """Hypothesis phone -> the reference's name for it: itself when the reference has it, else its
    letters without diacritics (e.g. Mboshi's reference marks tone on some vowels only)."""
    names = {p for r in ref.values() for p, _, _ in r}

    def fold(p: str) -> str:
        if p in names:
            return p
        return "".join(c for c in unicodedata.normalize("NFD", p) if not unicodedata.combining(c))
    return fold


def stats(hyp: dict, ref: dict, min_frames: dict[str, int]) -> dict:
    """Agreement and duration statistics of hypothesis phone segments against the reference."""
    errs, kinds, at_min, longest, skipped, centred = [], [], [], [], 0, []
    dur_h, dur_r = defaultdict(list), defaultdict(list)
    fold = folder(ref)
    for u, segs in hyp.items():
        r = ref.get(u)
        if not r or [fold(s[0]) for s in segs] != [p for p, _, _ in r]:
            skipped += 1
            continue
        speech = sum(e - s for _, s, e, _ in segs)
        longest.append(max(e - s for _, s, e, _ in segs) / max(speech, 1))
        signed = [s * SHIFT - rs for (_, s, _, _), (_, rs, _) in zip(segs, r)]
        centred.extend(np.array(signed) - np.median(signed))
        for i, ((p, s, e, _), (_, rs, re_)) in enumerate(zip(segs, r)):
            errs.append(s * SHIFT - rs)
            after_sil = i == 0 or rs - r[i - 1][2] > 0.005
            kinds.append("after_sil" if after_sil else "after_phone")
            at_min.append(e - s <= min_frames.get(p, 3))
            dur_h[p].append((e - s) * SHIFT)
            dur_r[p].append(re_ - rs)
    signed, errs, kinds = np.array(errs), np.abs(np.array(errs)), np.array(kinds)
    centred = np.abs(np.array(centred))

    def within(mask, tol):
        return round(100 * float(np.mean(errs[mask] <= tol + 1e-9)), 1) if mask.any() else None

    every = np.ones(len(errs), bool)
    return {
        "utts": len(longest), "skipped_utts": skipped, "phones": int(len(errs)),
        "start_within_20ms": within(every, 0.02), "start_within_50ms": within(every, 0.05),
        "median_abs_err_ms": round(1000 * float(np.median(errs)), 1) if len(errs) else None,
        "median_signed_err_ms": round(1000 * float(np.median(signed)), 1) if len(errs) else None,
        # each utterance's median signed error removed first: robust to a per-utterance time
        # offset between the two alignments (the boundaries' relative placement only)
        "offset_removed_within_20ms": round(100 * float(np.mean(centred <= 0.02 + 1e-9)), 1)
        if len(centred) else None,
        "offset_removed_within_50ms": round(100 * float(np.mean(centred <= 0.05 + 1e-9)), 1)
        if len(centred) else None,
        "by_type": {k: {"phones": int((kinds == k).sum()), "within_20ms": within(kinds == k, 0.02),
                        "within_50ms": within(kinds == k, 0.05)} for k in ("after_sil", "after_phone")},
        "at_min_duration": round(100 * float(np.mean(at_min)), 1) if at_min else None,
        "longest_phone_share": round(100 * float(np.mean(longest)), 1) if longest else None,
        "median_dur_ms": {p: [round(1000 * float(np.median(dur_h[p]))),
                              round(1000 * float(np.median(dur_r[p])))] for p in sorted(dur_h)},
    }


def landmark_lag(segs_by_utt: dict, fbank: dict, phone: str, window: int = 12) -> tuple[int, int]:
    """Where the acoustic onset of `phone` (a fricative: the steepest rise of the high-band minus
    low-band log-mel energy, averaged over its tokens) lies relative to the aligned starts ->
    (frames after the aligned start, tokens). 0 = the boundary sits on the acoustic landmark."""
    prof = []
    for u, starts in segs_by_utt.items():
        f = np.asarray(fbank[u], dtype=np.float64)
        band = f[:, -(f.shape[1] * 3 // 10):].mean(1) - f[:, :f.shape[1] * 4 // 10].mean(1)
        prof += [band[t - window:t + window + 1] for p, t in starts
                 if p == phone and window <= t < len(band) - window]
    if not prof:
        return 0, 0
    return int(np.argmax(np.diff(np.mean(prof, 0)))) - window + 1, len(prof)


def reference_stats(ref: dict, energy: dict | None = None) -> dict:
    """Duration statistics of the reference and, given per-utterance frame energies (utt ->
    log-energy [T] at 10 ms), where its first phone starts and its last one ends relative to the
    loud region (frames within 20 dB of the utterance's 95th percentile)."""
    durs = [e - s for r in ref.values() for _, s, e in r]
    longest = [max(e - s for _, s, e in r) / sum(e - s for _, s, e in r) for r in ref.values() if r]
    out = {"phones": len(durs), "at_30ms_or_less": round(100 * float(np.mean(np.array(durs) <= 0.0305)), 1),
           "median_dur_ms": round(1000 * float(np.median(durs))),
           "longest_phone_share": round(100 * float(np.mean(longest)), 1)}
    if energy:
        on, off = [], []
        for u, e in energy.items():
            if ref.get(u):
                loud = np.nonzero(e > np.percentile(e, 95) - 20)[0]
                on.append(ref[u][0][1] - loud[0] * SHIFT)
                off.append(ref[u][-1][2] - (loud[-1] + 1) * SHIFT)
        out["speech_onset_minus_energy_onset_ms_p10_p50_p90"] = [
            round(1000 * float(v)) for v in np.percentile(on, [10, 50, 90])]
        out["speech_end_minus_energy_end_ms_p10_p50_p90"] = [
            round(1000 * float(v)) for v in np.percentile(off, [10, 50, 90])]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--lang", required=True)
    ap.add_argument("--exp", required=True)
    ap.add_argument("--ref", required=True, help="reference `utt PHONE start end` file")
    ap.add_argument("--passes", "--stage", dest="passes", nargs="+", default=["mono", "tri"],
                    help="GMM passes to check (--stage: the older name)")
    ap.add_argument("--max-utts", type=int, default=0, help="first N utterances only (0 = all)")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--landmark", nargs="*", default=["s"], help="fricatives whose acoustic onset "
                    "is located relative to each alignment's phone starts (frames; 0 = on it)")
    args = ap.parse_args()
    lang = load_lang(args.lang)
    ref = read_reference(Path(args.ref))
    from acoustic_kd.features import FeatureSet
    fs = FeatureSet(Path(args.data), cmvn="none")
    # log-mel energy summed over bins: an increasing function of the frame's loudness
    energy = {u: np.log(np.exp(np.asarray(fs[u], dtype=np.float64)).sum(1)) * 10 / np.log(10)
              for u in fs.utts if u in ref}
    out = {"reference": reference_stats(ref, energy)}
    fold = folder(ref)
    ref_starts = {u: [(p, int(round(s / SHIFT))) for p, s, _ in r] for u, r in ref.items() if u in fs.utts}
    for ph in args.landmark:
        out["reference"][f"landmark_lag_frames_{ph}"] = landmark_lag(ref_starts, fs, fold(ph))[0]
    print(f"reference: {json.dumps(out['reference'])}")
    for gmm_pass in args.passes:
        d = Path(args.exp) / gmm_pass
        hmm, gmm = HmmModel.load(d / "final.hmm.json"), DiagGmm.load(d / "final.gmm.npz")
        feats, texts = pass_features(d, args.data)
        utts = sorted(u for u in feats if u in texts and u in ref)
        if args.max_utts:
            utts = utts[:args.max_utts]
        graphs, _ = compile_graphs(hmm, lang, texts, utts)
        trained = json.loads((d / "info.json").read_text())["config"]["align"]
        # as the pass aligned in training (passes before the self-loop scale existed used 1.0)
        res = align(hmm, gmm, feats, graphs, acoustic_scale=trained.get("acoustic_scale", 0.1),
                    boost_silence=trained.get("boost_silence", 1.0),
                    self_loop_scale=trained.get("self_loop_scale", 1.0))
        hyp = {u: phone_segments(res.graphs[u], p, hmm.phones) for u, p in res.states.items()}
        min_frames = {p: len(hmm.phone_hmm(p)) for p in hmm.phones[1:]}
        s = stats(hyp, ref, min_frames)
        starts = {u: [(fold(p), a) for p, a, _, _ in segs] for u, segs in hyp.items()}
        for ph in args.landmark:
            s[f"landmark_lag_frames_{ph}"] = landmark_lag(starts, fs, fold(ph))[0]
        s.update(pdfs=hmm.num_pdfs, gaussians=gmm.num_gauss, aligned=len(res.states),
                 failed=len(res.failed))
        out[gmm_pass] = s
        brief = {k: v for k, v in s.items() if k != "median_dur_ms"}
        print(f"{gmm_pass}: {json.dumps(brief)}")
        print(f"{gmm_pass}: median phone duration ms (hyp, ref): " + " ".join(
            f"{p}={h}/{r}" for p, (h, r) in s["median_dur_ms"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
