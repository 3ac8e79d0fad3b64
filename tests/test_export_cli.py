"""`acoustic-kd export` and `acoustic-kd transcribe` end to end on the tone model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from test_export_helpers import SR, make_graph, make_hmm, tone_audio, tone_checkpoint

from acoustic_kd.data import resample
from acoustic_kd.cli import main
from acoustic_kd.export import load_exported


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    tone_checkpoint(d / "final.pt")
    make_graph(d / "graph", make_hmm(d / "final.hmm.json", 1))
    (d / "tune.json").write_text(json.dumps({"acwt": 0.8, "word_penalty": 0.5, "dev_wer": 1.0}))
    rc = main(["export", "--checkpoint", str(d / "final.pt"), "--graph", str(d / "graph"),
               "--out", str(d / "export"), "--acwt", str(d / "tune.json"), "--beam", "12"])
    assert rc == 0
    return d


def test_export_command_reads_tuning_and_skips_when_done(exported, capsys):
    meta = load_exported(exported / "export", "onnx").meta
    assert meta["decoding"]["acwt"] == 0.8 and meta["decoding"]["word_penalty"] == 0.5
    assert meta["decoding"]["beam"] == 12.0
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(exported / "final.pt"), "--graph",
                 str(exported / "graph"), "--out", str(exported / "export"), "--acwt",
                 str(exported / "tune.json"), "--beam", "12"]) == 0
    assert "already exported" in capsys.readouterr().out


def test_export_command_errors(exported, tmp_path, capsys):
    rc = main(["export", "--checkpoint", str(exported / "final.pt"), "--graph",
               str(exported / "graph"), "--out", str(tmp_path / "x"), "--acwt", "nope"])
    assert rc == 1 and "neither a number nor a file" in capsys.readouterr().err
    rc = main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--graph",
               str(exported / "graph"), "--out", str(tmp_path / "x")])
    assert rc == 1 and "checkpoint not found" in capsys.readouterr().err


def test_transcribe_files_and_wav_scp(exported, tmp_path, capsys):
    x, truth = tone_audio(["HIGH", "LOW", "HIGH"])
    sf.write(tmp_path / "a.wav", x, SR, subtype="PCM_16")
    sf.write(tmp_path / "b16k.wav", resample(x, SR, 16000), 16000, subtype="PCM_16")
    (tmp_path / "wav.scp").write_text(f"utt1 {tmp_path / 'a.wav'}\nutt2 b16k.wav\n")
    capsys.readouterr()
    assert main(["transcribe", "--model", str(exported / "export"), str(tmp_path / "a.wav"),
                 "--wav-scp", str(tmp_path / "wav.scp"), "--corpus-root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "a HIGH LOW HIGH", "utt1 HIGH LOW HIGH", "utt2 HIGH LOW HIGH"]
    for fmt in ("int8", "torchscript"):
        assert main(["transcribe", "--model", str(exported / "export"), "--format", fmt, "--json",
                     str(tmp_path / "b16k.wav")]) == 0
        rec = json.loads(capsys.readouterr().out)
        assert rec["utt"] == "b16k" and rec["text"] == "HIGH LOW HIGH"
        for w, (word, start, end) in zip(rec["words"], truth):
            assert w["word"] == word and abs(w["start"] - start) < 0.05 and abs(w["end"] - end) < 0.05


def test_transcribe_needs_input(exported, capsys):
    assert main(["transcribe", "--model", str(exported / "export")]) == 1
    assert "give audio files" in capsys.readouterr().err


def _data_dir(d, utts: dict[str, list[str]]) -> None:
    """A Kaldi data dir of tone utterances with fbank features (no CMVN stats file)."""
    from acoustic_kd.features import FbankConfig, compute_fbank
    from acoustic_kd.features.io import ArkWriter
    from acoustic_kd.utils import write_table

    d.mkdir()
    cfg = FbankConfig(sample_rate=SR)
    with ArkWriter(d / "feats.ark") as ark:
        for i, (utt, words) in enumerate(utts.items()):
            x, _ = tone_audio(words, seed=i)
            sf.write(d / f"{utt}.wav", x, SR, subtype="PCM_16")
            ark.write(utt, compute_fbank(x, SR, cfg))
    write_table(d / "feats.scp", ark.entries)
    write_table(d / "wav.scp", {u: str(d / f"{u}.wav") for u in utts})
    write_table(d / "text", {u: " ".join(w) for u, w in utts.items()})
    write_table(d / "utt2spk", {u: "spk1" for u in utts})
    write_table(d / "spk2utt", {"spk1": " ".join(sorted(utts))})
    (d / "fbank.json").write_text(json.dumps(cfg.to_dict()))


def test_transcribe_data_dir_and_export_with_global_cmvn(exported, tmp_path, capsys):
    from acoustic_kd.features import FeatureSet, compute_cmvn_stats
    from test_export_helpers import random_checkpoint

    utts = {"u1": ["LOW", "HIGH"], "u2": ["HIGH"]}
    _data_dir(tmp_path / "data", utts)
    capsys.readouterr()
    assert main(["transcribe", "--model", str(exported / "export"), "--data",
                 str(tmp_path / "data")]) == 0
    assert capsys.readouterr().out.splitlines() == ["u1 LOW HIGH", "u2 HIGH"]
    # a model trained with CMVN gets the data dir's global stats baked in
    hmm = make_hmm(tmp_path / "final.hmm.json", 3)
    make_graph(tmp_path / "graph", hmm)
    random_checkpoint(tmp_path / "final.pt", "mlp", hmm.num_pdfs)
    args = ["export", "--checkpoint", str(tmp_path / "final.pt"), "--graph", str(tmp_path / "graph"),
            "--out", str(tmp_path / "export")]
    assert main(args) == 1 and "--data" in capsys.readouterr().err   # no stats anywhere
    assert main(args + ["--data", str(tmp_path / "data")]) == 0
    fs = FeatureSet(tmp_path / "data", cmvn="none")
    want = compute_cmvn_stats([fs[u] for u in fs.utts])
    meta = load_exported(tmp_path / "export", "int8").meta
    np.testing.assert_allclose(meta["cmvn"]["stats"], want)
    assert meta["provenance"]["cmvn_data"] == str(tmp_path / "data")
    summary = json.loads((tmp_path / "export" / "export.json").read_text())
    assert summary["max_abs_diff_log_prob"]["onnx"] <= 1e-4


def test_transcribe_nbest_with_confidences(exported, tmp_path, capsys):
    x, _ = tone_audio(["LOW", "HIGH"])
    sf.write(tmp_path / "a.wav", x, SR, subtype="PCM_16")
    capsys.readouterr()
    assert main(["transcribe", "--model", str(exported / "export"), "--json", "--nbest", "3",
                 str(tmp_path / "a.wav")]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["text"] == "LOW HIGH" and rec["nbest"][0]["text"] == "LOW HIGH"
    assert 1 <= len(rec["nbest"]) <= 3
    assert sum(e["posterior"] for e in rec["nbest"]) == pytest.approx(1.0)
    assert [w["word"] for w in rec["nbest"][0]["words"]] == ["LOW", "HIGH"]
    assert len(rec["confidence"]) == 2 and all(0.0 < c <= 1.0 for c in rec["confidence"])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_chunked_forward_and_search_equal_whole_utterance(exported, fmt):
    """Long audio is forwarded and searched in chunks (each with the context frames the network
    needs at its edges): scores equal to one whole-utterance forward up to float32 rounding (the
    GEMM kernel a CPU picks can depend on the row count, so bits may differ), the same hypothesis.
    (The tone model looks at its centre frame only: test_export.py checks the chunks' context.)"""
    model = load_exported(exported / "export", fmt)
    x, truth = tone_audio(["HIGH", "LOW"] * 12, seed=3)
    feats = model.features(x, SR)
    whole = model.scores(feats)
    for chunk in (7, 50, len(feats) - 1, len(feats) + 10):
        np.testing.assert_allclose(np.concatenate(list(model.chunk_scores(feats, chunk))), whole,
                                   rtol=1e-5, atol=1e-5)
        hyp, ref = model.decode_features(feats, chunk).to_dict(), model.decoder.decode(whole).to_dict()
        assert hyp.pop("cost") == pytest.approx(ref.pop("cost"), rel=1e-6)
        assert hyp == ref   # words, times, finality
    assert model.decode_features(feats, 50).words == [w for w, _, _ in truth]


# ------------------------------------------------------------------ transcribe on bad input
@pytest.fixture
def logs(caplog):
    """The acoustic_kd log records of the test (the package logger does not propagate otherwise)."""
    import logging

    logging.getLogger("acoustic_kd").propagate = True
    yield caplog
    logging.getLogger("acoustic_kd").propagate = False


def _bad_batch(tmp_path) -> tuple[list[str], list[tuple[int, str]]]:
    """A wav.scp of 2 good recordings between 4 bad ones: (its lines, [(bad line, its message)])."""
    x, _ = tone_audio(["HIGH", "LOW"])
    sf.write(tmp_path / "good.wav", x, SR, subtype="PCM_16")
    nan = x.copy()
    nan[100:110] = np.nan
    sf.write(tmp_path / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR, subtype="PCM_16")
    lines = ["a good.wav", "b empty.wav", "c false |", "d nan.wav", "e missing.wav", "f good.wav"]
    bad = [(2, "zero-length audio (0 samples)"), (3, "command 'false' failed with exit code 1"),
           (4, "non-finite audio samples (NaN/inf)"), (5, "audio file does not exist")]
    return lines, bad


def test_transcribe_reports_each_bad_recording_and_goes_on(exported, tmp_path, capsys, logs):
    lines, bad = _bad_batch(tmp_path)
    (tmp_path / "wav.scp").write_text("".join(f"{ln}\n" for ln in lines))
    capsys.readouterr()
    rc = main(["transcribe", "--model", str(exported / "export"), "--wav-scp", str(tmp_path / "wav.scp"),
               "--corpus-root", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 1 and out.splitlines() == ["a HIGH LOW", "f HIGH LOW"]
    assert f"wav.scp: 4 of 6 recordings failed" in err and "Traceback" not in err
    errors = [r.getMessage() for r in logs.records if r.levelname == "ERROR"]
    assert len(errors) == 4
    for (line, message), logged in zip(bad, errors):
        assert logged.startswith(f"{tmp_path / 'wav.scp'}:{line}: ") and message in logged, logged
        assert f"(utterance {lines[line - 1][0]} skipped)" in logged
    # a NaN file named on the command line: the same message, the same exit status
    rc = main(["transcribe", "--model", str(exported / "export"), str(tmp_path / "nan.wav"),
               str(tmp_path / "good.wav")])
    assert rc == 1 and capsys.readouterr().out.splitlines() == ["good HIGH LOW"]
    assert "nan.wav: non-finite audio samples (NaN/inf)" in logs.records[-2].getMessage()


@pytest.mark.parametrize("scp,files,line,first", [
    ("u1 a.wav\nu2 a.wav\nu1 a.wav\n", [], 3, "wav.scp:1"),
    ("a a.wav\n", ["a.wav"], 1, "a.wav"),          # a file on the command line has id 'a' too
])
def test_transcribe_refuses_duplicate_ids_before_any_output(exported, tmp_path, capsys, scp, files,
                                                            line, first):
    x, _ = tone_audio(["LOW"])
    sf.write(tmp_path / "a.wav", x, SR, subtype="PCM_16")
    (tmp_path / "wav.scp").write_text(scp)
    capsys.readouterr()
    assert main(["transcribe", "--model", str(exported / "export"), *(str(tmp_path / f) for f in files),
                 "--wav-scp", str(tmp_path / "wav.scp"), "--corpus-root", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and f"wav.scp:{line}: duplicate id" in err and f"(first at {tmp_path / first}" in err


def test_transcribe_nbest_needs_json_and_a_positive_count(exported, tmp_path, capsys):
    x, _ = tone_audio(["LOW"])
    sf.write(tmp_path / "a.wav", x, SR, subtype="PCM_16")
    wav = str(tmp_path / "a.wav")
    assert main(["transcribe", "--model", str(exported / "export"), "--nbest", "3", wav]) == 1
    err = capsys.readouterr().err
    assert "--nbest 3: n-best lists are printed as JSON lines; give --json and N >= 1" in err
    with pytest.raises(SystemExit) as e:   # a negative count: the option's own range check
        main(["transcribe", "--model", str(exported / "export"), "--json", "--nbest", "-1", wav])
    assert e.value.code == 2 and "argument --nbest: '-1': expected an integer >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["onnx", "int8", "torchscript"])
@pytest.mark.parametrize("keep", [0.5, 0.0])   # truncated, empty
def test_transcribe_with_a_damaged_model_file_says_re_export(exported, tmp_path, capsys, fmt, keep):
    import shutil

    from acoustic_kd.export import FORMAT_FILES

    export = tmp_path / "export"
    shutil.copytree(exported / "export", export)
    model = export / FORMAT_FILES[fmt]
    data = model.read_bytes()
    model.write_bytes(data[:int(len(data) * keep)])
    x, _ = tone_audio(["LOW"])
    sf.write(tmp_path / "a.wav", x, SR, subtype="PCM_16")
    assert main(["transcribe", "--model", str(export), "--format", fmt, str(tmp_path / "a.wav")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"acoustic-kd transcribe: error: {model}: cannot load the model, the file "
                          "is truncated or corrupt") and f"re-export it: acoustic-kd export" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_export_and_transcribe_with_a_cross_word_graph(tmp_path, capsys):
    """A cross-word HMM whose HIGH tone (H) has its own pdf after silence (pdf 3; the network's
    pdf 2 never wins): mkgraph builds H∘C∘L∘G for it, the export carries the graph, the HMM's
    convention and the align lexicon, and `transcribe` finds the words and their times, which
    only a graph that puts the after-silence pdf on H can (the word-internal graph of the same
    tree cannot). Exporting with an HMM of the other convention is refused."""
    from test_decode_fakes import unigram_arpa, write_lang

    from acoustic_kd.decode.decoder import Graph, decode_utterance
    from acoustic_kd.decode.graph import build_graph
    from acoustic_kd.errors import DataError
    from acoustic_kd.export import export
    from acoustic_kd.hmm import HmmModel

    d = make_hmm(tmp_path / "mono.json", 1).to_dict()
    d["trees"]["H/0"] = [{"pos": -1, "set": ["SIL"], "yes": 1, "no": 2}, {"pdf": 3}, {"pdf": 2}]
    d["log_self"].append(d["log_self"][2])
    d["log_fwd"].append(d["log_fwd"][2])
    cw = HmmModel.from_dict({**d, "context": "cross-word"})
    cw.save(tmp_path / "final.hmm.json")
    HmmModel.from_dict(d).save(tmp_path / "wi.hmm.json")
    tone_checkpoint(tmp_path / "final.pt", layout=(0, 1, -1, 2))
    lang = write_lang(tmp_path / "lang", {"LOW": [["L"]], "HIGH": [["H"]]},
                      unigram_arpa(["HIGH", "LOW"]))
    build_graph(lang, cw, tmp_path / "graph", hmm_path=tmp_path / "final.hmm.json")
    g = Graph.load(tmp_path / "graph")
    assert "CLG" in g.info["sizes"] and g.align["pdf_key"][2] == g.align["pdf_key"][3]
    assert main(["export", "--checkpoint", str(tmp_path / "final.pt"), "--graph",
                 str(tmp_path / "graph"), "--out", str(tmp_path / "export"), "--acwt", "1"]) == 0
    em = load_exported(tmp_path / "export", "onnx")
    assert em.meta["hmm"]["context"] == "cross-word" and em.meta["hmm"]["align_lexicon"] == g.align
    x, truth = tone_audio(["HIGH", "LOW", "HIGH"])
    sf.write(tmp_path / "a.wav", x, SR, subtype="PCM_16")
    capsys.readouterr()
    assert main(["transcribe", "--model", str(tmp_path / "export"), "--json",
                 str(tmp_path / "a.wav")]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["text"] == "HIGH LOW HIGH"
    for w, (word, start, end) in zip(rec["words"], truth):
        assert w["word"] == word and abs(w["start"] - start) < 0.05 and abs(w["end"] - end) < 0.05
    wi = Graph.load(build_graph(lang, HmmModel.load(tmp_path / "wi.hmm.json"),
                                tmp_path / "wi").parent)
    scores = em.scores(em.features(x, SR))
    assert [wi.words[w] for w in decode_utterance(wi.fst, scores).word_ids] != rec["text"].split()
    with pytest.raises(DataError, match="built with cross-word context but the HMM is word-internal"):
        export(tmp_path / "final.pt", tmp_path / "x", tmp_path / "graph",
               hmm_json=tmp_path / "wi.hmm.json")
