"""Typed step configs: dataclass defaults < YAML file < command-line overrides.

Each step declares one dataclass (fields documented in its docstring / `help` metadata, with a
declared range or choices: acoustic_kd.config_types). A recipe YAML holds one section per step,
e.g. ``features: {num_mel_bins: 40}``; a section no step reads is an error (`SECTIONS`).
YAML is loaded with ``yaml.safe_load``: configuration never executes code.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from pathlib import Path

import yaml

from .config_types import FieldError, expected_text, field_arg_type, field_types, split_type
from .errors import ConfigError

# every section a step reads from a recipe YAML (one file may serve several steps)
SECTIONS = ("features", "lang", "align", "model", "train", "augment", "student", "distill",
            "soft_targets", "mkgraph", "decode", "tune", "lattice")


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def _did_you_mean(name: str, valid) -> str:
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def from_dict(cls, d: dict | None, where: str = "config", section: str | None = None):
    """Build `cls` from a dict, each value converted and checked against its field's type and
    range; an unknown key or a bad value is a ConfigError naming `where`, the key and the value."""
    d = dict(d or {})
    key = (lambda k: f"{section}.{k}") if section else (lambda k: k)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names, key=str)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {[key(k) for k in unknown]}"
                          f"{_did_you_mean(unknown[0], names)}; valid options of {cls.__name__}: "
                          f"{sorted(names)}")
    try:
        return cls(**d)
    except FieldError as e:
        raise ConfigError(f"{where}: {key(e.key)} = {e.value!r}: expected {e.expected}") from None
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def load_yaml(path: str | Path | None) -> dict:
    """A recipe YAML as {section: mapping}; an unknown section or a non-mapping is an error."""
    if not path:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    for name, body in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"{path}: unknown section '{name}'{_did_you_mean(name, SECTIONS)}; "
                              f"known sections: {', '.join(sorted(SECTIONS))}")
        if body is not None and not isinstance(body, dict):
            raise ConfigError(f"{path}: section '{name}' must be a mapping of options, "
                              f"got {type(body).__name__} {body!r}")
    return data


def load_config(cls, yaml_path=None, section: str | None = None, overrides: dict | None = None,
                base: dict | None = None):
    """Resolve a step config: defaults < `base` (a step's own defaults) < YAML (`section` of the
    file) < overrides (non-None values)."""
    data = load_yaml(yaml_path)
    if section is not None:
        data = data.get(section) or {}
    merged = {**(base or {}), **data}
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(cls, merged, str(yaml_path) if yaml_path else "config", section)


def add_config_args(parser: argparse.ArgumentParser, cls, prefix: str = "",
                    defaults: dict | None = None, planned=()) -> None:
    """Add one `--field-name` option per dataclass field (default None = keep YAML/default), typed
    and range-checked as the field; `defaults` overrides the defaults shown in the help; the fields
    in `planned` default to the corpus' plan (acoustic_kd.plan)."""
    hints = field_types(cls)
    group = parser.add_argument_group(f"{cls.__name__} options (override the YAML config)")
    for f in dataclasses.fields(cls):
        opt = "--" + prefix + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        default = (defaults or {}).get(f.name, default)
        if f.name in planned:
            default = "from the corpus: acoustic-kd plan"
        helptext = f"{f.metadata.get('help', '')} ({expected_text(cls, f.name)}; default: {default})"
        _, seq, _ = split_type(hints[f.name])
        group.add_argument(opt, dest=prefix + f.name, type=field_arg_type(cls, f.name), default=None,
                           nargs="+" if seq else None,
                           metavar="BOOL" if hints[f.name] is bool else None, help=helptext)


def overrides_from_args(args: argparse.Namespace, cls, prefix: str = "") -> dict:
    return {f.name: getattr(args, prefix + f.name, None) for f in dataclasses.fields(cls)}


def job_from_args(cls, args: argparse.Namespace, **extra):
    """A Job dataclass from the namespace values of its field names (`extra` given explicitly)."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in extra and hasattr(args, f.name)]
    return cls(**{n: getattr(args, n) for n in names}, **extra)
