"""The human summary (`README.txt`) of an export directory."""

from __future__ import annotations

from typing import Any

from .runtime import FORMAT_FILES

_HOW_TO = """\
How to run
  acoustic-kd transcribe --model {d} audio.wav ...            # prints "utt words"
  acoustic-kd transcribe --model {d} --format int8 --json --wav-scp wav.scp

  from acoustic_kd.export import load_exported                # no torch needed for onnx/int8
  m = load_exported("{d}", format="onnx")
  hyp = m.transcribe(samples, sample_rate)                    # float32 mono in [-1, 1]
  print(hyp.text, hyp.spans)

Runtime requirements (onnx, int8): onnxruntime, numpy, kaldi-native-fbank, kaldifst,
kaldi-decoder (+ scipy when the audio rate differs from the model's). TorchScript: torch.

Every model file is self-contained: input CMVN'd fbank feats [T, D] (name "feats"), output
log posteriors [T, P] ("log_probs"); the context window is spliced inside the network with edge
frames replicated. Fbank options, CMVN stats, priors, pdf->HMM map, acoustic scale, beam, the
decoding graph (HCLG, base64 OpenFst binary) and word list are stored as JSON strings in ONNX
metadata_props / TorchScript extra files under the keys: {keys}.
Decoding scores are acwt * (log_probs - log priors).
"""


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} kB"


def render_readme(summary: dict[str, Any], directory: str = ".") -> str:
    """README text from the `export.json` summary."""
    from .metadata import KEYS

    m, d, p = summary["model"], summary["decoding"], summary["provenance"]
    lines = ["acoustic_kd export", "=" * 18, "",
             f"Model: {(m.get('arch') or {}).get('arch', '?')} {m['params']:,} parameters, "
             f"{m['macs_per_frame']:,} MACs/frame, {m['input_dim']}-dim input, "
             f"{m['num_pdfs']} pdfs, context -{m['context'][0]}/+{m['context'][1]} frames",
             f"Decoding: acwt {d['acwt']}, beam {d['beam']}, word penalty {d['word_penalty']}, "
             f"graph {_kb(summary['graph_bytes'])}, {summary['num_words']} words",
             f"CMVN: {summary['cmvn']['mode']} (model trained with {summary['cmvn']['training_mode']})",
             "", "Files"]
    for fmt, name in FORMAT_FILES.items():
        lines.append(f"  {name:<18} {_kb(summary['files'][fmt]):>12}   max |d log p| vs checkpoint "
                     f"{summary['max_abs_diff_log_prob'][fmt]:.2e}")
    lines += ["", "Provenance",
              f"  checkpoint   {p['checkpoint']}", f"  sha256       {p['checkpoint_sha256']}",
              f"  teachers     {p.get('teachers')}",
              f"  T / alpha    {p.get('temperature')} / {p.get('alpha')}",
              f"  data         {p.get('data')}",
              f"  git          trained at {p.get('git_revision')}, exported at "
              f"{p.get('export_git_revision')} ({p.get('exported_at')})",
              f"  versions     {summary['version']}", "",
              _HOW_TO.format(d=directory, keys=", ".join(KEYS))]
    return "\n".join(lines)
