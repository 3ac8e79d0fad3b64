"""Config values by declared type and range: every field declares one, YAML values and options are
converted where exact and refused otherwise, with one line naming the file, key, value and range."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import acoustic_kd
from acoustic_kd.cli import build_parser, main
from acoustic_kd.config import SECTIONS, load_config, load_yaml
from acoustic_kd.config_types import field_types, parse_range, split_type
from acoustic_kd.errors import ConfigError
from acoustic_kd.features.fbank import FbankConfig
from acoustic_kd.nnet.models import ModelConfig
from acoustic_kd.nnet.trainer import TrainConfig

PKG = Path(acoustic_kd.__file__).parent
KNOWN = {"TrainConfig", "ModelConfig", "AugmentConfig", "FbankConfig", "TuneConfig", "DecodeConfig",
         "LatticeConfig", "GraphConfig", "SoftTargetConfig", "DistillConfig", "SynthDigitsConfig",
         "LangConfig", "TreeConfig", "AlignConfig"}


def config_classes() -> list[type]:
    """Every dataclass named *Config defined in the package."""
    out = {}
    for info in pkgutil.walk_packages([str(PKG)], "acoustic_kd."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if name.endswith("Config") and dataclasses.is_dataclass(obj) and obj.__module__ == mod.__name__:
                out[name] = obj
    return list(out.values())


def test_every_config_field_declares_help_and_a_range_or_choices():
    classes = config_classes()
    assert KNOWN <= {c.__name__ for c in classes}
    missing = []
    for cls in classes:
        cls()   # the defaults pass their own checks
        for f in dataclasses.fields(cls):
            base, _, _ = split_type(field_types(cls)[f.name])
            if not f.metadata.get("help"):
                missing.append(f"{cls.__name__}.{f.name}: no help")
            if base in (int, float) and "range" not in f.metadata and "choices" not in f.metadata:
                missing.append(f"{cls.__name__}.{f.name}: a number without a declared range")
            if "range" in f.metadata:
                parse_range(f.metadata["range"])   # a malformed range fails here
    assert not missing, "\n".join(missing)


def test_every_numeric_command_line_option_is_range_checked():
    """No option of any command is a bare int/float: each takes a checked type."""
    bare = []

    def walk(parser: argparse.ArgumentParser, prog: str) -> None:
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, f"{prog} {name}")
            elif a.type in (int, float):
                bare.append(f"{prog} {a.option_strings}")
    walk(build_parser(), "acoustic-kd")
    assert not bare, bare


def test_every_section_a_step_reads_is_registered():
    read = set()
    for p in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("load_config", "train_plan",
                                                                         "planned_config") \
                    and len(node.args) >= 3 and isinstance(node.args[2], ast.Constant):
                read.add(node.args[2].value)
    assert read and read <= set(SECTIONS), read - set(SECTIONS)
    assert set(SECTIONS) - read == set(), "registered sections no step reads"


def _yaml(tmp_path, text: str) -> Path:
    p = tmp_path / "conf.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, key, value", [
    ("train: {lr: 1e-3}", "lr", 0.001),          # PyYAML reads 1e-3 as a string
    ("train: {lr: '2'}", "lr", 2.0),
    ("train: {epochs: 2.0}", "epochs", 2),
    ("train: {epochs: '3'}", "epochs", 3),
    ("train: {bf16: 'no'}", "bf16", False),
    ("train: {bf16: 'On'}", "bf16", True),
    ("train: {bf16: 1}", "bf16", True),
    ("train: {bf16: no}", "bf16", False),
    ("train: {data_seed: null}", "data_seed", None),
])
def test_yaml_values_are_converted_when_exact(tmp_path, text, key, value):
    cfg = load_config(TrainConfig, _yaml(tmp_path, text), "train")
    got = getattr(cfg, key)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text, expect", [
    ("train: {epochs: ten}", "train.epochs = 'ten': expected an integer >= 1"),
    ("train: {epochs: 1.7}", "train.epochs = 1.7: expected an integer >= 1"),
    ("train: {epochs: 0}", "train.epochs = 0: expected an integer >= 1"),
    ("train: {epochs: true}", "train.epochs = True: expected an integer"),
    ("train: {lr: -1}", "train.lr = -1: expected a number > 0"),
    ("train: {lr: .nan}", "train.lr = nan: expected a number > 0"),
    ("train: {lr: abc}", "train.lr = 'abc': expected a number > 0"),
    ("train: {bf16: 'maybe'}", "train.bf16 = 'maybe': expected true or false"),
    ("train: {bf16: 2}", "train.bf16 = 2: expected true or false"),
    ("train: {cmvn: speakers}", "train.cmvn = 'speakers': expected one of speaker, global, utterance"),
    ("train: {optimizer: 3}", "train.optimizer = 3: expected one of adamw, sgd"),
    ("train: {min_lr_ratio: 1.5}", "train.min_lr_ratio = 1.5: expected a number in [0, 1]"),
    ("train: {epoch: 3}", "unknown option(s) ['train.epoch'] (did you mean 'epochs'?)"),
])
def test_bad_yaml_values_name_file_key_value_and_range(tmp_path, text, expect):
    p = _yaml(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, p, "train")
    assert str(e.value).startswith(f"{p}: ") and expect in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text, expect", [
    ("model: {context: [10]}", "model.context must be two ints"),
    ("model: {context: 10}", "model.context = 10: expected a list of integers >= 0"),
    ("model: {context: [10, -1]}", "model.context = [10, -1]: expected a list of integers >= 0"),
    ("model: {context: [10, 2.5]}", "expected a list of integers >= 0"),
    ("model: {arch: rnn}", "model.arch = 'rnn': expected one of mlp, tdnn"),
])
def test_list_and_choice_fields(tmp_path, text, expect):
    with pytest.raises(ConfigError, match=re.escape(expect)):
        load_config(ModelConfig, _yaml(tmp_path, text), "model")
    assert load_config(ModelConfig, _yaml(tmp_path, "model: {context: ['5', 5.0]}"),
                       "model").context == (5, 5)


@pytest.mark.parametrize("text, expect", [
    ("trian: {epochs: 3}", "unknown section 'trian' (did you mean 'train'?); known sections: align,"),
    ("train: 5", "section 'train' must be a mapping of options, got int 5"),
    ("- train", "expected a mapping of sections, got list"),
    ("train: {epochs: [1,\n", "conf.yaml:2: not valid YAML"),
])
def test_bad_sections_and_files(tmp_path, text, expect):
    with pytest.raises(ConfigError, match=re.escape(expect)):
        load_yaml(_yaml(tmp_path, text))


def test_a_yaml_shared_by_several_steps_is_accepted(tmp_path):
    p = _yaml(tmp_path, "".join(f"{s}: {{}}\n" for s in SECTIONS))
    assert set(load_yaml(p)) == set(SECTIONS)
    assert load_config(TrainConfig, p, "train") == TrainConfig()


def test_fbank_limits_and_kaldi_conf(tmp_path):
    with pytest.raises(ConfigError, match="nyquist"):
        FbankConfig(low_freq=9000)
    with pytest.raises(ConfigError, match="too large"):
        FbankConfig(sample_rate=100)
    conf = tmp_path / "fbank.conf"
    conf.write_text("--num-mel-bins=23\n--frame-shift=0\n")
    with pytest.raises(ConfigError, match=r"fbank.conf:2: bad value for --frame-shift: '0' \(expected "
                                          r"a number > 0\)"):
        FbankConfig.from_kaldi_conf(conf)


def _cli(capsys, *argv) -> tuple[int, str]:
    try:
        rc = main(list(argv))
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err.strip()


@pytest.mark.parametrize("argv, expect", [
    (["features", "--data", "d", "--frame-shift-ms", "0"], "argument --frame-shift-ms: '0': expected a number > 0"),
    (["features", "--data", "d", "--sample-rate", "0"], "argument --sample-rate: '0': expected an integer >= 1"),
    (["features", "--data", "d", "--num-mel-bins", "0"], "argument --num-mel-bins: '0': expected an integer >= 3"),
    (["features", "--data", "d", "--nj", "0"], "argument --nj: '0': expected an integer >= 1"),
    (["train", "--train-data", "d", "--train-ali", "a", "--out", "o", "--batch-size", "0"],
     "argument --batch-size: '0': expected an integer >= 1"),
    (["train", "--train-data", "d", "--train-ali", "a", "--out", "o", "--lr", "-1"],
     "argument --lr: '-1': expected a number > 0"),
    (["train", "--train-data", "d", "--train-ali", "a", "--out", "o", "--epochs", "0"],
     "argument --epochs: '0': expected an integer >= 1"),
    (["train", "--train-data", "d", "--train-ali", "a", "--out", "o", "--bf16", "maybe"],
     "argument --bf16: 'maybe': expected true or false"),
    (["train", "--train-data", "d", "--train-ali", "a", "--out", "o", "--context", "3", "-1"],
     "argument --context: '-1': expected an integer >= 0"),
    (["ensemble", "--num-members", "0", "--out", "o", "--dev-data", "d", "--dev-ali", "a"],
     "argument --num-members: '0': expected an integer >= 1"),
    (["report", "--exp", "e", "--num-members", "0"], "argument --num-members: '0': expected an integer >= 1"),
    (["decode", "--graph", "g", "--data", "d", "--out", "o", "--acwts", "0.1", "0"],
     "argument --acwts: '0': expected a number > 0"),
    (["export", "--checkpoint", "c", "--graph", "g", "--out", "o", "--beam", "nan"],
     "argument --beam: 'nan': expected a number > 0"),
    (["transcribe", "--model", "m", "--threads", "-1"], "argument --threads: '-1': expected an integer >= 0"),
    (["data-dir", "speed-perturb", "a", "b", "--factor", "0", "--sample-rate", "8000"],
     "argument --factor: '0': expected a number > 0"),
    (["prepare", "yesno", "--out", "o", "--nj", "0"], "argument --nj: '0': expected an integer >= 1"),
    (["align", "--data", "d", "--lang", "l", "--exp", "e", "--tri-leaves", "0"],
     "argument --tri-leaves: '0': expected an integer >= 1"),
    (["soft-targets", "--members", "m", "--data", "d", "--out", "o", "--k", "0"],
     "argument --k: '0': expected an integer >= 1"),
])
def test_bad_options_exit_2_with_one_line(capsys, argv, expect):
    rc, err = _cli(capsys, *argv)
    assert rc == 2 and expect in err and len(err.splitlines()) == 1, err


def test_bad_yaml_through_a_command_exits_1_with_one_line(tmp_path, capsys):
    p = _yaml(tmp_path, "train:\n  epochs: ten\n")
    rc, err = _cli(capsys, "train", "--train-data", "d", "--train-ali", "a", "--out",
                   str(tmp_path / "o"), "--config", str(p))
    assert rc == 1 and err == f"acoustic-kd train: error: {p}: train.epochs = 'ten': expected an " \
                              "integer >= 1"
    p = _yaml(tmp_path, "trian:\n  epochs: 3\n")
    rc, err = _cli(capsys, "distill", "--train-data", "d", "--out", str(tmp_path / "o"),
                   "--student-config", str(p))
    assert rc == 1 and "unknown section 'trian'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def _section_classes() -> dict[str, type]:
    from acoustic_kd.decode.decoder import DecodeConfig
    from acoustic_kd.decode.graph import GraphConfig
    from acoustic_kd.decode.lattice import LatticeConfig
    from acoustic_kd.decode.tune import TuneConfig
    from acoustic_kd.distill.soft_targets import SoftTargetConfig
    from acoustic_kd.distill.train import DistillConfig
    from acoustic_kd.gmm.train import AlignConfig
    from acoustic_kd.lang.langdir import LangConfig
    from acoustic_kd.nnet.augment import AugmentConfig

    return {"features": FbankConfig, "lang": LangConfig, "align": AlignConfig, "model": ModelConfig,
            "train": TrainConfig, "augment": AugmentConfig, "student": ModelConfig,
            "distill": DistillConfig, "soft_targets": SoftTargetConfig, "mkgraph": GraphConfig,
            "decode": DecodeConfig, "tune": TuneConfig, "lattice": LatticeConfig}


@pytest.mark.parametrize("path", sorted((PKG.parent / "recipes").glob("*/conf/*.yaml")),
                         ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_recipe_configs_load_and_repeat_no_default(path):
    """Every recipe YAML builds every section it holds, and no line only repeats the package
    default (the fields the corpus plan sets, e.g. `train.epochs`, are overrides of the plan)."""
    from acoustic_kd.plan import MEMBER_PLAN, STUDENT_PLAN

    classes = _section_classes()
    assert set(classes) == set(SECTIONS)
    repeats = []
    for section, body in load_yaml(path).items():
        cls = classes[section]
        planned = set(MEMBER_PLAN) | set(STUDENT_PLAN) if section == "train" else set()
        auto = {k: getattr(cls(), k) for k, v in body.items() if v in (None, "auto")}   # run-time values
        cfg, default = load_config(cls, path, section, auto), load_config(cls, None, None)
        repeats += [f"{section}.{k}" for k in body
                    if k not in planned | set(auto) and getattr(cfg, k) == getattr(default, k)]
    assert not repeats, f"{path}: lines that only repeat a default: {repeats}"


def test_a_corpus_option_out_of_range_names_the_option(tmp_path, capsys):
    rc, err = _cli(capsys, "prepare", "synth_digits", "--out", str(tmp_path / "o"), "--opt", "rate_min=50")
    assert rc == 1 and err == "acoustic-kd prepare: error: prepare synth_digits --opt rate_min=50: " \
                              "expected an integer in [80, 450]"
