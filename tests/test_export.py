"""Export: fp32 formats equal the checkpoint on speech (generated synth_digits audio), int8 is close, metadata round-trips,
the runtime decodes a known word sequence (also without torch), and its search agrees with the
decode stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from test_export_helpers import (SR, make_graph, make_hmm, random_checkpoint, tone_audio,
                                 tone_checkpoint)

from acoustic_kd.data import read_wav_entry, resample
from acoustic_kd.decode.decoder import decode_utterance
from acoustic_kd.errors import DataError
from acoustic_kd.export import FORMAT_FILES, export, load_exported
from acoustic_kd.export import metadata as md
from acoustic_kd.features import FbankConfig, apply_cmvn, compute_cmvn_stats, compute_fbank
from acoustic_kd.nnet.infer import log_posteriors

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tone(tmp_path_factory):
    """Export of the tone model (LOW = 500 Hz, HIGH = 2 kHz) with its 1-state-per-phone graph."""
    d = tmp_path_factory.mktemp("tone")
    tone_checkpoint(d / "final.pt")
    make_graph(d / "graph", make_hmm(d / "final.hmm.json", 1))
    export(d / "final.pt", d / "export", d / "graph", acwt=1.0)
    return d


@pytest.fixture(scope="module")
def speech(synth_corpus):
    """Four generated utterances (conftest's synth_corpus, 8 kHz): {utt: samples [N]}."""
    from acoustic_kd.utils import read_table

    rows = read_table(synth_corpus / "train" / "wav.scp")[:4]
    out = {}
    for utt, path, _ in rows:
        x, sr = read_wav_entry(path)
        assert sr == SR
        out[utt] = x
    return out


@pytest.fixture(scope="module", params=["mlp", "tdnn", "tdnnf"])
def random_export(request, tmp_path_factory, speech):
    """(export dir, torch model, global CMVN stats, raw fbank per utt) for a random tiny model."""
    d = tmp_path_factory.mktemp(request.param)
    hmm = make_hmm(d / "final.hmm.json", 3)
    make_graph(d / "graph", hmm)
    model = random_checkpoint(d / "final.pt", request.param, hmm.num_pdfs)
    cfg = FbankConfig(sample_rate=SR)
    raw = {u: compute_fbank(x, SR, cfg) for u, x in speech.items()}
    stats = compute_cmvn_stats(list(raw.values()))
    export(d / "final.pt", d / "export", d / "graph", cmvn_stats=stats, acwt=0.1,
           provenance={"data": "synth-test-subset"})
    return d / "export", model, stats, raw


def test_fp32_exports_equal_checkpoint_on_speech(random_export, speech):
    out, model, stats, raw = random_export
    worst = {f: 0.0 for f in FORMAT_FILES}
    agree = []
    for fmt in FORMAT_FILES:
        em = load_exported(out, fmt)
        for utt, x in speech.items():
            feats = apply_cmvn(raw[utt], stats, norm_vars=True)          # the training pipeline
            np.testing.assert_allclose(em.features(x, SR), feats, atol=1e-4)
            ref = log_posteriors(model, feats)
            got = em.log_posteriors(feats)
            assert got.shape == ref.shape
            worst[fmt] = max(worst[fmt], float(np.abs(got - ref).max()))
            if fmt == "int8":
                agree.append(float((got.argmax(1) == ref.argmax(1)).mean()))
        for t in (1, 2):  # shorter than the context: every window is edge-replicated
            short = apply_cmvn(raw[utt][:t], stats, norm_vars=True)
            np.testing.assert_allclose(em.log_posteriors(short), log_posteriors(model, short),
                                       atol=1e-4 if fmt != "int8" else 0.5)
    assert worst["onnx"] <= 1e-4 and worst["torchscript"] <= 1e-4, worst
    assert worst["int8"] < 0.5 and min(agree) > 0.8, (worst, agree)


def test_chunked_scores_equal_whole_forward(random_export):
    """Chunks forwarded with the model's context frames at their edges (±4/3 frames, random
    weights, speech) give the whole-utterance scores, up to float32 rounding: a missing or
    shifted context frame changes them far beyond the tolerance."""
    out, _, stats, raw = random_export
    for fmt in ("onnx", "torchscript"):
        em = load_exported(out, fmt)
        for feats in raw.values():
            feats = apply_cmvn(feats, stats, norm_vars=True)
            for chunk in (1, 5, 37):
                np.testing.assert_allclose(np.concatenate(list(em.chunk_scores(feats, chunk))),
                                           em.scores(feats), rtol=1e-5, atol=1e-5)


def test_resampled_input_matches_training_resampling(random_export, speech):
    out, _, stats, _ = random_export
    em = load_exported(out, "onnx")
    x = next(iter(speech.values()))
    x16 = resample(x, SR, 16000)
    want = apply_cmvn(compute_fbank(resample(x16, 16000, SR), SR, FbankConfig(sample_rate=SR)),
                      stats, norm_vars=True)
    np.testing.assert_allclose(em.features(x16, 16000), want, atol=1e-4)


def test_metadata_round_trip(random_export):
    out, model, stats, _ = random_export
    ckpt = torch.load(out.parent / "final.pt", weights_only=False)
    proto = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "frames"
    props = {p.key: p.value for p in proto.metadata_props}
    extra = dict.fromkeys(md.KEYS, "")
    torch.jit.load(str(out / "model.pt"), _extra_files=extra)
    int8 = {p.key: p.value for p in onnx.load(str(out / "model.int8.onnx")).metadata_props}
    assert set(props) == set(md.KEYS) and set(int8) == set(md.KEYS)
    for k in md.KEYS:
        assert extra[k].decode() == props[k] == int8[k], k
    meta = md.decode(props, "model.onnx")
    assert meta["features"]["fbank"] == FbankConfig(sample_rate=SR).to_dict()
    assert meta["features"]["waveform_scale"] == 32768.0
    np.testing.assert_allclose(meta["cmvn"]["stats"], stats)
    assert meta["cmvn"]["mode"] == "global" and meta["cmvn"]["norm_vars"] is True
    assert meta["model"]["context"] == list(model.config.context) == [4, 3]
    assert meta["model"]["num_pdfs"] == 9 and meta["model"]["output"] == "log_posteriors"
    np.testing.assert_allclose(meta["priors"], ckpt["meta"]["priors"])
    assert meta["hmm"]["pdf_to_phone"] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert meta["hmm"]["pdf_to_state"] == [0, 1, 2] * 3 and meta["hmm"]["silence_pdfs"] == [0, 1, 2]
    assert meta["decoding"]["acwt"] == 0.1 and meta["decoding"]["beam"] == 15.0
    prov = meta["provenance"]
    assert prov["teachers"] == ["exp/members/m1/final.pt", "exp/members/m2/final.pt"]
    assert (prov["temperature"], prov["alpha"], prov["data"]) == (2.0, 0.5, "synth-test-subset")
    assert prov["git_revision"] and prov["checkpoint_sha256"]
    assert meta["version"]["acoustic_kd"] and meta["words"] == [[0, "<eps>"], [1, "LOW"], [2, "HIGH"]]
    g = md.graph_from_base64(meta["graph"])
    import kaldifst

    orig = kaldifst.StdVectorFst.read(str(out.parent / "graph" / "HCLG.fst"))
    assert g.num_states == orig.num_states and g.to_str() == orig.to_str()
    summary = json.loads((out / "export.json").read_text())
    assert summary["max_abs_diff_log_prob"]["onnx"] <= 1e-4
    assert all(summary["files"][f] == (out / n).stat().st_size for f, n in FORMAT_FILES.items())
    assert "model.int8.onnx" in (out / "README.txt").read_text()


@pytest.mark.parametrize("fmt", list(FORMAT_FILES))
def test_transcribe_known_word_sequence(tone, fmt):
    x, truth = tone_audio(["LOW", "HIGH", "LOW", "LOW"])
    em = load_exported(tone / "export", fmt)
    for audio, rate in ((x, SR), (resample(x, SR, 16000), 16000)):
        hyp = em.transcribe(audio, rate)
        assert hyp.words == ["LOW", "HIGH", "LOW", "LOW"] and hyp.reached_final
        for span, (w, start, end) in zip(hyp.spans, truth):
            assert span.word == w
            assert abs(span.start - start) < 0.05 and abs(span.end - end) < 0.05, (span, start, end)


def test_search_agrees_with_decode_stage(tone, random_export, speech):
    # the tone model (clean known path) and a random model on generated speech (arbitrary paths)
    em = load_exported(tone / "export", "onnx")
    cases = [(em, em.features(tone_audio(["HIGH", "LOW"])[0], SR))]
    rem = load_exported(random_export[0], "onnx")
    cases += [(rem, rem.features(x, SR)) for x in speech.values()]
    for model, feats in cases:
        scores = (model.acwt * (model.log_posteriors(feats) - model.log_priors)).astype(np.float32)
        mine = model.decoder.decode(scores)
        theirs = decode_utterance(model.decoder.graph, scores, beam=15.0, max_active=7000,
                                  min_active=20, silence_pdfs=model.meta["hmm"]["silence_pdfs"])
        assert mine.words == [model.words[i] for i in theirs.word_ids]
        assert mine.words == model.decode_features(feats).words
        fs = model.frame_shift_s
        assert [(round(s.start / fs), round(s.end / fs)) for s in mine.spans] == \
            [tuple(f) for f in theirs.word_frames]


_NO_TORCH = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, Block())
import numpy as np
from acoustic_kd.export import load_exported
x = np.load(sys.argv[2])
out = {fmt: load_exported(sys.argv[1], fmt).transcribe(x, 8000).words for fmt in ("onnx", "int8")}
try:
    load_exported(sys.argv[1], "torchscript")
    out["torchscript"] = "loaded"
except ImportError:
    out["torchscript"] = "blocked"
out["torch_loaded"] = any(m == "torch" or m.startswith("torch.") for m in sys.modules)
print(json.dumps(out))
"""


def test_onnx_runtime_runs_without_torch(tone, tmp_path):
    x, _ = tone_audio(["HIGH", "LOW"])
    np.save(tmp_path / "x.npy", x)
    res = subprocess.run([sys.executable, "-c", _NO_TORCH, str(tone / "export"),
                          str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=60,
                         cwd=REPO)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"onnx": ["HIGH", "LOW"], "int8": ["HIGH", "LOW"], "torchscript": "blocked",
                   "torch_loaded": False}


def test_empty_and_short_audio(tone):
    em = load_exported(tone / "export", "onnx")
    for n in (0, 50):  # shorter than one 25 ms frame at 8 kHz
        hyp = em.transcribe(np.zeros(n, np.float32), SR)
        assert hyp.words == [] and hyp.num_frames == 0


def test_load_errors(tone, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_exported(tmp_path / "nothing", "onnx")
    with pytest.raises(DataError, match="unknown export format"):
        load_exported(tone / "export", "tflite")
    bare = onnx.load(str(tone / "export" / "model.onnx"))
    md_keys = [p.key for p in bare.metadata_props]
    del bare.metadata_props[:]
    (tmp_path / "bad").mkdir()
    onnx.save(bare, str(tmp_path / "bad" / "model.onnx"))
    with pytest.raises(DataError, match="not an acoustic_kd export"):
        load_exported(tmp_path / "bad", "onnx")
    assert md_keys == list(md.KEYS)


def test_export_of_a_determinized_graph_keeps_exact_word_times(tmp_path, speech):
    """mkgraph's determinized graph: the export carries its align lexicon, and the runtime's word
    spans are the decode stage's (pdf chains matched to the frames, not label positions)."""
    from test_decode_fakes import unigram_arpa, write_lang

    from acoustic_kd.decode.decoder import Graph
    from acoustic_kd.decode.graph import build_graph

    hmm = make_hmm(tmp_path / "final.hmm.json", 3)
    lang = write_lang(tmp_path / "lang", {w: [p] for w, p in
                                          {"LOW": ["L"], "HIGH": ["H"], "LOHI": ["L", "H"]}.items()},
                      unigram_arpa(["HIGH", "LOHI", "LOW"]))
    build_graph(lang, hmm, tmp_path / "graph", hmm_path=tmp_path / "final.hmm.json")
    g = Graph.load(tmp_path / "graph")
    assert g.info["determinized"] and g.align is not None
    random_checkpoint(tmp_path / "final.pt", "mlp", hmm.num_pdfs)
    stats = compute_cmvn_stats([compute_fbank(x, SR, FbankConfig(sample_rate=SR))
                                for x in speech.values()])
    export(tmp_path / "final.pt", tmp_path / "export", tmp_path / "graph", cmvn_stats=stats, acwt=0.1)
    em = load_exported(tmp_path / "export", "onnx")
    assert em.meta["hmm"]["align_lexicon"] == g.align
    for x in speech.values():
        feats = em.features(x, SR)
        scores = (em.acwt * (em.log_posteriors(feats) - em.log_priors)).astype(np.float32)
        mine = em.decoder.decode(scores)
        theirs = decode_utterance(g.fst, scores, beam=15.0, max_active=7000, min_active=20,
                                  align=g.align)
        assert mine.words == [g.words[i] for i in theirs.word_ids]
        fs = em.frame_shift_s
        assert [(round(s.start / fs), round(s.end / fs)) for s in mine.spans] == \
            [tuple(f) for f in theirs.word_frames]
