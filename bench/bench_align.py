"""Forced-alignment speed (x real time) and word/phone-boundary agreement, GMM and DNN aligners.

Usage: python bench/bench_align.py --data DATA_DIR --lang LANG_DIR --exp EXP_DIR [--passes mono tri]
           [--nnet exp/members/m1/final.pt] [--nnet exp/members/m*/final.pt ...] [--nnet-acwt 0.1 0.3]
Prints the batched GMM aligner's speed against the same Viterbi run one utterance at a time (the
reference), and, when DATA_DIR has `word_times.txt`, the share of word boundaries within 20 ms
(and of phone boundaries, with `phone_times.txt`). Each `--nnet` (one checkpoint, or several = an
ensemble) is a hybrid DNN aligner through the HMM of `--hmm-dir` (default EXP_DIR/tri), run at each
`--nnet-acwt`. For a synth_digits data dir (its `../local/config.json` present) every aligner also
gets a per-condition breakdown: near-clean / white / pink / babble noise, and SNR bins.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from acoustic_kd.errors import DataError
from acoustic_kd.gmm.align import align, compile_graphs, viterbi_batch, word_segments
from acoustic_kd.gmm.graph import NEG_INF, UttGraph
from acoustic_kd.gmm.diag_gmm import DiagGmm
from acoustic_kd.gmm.run import front_end, load_set
from acoustic_kd.gmm.train import AlignConfig
from acoustic_kd.hmm import HmmModel
from acoustic_kd.lang import load_lang
from acoustic_kd.utils import read_table


def phone_agreement(res, phone_refs: dict, word_refs: dict, tol: float, frame_shift: float,
                    utts=None) -> dict:
    """Phone-boundary agreement for words whose reference phone count equals the aligned one.

    Phones are segmented from the state path (a phone starts when its HMM state 0 is entered);
    espeak and ARPAbet phone sets differ (e.g. FOUR is `f 'o@` in espeak, F AO R here), so only
    words with the same number of phones on both sides are compared, boundary by boundary.
    `utts`: restrict to these utterances (default all aligned).
    """
    within = total = words = 0
    for utt, path in res.states.items():
        if utts is not None and utt not in utts:
            continue
        g = res.graphs[utt]
        info, word = g.info[path], g.word[path]
        starts = [t for t in range(len(path)) if word[t] >= 0 and info[t, 3] == 0
                  and (t == 0 or path[t] != path[t - 1])]
        phones_of: dict[int, list[tuple[float, float]]] = {}
        for i, t in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) and word[starts[i + 1]] == word[t] else None
            if end is None:  # last phone of the word: until the word's frames end
                end = t + int((word[t:] == word[t]).cumprod().sum())
            phones_of.setdefault(int(word[t]), []).append((t * frame_shift, end * frame_shift))
        refs = phone_refs.get(utt, [])
        for w, (_, ws, we) in enumerate(word_refs.get(utt, [])):
            ref = [(s, e) for _, s, e in refs if s >= ws - 1e-6 and e <= we + 1e-6]
            hyp = phones_of.get(w, [])
            if len(ref) != len(hyp) or not hyp:
                continue
            words += 1
            for (hs, he), (rs, re_) in zip(hyp, ref):
                within += int(abs(hs - rs) <= tol + 1e-9) + int(abs(he - re_) <= tol + 1e-9)
                total += 2
    return {"agreement": within / max(total, 1), "boundaries": total, "words": words}


def synth_conditions(data_dir: Path) -> dict[str, tuple[str, float]] | None:
    """utt -> (noise kind, SNR dB) of a synth_digits split, re-drawn from the corpus config
    (`<data>/../local/config.json`; the plans depend only on it), or None for other corpora."""
    cfg_path = data_dir.parent / "local" / "config.json"
    if not cfg_path.exists():
        return None
    from acoustic_kd.corpora.synth_digits import SynthDigitsConfig, _plan_split, split_speakers

    cfg = SynthDigitsConfig(**json.loads(cfg_path.read_text()))
    split = data_dir.name
    num = {"train": cfg.num_train, "dev": cfg.num_dev, "test": cfg.num_test}.get(split)
    if num is None:
        return None
    plans = _plan_split(cfg, split, split_speakers(cfg)[split], num)
    utts = {line.split()[0] for line in (data_dir / "utt2spk").read_text().splitlines() if line}
    if {p.utt for p in plans} != utts:
        print(f"warning: {data_dir} does not match its corpus config; no per-condition breakdown")
        return None
    return {p.utt: (p.noise, p.snr_db) for p in plans}


def condition_groups(cond: dict[str, tuple[str, float]]) -> dict[str, set[str]]:
    """Named utterance groups: near-clean (SNR >= 40 dB, as the corpus draws it), each noise kind
    among the noisy ones, and 5-dB SNR bins of the noisy ones."""
    groups: dict[str, set[str]] = {"near-clean": set(), "white": set(), "pink": set(), "babble": set()}
    bins = [(0, 5), (5, 10), (10, 15), (15, 20)]
    for lo, hi in bins:
        groups[f"snr{lo}-{hi}"] = set()
    for u, (kind, snr) in cond.items():
        if snr >= 40:
            groups["near-clean"].add(u)
            continue
        groups.setdefault(kind, set()).add(u)
        for lo, hi in bins:
            if lo <= snr < hi or (hi == bins[-1][1] and snr == hi):
                groups[f"snr{lo}-{hi}"].add(u)
    return groups


def word_segments_from_pdfs(ali: np.ndarray, g: UttGraph, hmm: HmmModel | None = None,
                            frame_shift: float = 0.01) -> list[tuple[int, float, float]] | None:
    """Recover word times from a pdf alignment [T] by aligning it to the transcript graph `g`.

    Frames may only occupy states whose pdf equals the frame's pdf; transitions break ties.
    Returns None when the pdf sequence does not fit the graph.
    """
    sc = np.where(g.pdf[None, :] == np.asarray(ali)[:, None], 0.0, NEG_INF)
    path, _ = viterbi_batch([g], [sc], beam=np.inf, hmm=hmm)[0]
    return None if path is None else word_segments(g.word[path], frame_shift)


def read_word_times(path) -> dict[str, list[tuple[str, float, float]]]:
    """Reference word timings `utt WORD start_s end_s` (one line per word, in order) -> per utt."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    for utt, rest, lineno in read_table(path):
        parts = rest.split()
        if len(parts) != 3:
            raise DataError(path, "expected `utt WORD start end`", "fix the timing file", lineno)
        out.setdefault(utt, []).append((parts[0], float(parts[1]), float(parts[2])))
    return out


def boundary_errors(pdfs, hmm, lang, texts, refs, frame_shift) -> tuple[list[tuple], int]:
    """Signed errors (hyp - ref, s) of every word boundary -> ([(utt, type, following word,
    error)], utterances skipped). type: start/sil (word start after a pause or the utterance start),
    start/word (after another word), end/word, end/sil; `following word` names the word after a
    word-to-word junction. Utterances whose word count differs from the reference are skipped
    (`word_segments_from_pdfs` gives None or another count)."""
    out, skipped = [], 0
    graphs, _ = compile_graphs(hmm, lang, texts, [u for u in pdfs if u in refs])
    for u, g in graphs.items():
        segs, ref = word_segments_from_pdfs(pdfs[u], g, hmm, frame_shift), refs[u]
        if segs is None or len(segs) != len(ref):
            skipped += 1
            continue
        for i, ((_, s, e), (_, rs, re_)) in enumerate(zip(segs, ref)):
            joined_before = i > 0 and rs - ref[i - 1][2] < 0.005
            joined_after = i + 1 < len(ref) and ref[i + 1][1] - re_ < 0.005
            out.append((u, "start/word" if joined_before else "start/sil", ref[i][0], s - rs))
            out.append((u, "end/word" if joined_after else "end/sil",
                        ref[i + 1][0] if joined_after else "", e - re_))
    return out, skipped


def within(errs, tol: float, offset: float = 0.0) -> float:
    """Share of signed errors [s] within `tol` once `offset` is added to the hypothesis."""
    return float(np.mean(np.abs(np.asarray(errs) + offset) <= tol + 1e-9)) if len(errs) else 0.0


def describe_errors(errs, tol: float) -> str:
    return f"{100 * within(errs, tol):.0f}% of {len(errs)}, median {1000 * np.median(errs):+.0f} ms"


def flat_start_edges(lang, texts, refs, feats, hmm, groups, frame_shift, tol=0.05) -> str:
    """Share of utterance edges (first word start, last word end) the energy flat start
    (gmm/flatstart.py) places within `tol` of the reference, per condition group."""
    from acoustic_kd.gmm.flatstart import loud_frames, vad_alignment

    graphs, _ = compile_graphs(hmm, lang, texts, [u for u in feats if u in refs])
    ok = {}
    for u, g in graphs.items():
        path = vad_alignment(g, len(feats[u]), loud_frames(feats[u][:, 0]))
        segs, ref = word_segments(g.word[path], frame_shift), refs[u]
        if len(segs) == len(ref):
            ok[u] = [abs(segs[0][1] - ref[0][1]) <= tol, abs(segs[-1][2] - ref[-1][2]) <= tol]
    cells = [f"all {100 * np.mean([x for v in ok.values() for x in v]):.0f}%"]
    for gname, us in (groups or {}).items():
        vals = [x for u in us if u in ok for x in ok[u]]
        if vals:
            cells.append(f"{gname} {100 * np.mean(vals):.0f}%")
    return ", ".join(cells)


def report(name, res, hmm, lang, texts, refs, phone_refs, groups, tol, frame_shift) -> None:
    """Boundary agreement lines of one aligner: overall (3 tolerance/offset variants), by boundary
    type, by the word after a junction, phones, and per condition group."""
    rows, skipped = boundary_errors(res.pdfs(), hmm, lang, texts, refs, frame_shift)
    errs = [e for *_, e in rows]
    used = len({u for u, *_ in rows})
    for t, offset in ((tol, 0.0), (tol, 0.0075), (0.05, 0.0)):
        print(f"{name}: word boundaries within {t * 1000:.0f} ms (offset {offset * 1000:.1f} ms): "
              f"{100 * within(errs, t, offset):.1f}% of {len(errs)} ({used} utts, {skipped} skipped)")
    kinds = ("start/sil", "start/word", "end/word", "end/sil")
    print(f"{name}: by boundary type (within {tol * 1000:.0f} ms, median hyp - ref): " + " | ".join(
        f"{k} {describe_errors([e for _, t, _, e in rows if t == k], tol)}" for k in kinds
        if any(t == k for _, t, _, _ in rows)))
    nxt = sorted({w for _, t, w, _ in rows if t == "end/word"})
    if nxt:
        print(f"{name}: word-to-word junctions by the following word: " + " | ".join(
            f"{w} {describe_errors([e for _, t, x, e in rows if t == 'end/word' and x == w], tol)}"
            for w in nxt))
    if phone_refs is not None:
        ph = phone_agreement(res, phone_refs, refs, tol, frame_shift)
        print(f"{name}: phone boundaries within {tol * 1000:.0f} ms: "
              f"{100 * ph['agreement']:.1f}% of {ph['boundaries']} "
              f"(words whose phone counts match: {ph['words']})")
    if not groups:
        return
    cells = []
    for g, us in groups.items():
        if not us:
            continue
        sub = [r for r in rows if r[0] in us]
        cell = f"{g} {100 * within([e for *_, e in sub], tol):.1f}%w/{len(sub)}"
        if phone_refs is not None:
            ph = phone_agreement(res, phone_refs, refs, tol, frame_shift, utts=us)
            cell += f" {100 * ph['agreement']:.1f}%p/{ph['boundaries']}"
        edges = [f"{1000 * np.median(es):+.0f}" for k in ("start/sil", "end/sil")
                 for es in [[e for _, t, _, e in sub if t == k]] if es]
        if len(edges) == 2:
            cell += f" sil-edge median start/end {edges[0]}/{edges[1]} ms"
        cells.append(f"{cell} ({len(us)} utts)")
    print(f"{name}: by condition (word %w / phone %p within {tol * 1000:.0f} ms, of boundaries): "
          + " | ".join(cells))


def bench_nnet(ckpts, args, lang, texts, refs, phone_refs, groups, frame_shift) -> None:
    """Hybrid DNN realignment with one checkpoint or an ensemble, at each --nnet-acwt."""
    import torch

    from acoustic_kd.decode.decoder import nnet_log_posteriors
    from acoustic_kd.gmm.nnet_align import align_log_posteriors, load_models, log_priors_of
    from acoustic_kd.model_meta import CheckpointMeta

    torch.set_num_threads(args.threads)
    hmm_dir = Path(args.hmm_dir or Path(args.exp) / "tri")
    hmm = HmmModel.load(hmm_dir / "final.hmm.json")
    models, meta = load_models(ckpts, hmm.num_pdfs)
    log_priors = log_priors_of(models, ckpts, hmm.num_pdfs)
    feats = CheckpointMeta.from_dict(meta).features(args.data)
    utts = sorted(u for u in feats.utts if u in texts)
    graphs, failed = compile_graphs(hmm, lang, texts, utts)
    t0 = time.time()
    lp = nnet_log_posteriors(models, feats, sorted(graphs), args.combine)
    fwd = time.time() - t0
    label = Path(ckpts[0]).parent.name if len(ckpts) == 1 else f"ensemble{len(ckpts)}"
    for acwt in args.nnet_acwt:
        cfg = AlignConfig(acoustic_scale=acwt)
        t1 = time.time()
        res = align_log_posteriors(hmm, lp, graphs, log_priors, cfg)
        vit = time.time() - t1
        audio = res.frames * frame_shift
        name = f"dnn-{label}@{acwt:g}"
        print(f"{name}: {len(ckpts)} checkpoint(s), {hmm.num_pdfs} pdfs ({hmm_dir}); aligned "
              f"{len(res.states)} utts ({audio:.0f} s audio), failed {len(res.failed) + len(failed)}; "
              f"{audio / (fwd + vit):.0f}x real time (forward {fwd:.1f} s, Viterbi {vit:.1f} s); "
              f"avg pseudo-loglike/frame {res.avg_loglike:.3f}")
        if refs:
            report(name, res, hmm, lang, texts, refs, phone_refs, groups, args.tol, frame_shift)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--lang", required=True)
    ap.add_argument("--exp", required=True)
    ap.add_argument("--passes", "--stage", dest="passes", nargs="*", default=["mono", "tri"],
                    help="GMM passes (none: DNN only; --stage: the older name)")
    ap.add_argument("--max-utts", type=int, default=300, help="utterances for the speed test")
    ap.add_argument("--tol", type=float, default=0.02, help="boundary tolerance (s)")
    ap.add_argument("--boost-silence", type=float, help="GMM: override the trained boost_silence")
    ap.add_argument("--acoustic-scale", type=float, default=0.1, help="GMM acoustic scale")
    ap.add_argument("--nnet", nargs="+", action="append", default=[], metavar="CKPT",
                    help="a DNN aligner: one checkpoint, or several (an ensemble); repeatable")
    ap.add_argument("--hmm-dir", help="HMM of the DNN aligners (default EXP/tri)")
    ap.add_argument("--nnet-acwt", type=float, nargs="+", default=[0.1], help="DNN acoustic scales")
    ap.add_argument("--combine", default="arithmetic", choices=["arithmetic", "geometric"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the DNN forward")
    args = ap.parse_args()
    lang = load_lang(args.lang)
    frame_shift = 0.01
    data = Path(args.data)
    refs_path = data / "word_times.txt"
    refs = read_word_times(refs_path) if refs_path.exists() else None
    phone_path = data / "phone_times.txt"
    phone_refs = read_word_times(phone_path) if refs and phone_path.exists() else None
    cond = synth_conditions(data) if refs else None
    groups = condition_groups(cond) if cond else None
    texts = None
    if args.passes:
        # the features must be made as in training (cepstra count, variance normalisation)
        trained = json.loads((Path(args.exp) / args.passes[0] / "info.json").read_text())["config"]["align"]
        feats, texts = load_set(args.data, **front_end(Path(args.exp) / args.passes[0]))
    for gmm_pass in args.passes:
        d = Path(args.exp) / gmm_pass
        hmm, gmm = HmmModel.load(d / "final.hmm.json"), DiagGmm.load(d / "final.gmm.npz")
        utts = sorted(u for u in feats if u in texts)
        graphs, failed = compile_graphs(hmm, lang, texts, utts)
        t0 = time.time()
        boost = args.boost_silence if args.boost_silence is not None else trained.get("boost_silence", 1.0)
        loop = trained.get("self_loop_scale", 1.0)  # passes trained before it existed used 1.0
        res = align(hmm, gmm, feats, graphs, acoustic_scale=args.acoustic_scale, boost_silence=boost,
                    self_loop_scale=loop)
        secs = time.time() - t0
        audio = res.frames * frame_shift
        sub = {u: graphs[u] for u in list(graphs)[:args.max_utts]}
        t1 = time.time()
        ref_res = align(hmm, gmm, feats, sub, batch_size=1, acoustic_scale=args.acoustic_scale,
                        boost_silence=boost, self_loop_scale=loop)
        ref_secs = time.time() - t1
        ref_audio = ref_res.frames * frame_shift
        print(f"{gmm_pass}: {hmm.num_pdfs} pdfs, {gmm.num_gauss} Gaussians; aligned {len(res.states)} "
              f"utts ({audio:.0f} s audio), failed {len(res.failed) + len(failed)}; "
              f"{audio / secs:.0f}x real time batched vs {ref_audio / ref_secs:.0f}x one at a time "
              f"(speed-up {audio / secs / (ref_audio / ref_secs):.1f}x); "
              f"avg loglike/frame {res.avg_loglike:.3f} (acoustic scale {args.acoustic_scale:g}, "
              f"boost_silence {boost:g})")
        if refs:
            report(gmm_pass, res, hmm, lang, texts, refs, phone_refs, groups, args.tol, frame_shift)
            if gmm_pass == "mono" and trained.get("flat_start_vad", True):
                print("flat start (energy VAD, before any training): utterance edges within 50 ms: "
                      + flat_start_edges(lang, texts, refs, feats, hmm, groups, frame_shift))
    if args.nnet:
        if texts is None:
            texts = {k: v for k, v, _ in read_table(data / "text", min_fields=1)}
        for ckpts in args.nnet:
            bench_nnet(ckpts, args, lang, texts, refs, phone_refs, groups, frame_shift)


if __name__ == "__main__":
    main()
