"""Hybrid DNN forced alignment: known paths reproduced, GMM-aligner output format, CLI, errors."""

from __future__ import annotations

import json

import kaldiio
import numpy as np
import pytest
import torch

from acoustic_kd.ali import read_alignments, read_num_pdfs
from acoustic_kd.cli import main
from acoustic_kd.errors import DataError
from acoustic_kd.gmm.align import compile_graphs, viterbi_batch, word_segments
from acoustic_kd.gmm.nnet_align import align_log_posteriors, run_nnet_align
from acoustic_kd.gmm.train import AlignConfig
from acoustic_kd.hmm import HmmModel
from acoustic_kd.lang import LangConfig, prepare_lang
from acoustic_kd.nnet.checkpoint import save_checkpoint
from acoustic_kd.nnet.models import ModelConfig, build_model

TEXTS = {"u1": "X Y", "u2": "Y X Y", "u3": "X", "u4": "Y Y X X"}
ALI_FILES = {"ali.scp", "ali.1.ark", "num_pdfs", "priors.txt", "failed.txt", "words.ctm",
             "summary.json"}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A lang dir (X = A B | B, Y = A; 2-state phones, 1-state SIL), its monophone HMM in an exp
    dir, and a random valid state path per utterance of TEXTS (from Viterbi on random scores)."""
    root = tmp_path_factory.mktemp("toy")
    (root / "lexicon.txt").write_text("X A B\nX B\nY A\n")
    lang = prepare_lang(TEXTS, str(root / "lexicon.txt"), root / "lang",
                        LangConfig(phone_states=2, sil_states=1, position_dependent=False,
                                   self_loop_prob=0.6, sil_prob=0.4))
    hmm = HmmModel.monophone(lang.phones, lang.topo)
    (root / "tri").mkdir()
    hmm.save(root / "tri" / "final.hmm.json")
    graphs, failed = compile_graphs(hmm, lang, TEXTS, sorted(TEXTS))
    assert not failed
    rng = np.random.default_rng(0)
    paths = {}
    for u, g in graphs.items():
        t = g.min_frames + int(rng.integers(5, 25))
        paths[u], _ = viterbi_batch([g], [rng.normal(size=(t, g.num_states))], np.inf, hmm)[0]
    return {"root": root, "lang": lang, "hmm": hmm, "graphs": graphs, "paths": paths}


def sharp_log_posts(pdfs: np.ndarray, num_pdfs: int, rest: float = 1e-30) -> np.ndarray:
    """Log-posteriors [T, P]: `rest` on every other pdf, nearly 1 on each frame's pdf (at acoustic
    scale 0.1 a margin of 0.1·69 nats per frame outweighs any transition or prior difference)."""
    out = np.full((len(pdfs), num_pdfs), np.log(rest), np.float32)
    out[np.arange(len(pdfs)), pdfs] = np.log1p(-rest * (num_pdfs - 1))
    return out


def onehot_model(num_pdfs: int, sharpness: float = 60.0):
    """A one-layer MLP (no context) whose logits are `sharpness` x its one-hot pdf input."""
    torch.manual_seed(0)
    m = build_model(ModelConfig(hidden=num_pdfs, layers=1, context=(0, 0)), num_pdfs, num_pdfs)
    lin1, lin2 = m.net[0], m.net[-1]
    with torch.no_grad():
        lin1.weight.copy_(torch.eye(num_pdfs))
        lin1.bias.zero_()
        lin2.weight.copy_(sharpness * torch.eye(num_pdfs))
        lin2.bias.zero_()
    return m.eval()


def write_ckpt(path, model, num_pdfs, priors=None):
    pri = np.full(num_pdfs, 1.0 / num_pdfs) if priors is None else priors
    save_checkpoint(path, model, {"cmvn": "none", "context": [0, 0], "priors": list(map(float, pri))})
    return path


def write_data(d, toy, extra_texts=None):
    """Data dir whose features are the one-hot pdfs of the toy paths (so onehot_model recovers them)."""
    d.mkdir()
    p = toy["hmm"].num_pdfs
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as w:
        for u, path in sorted(toy["paths"].items()):
            w[u] = np.eye(p, dtype=np.float32)[toy["graphs"][u].pdf[path]]
        w["short"] = np.eye(p, dtype=np.float32)[[0, 0]]
        w["oov"] = np.eye(p, dtype=np.float32)[[0] * 20]
    texts = {**TEXTS, "short": "X Y X", "oov": "X BANANA", **(extra_texts or {})}
    (d / "text").write_text("".join(f"{u} {t}\n" for u, t in sorted(texts.items())))
    return d


def test_sharp_posteriors_reproduce_known_alignment(toy):
    hmm, graphs, paths = toy["hmm"], toy["graphs"], toy["paths"]
    lp = {u: sharp_log_posts(graphs[u].pdf[s], hmm.num_pdfs) for u, s in paths.items()}
    # priors far from uniform must not move the path when the posteriors are this sharp
    priors = np.random.default_rng(1).dirichlet(np.ones(hmm.num_pdfs))
    for acwt in (0.1, 1.0):
        res = align_log_posteriors(hmm, lp, graphs, np.log(priors), AlignConfig(acoustic_scale=acwt))
        assert not res.failed and set(res.states) == set(paths)
        for u, s in paths.items():
            np.testing.assert_array_equal(res.pdfs()[u], graphs[u].pdf[s])
            assert res.word_times(u) == word_segments(graphs[u].word[s])
    with pytest.raises(ValueError, match="pdfs"):
        align_log_posteriors(hmm, {u: x[:, :-1] for u, x in lp.items()}, graphs,
                             np.zeros(hmm.num_pdfs))


def test_checkpoint_alignment_dir_matches_gmm_format_and_resumes(toy, tmp_path, one_torch_thread):
    hmm, root = toy["hmm"], toy["root"]
    data = write_data(tmp_path / "data", toy)
    good = write_ckpt(tmp_path / "m1.pt", onehot_model(hmm.num_pdfs), hmm.num_pdfs)
    other = write_ckpt(tmp_path / "m2.pt", onehot_model(hmm.num_pdfs, 40.0), hmm.num_pdfs)
    for ckpts, out in (([good], tmp_path / "one"), ([good, other], tmp_path / "ens")):
        summary = run_nnet_align(ckpts, root / "tri", root / "lang", [data], out)
        ali = out / "ali_data"
        assert {p.name for p in ali.iterdir()} == ALI_FILES
        alis = read_alignments(ali)
        assert read_num_pdfs(ali) == hmm.num_pdfs and set(alis) == set(TEXTS)
        for u, s in toy["paths"].items():
            np.testing.assert_array_equal(alis[u], toy["graphs"][u].pdf[s])
        failed = (ali / "failed.txt").read_text()
        assert "short too_short" in failed and "oov oov:BANANA" in failed
        assert summary["data"]["failed"] == 2 and summary["data"]["aligned"] == 4
        ctm = (ali / "words.ctm").read_text().splitlines()
        assert sum(len(t.split()) for t in TEXTS.values()) == len(ctm)
        assert json.loads((ali / "summary.json").read_text())["models"] == len(ckpts)
    # same settings: skipped; --force-like redo with another acoustic scale: rewritten
    again = run_nnet_align([good], root / "tri", root / "lang", [data], tmp_path / "one")
    assert again == {"data": {"skipped": True}}
    redo = run_nnet_align([good], root / "tri", root / "lang", [data], tmp_path / "one",
                          AlignConfig(acoustic_scale=1.0))
    assert redo["data"]["aligned"] == 4


def test_pdf_count_mismatch_names_checkpoint(toy, tmp_path):
    hmm, root = toy["hmm"], toy["root"]
    data = write_data(tmp_path / "data", toy)
    bad = write_ckpt(tmp_path / "other.pt", onehot_model(hmm.num_pdfs + 1), hmm.num_pdfs + 1)
    with pytest.raises(DataError, match=f"{bad}.*{hmm.num_pdfs + 1} pdfs but the HMM has {hmm.num_pdfs}"):
        run_nnet_align([bad], root / "tri", root / "lang", [data], tmp_path / "out")
    assert not (tmp_path / "out" / "ali_data").exists()


def test_cli_nnet_align_and_option_clash(toy, tmp_path, capsys, one_torch_thread):
    hmm, root = toy["hmm"], toy["root"]
    data = write_data(tmp_path / "data", toy)
    ckpt = write_ckpt(tmp_path / "m1.pt", onehot_model(hmm.num_pdfs), hmm.num_pdfs)
    base = ["align", "--nnet", str(ckpt), "--hmm-dir", str(root / "tri"), "--lang",
            str(root / "lang"), "--align-sets", str(data), "--out", str(tmp_path / "out")]
    assert main(base + ["--acoustic-scale", "0.3"]) == 0
    assert "ali_data: 4 aligned, 2 failed" in capsys.readouterr().out
    assert main(base + ["--acoustic-scale", "0.3"]) == 0
    assert "done already" in capsys.readouterr().out
    for extra, named in ((["--mono-iters", "3"], "--mono-iters"), (["--data", str(data)], "--data"),
                         (["--exp", str(tmp_path)], "--exp")):
        assert main(base + extra) == 1
        err = capsys.readouterr().err
        assert "cannot be combined" in err and named in err
    assert main(["align", "--data", str(data), "--lang", str(root / "lang"), "--exp", str(tmp_path),
                 "--hmm-dir", str(root / "tri")]) == 1
    assert "--hmm-dir only applies" in capsys.readouterr().err


def test_nnet_align_over_two_jobs_equals_one(toy, tmp_path, monkeypatch, one_torch_thread):
    """--nj 2: each worker job loads the networks and aligns its speakers; the merged alignment
    dir is the one-process one, byte for byte."""
    import os

    from conftest import REPO

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    hmm, root = toy["hmm"], toy["root"]
    data = write_data(tmp_path / "data", toy)
    ckpts = [write_ckpt(tmp_path / "m1.pt", onehot_model(hmm.num_pdfs), hmm.num_pdfs),
             write_ckpt(tmp_path / "m2.pt", onehot_model(hmm.num_pdfs, 40.0), hmm.num_pdfs)]
    one = run_nnet_align(ckpts, root / "tri", root / "lang", [data], tmp_path / "one")
    two = run_nnet_align(ckpts, root / "tri", root / "lang", [data], tmp_path / "two", nj=2)
    assert two["data"]["jobs"] == 2 and "jobs" not in one["data"]
    for k in ("aligned", "failed", "frames", "failed_reasons"):
        assert one["data"][k] == two["data"][k]
    a, b = tmp_path / "one" / "ali_data", tmp_path / "two" / "ali_data"
    for name in ("ali.1.ark", "num_pdfs", "priors.txt", "failed.txt", "words.ctm"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "two" / "log").glob("*.log")) == \
        ["nnet_data.1.log", "nnet_data.2.log"]
