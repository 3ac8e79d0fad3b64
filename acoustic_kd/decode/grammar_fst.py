"""The grammar acceptor G from an ARPA n-gram model (any order).

G comes from `G.arpa` (e.g. a trigram or 4-gram estimated by `acoustic-kd lang` or given with
`--arpa`): one state per listed history, backoff arcs to the shorter history; for a determinized
graph the backoff arcs carry Kaldi's #0 (arpa2fst --disambig-symbol).
"""

from __future__ import annotations

import math
from pathlib import Path

import kaldifst as kf

from ..errors import DataError
from ..utils import get_logger

log = get_logger(__name__)

LN10 = math.log(10.0)


def arpa_to_fst(probs: list[dict], backoffs: dict, word_ids: dict[str, int],
                arpa_path: str | Path = "G.arpa", backoff_label: int = 0) -> kf.StdVectorFst:
    """Grammar acceptor G from ARPA n-grams (log10 probs per order, log10 backoff weights).

    One state per history listed in the ARPA file (plus the empty history); an n-gram `h w` is an arc
    from state(h) to the longest listed suffix of `h w`; `</s>` becomes a final weight; backoff arcs
    are arcs to the next-shorter history weighted by -backoff(h), with input `backoff_label`
    (0 = ε; Kaldi's #0 for a graph that is determinized) and output ε. Start = state(<s>).
    """
    order = len(probs)
    hists: dict[tuple[str, ...], int] = {}
    fst = kf.StdVectorFst()

    def state(h: tuple[str, ...]) -> int:
        if h not in hists:
            hists[h] = fst.add_state()
        return hists[h]

    state(())
    for n in range(order - 1):
        for ng in probs[n]:
            if ng[-1] != "</s>":
                state(ng)

    def longest_suffix(h: tuple[str, ...]) -> int:
        h = h[-(order - 1):] if order > 1 else ()
        while h not in hists:
            h = h[1:]
        return hists[h]

    unknown = sorted({w for pn in probs for ng in pn for w in ng
                      if w not in word_ids and w not in ("<s>", "</s>")})
    if unknown:
        raise DataError(arpa_path, f"words not in words.txt: {unknown[:10]}",
                        "rebuild G.arpa and words.txt together (acoustic-kd lang)")
    has_end = any(ng[-1] == "</s>" for pn in probs for ng in pn)
    for pn in probs:
        for ng, lp in pn.items():
            h, w = ng[:-1], ng[-1]
            if w == "<s>" or h not in hists:   # an n-gram whose history is not listed is unreachable
                continue
            if w == "</s>":
                fst.set_final(hists[h], -lp * LN10)
            else:
                fst.add_arc(hists[h], kf.StdArc(word_ids[w], word_ids[w], -lp * LN10,
                                                longest_suffix(ng)))
    for h, s in list(hists.items()):
        if h:
            fst.add_arc(s, kf.StdArc(backoff_label, 0, -backoffs.get(h, 0.0) * LN10,
                                     longest_suffix(h[1:])))
    if not has_end:
        log.warning("%s has no </s>: any word sequence may end the utterance", arpa_path)
        fst.set_final(hists[()], 0.0)
    fst.start = hists.get(("<s>",), hists[()])
    return fst
