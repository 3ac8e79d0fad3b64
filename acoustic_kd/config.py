"""Typed step configs: dataclass defaults < YAML file < command-line overrides.

Each step declares one dataclass (fields documented in its docstring / `help` metadata).
A recipe YAML holds one section per step, e.g. ``features: {num_mel_bins: 40}``.
YAML is loaded with ``yaml.safe_load``: configuration never executes code.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path

import yaml

from .errors import ConfigError


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, d: dict | None, where: str = "config"):
    """Build `cls` from a dict, rejecting unknown keys with a clear message."""
    d = dict(d or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {unknown} for {cls.__name__}; "
                          f"valid options: {sorted(names)}")
    return cls(**d)


def load_yaml(path: str | Path | None) -> dict:
    if not path:
        return {}
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file does not exist")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def load_config(cls, yaml_path=None, section: str | None = None, overrides: dict | None = None):
    """Resolve a step config: defaults < YAML (`section` of the file) < overrides (non-None values)."""
    data = load_yaml(yaml_path)
    if section is not None:
        data = data.get(section, {}) or {}
    where = f"{yaml_path}[{section}]" if yaml_path else "config"
    merged = dict(data)
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(cls, merged, where)


def _arg_type(tp):
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _arg_type(args[0]) if args else str
    if origin in (list, tuple):
        return None
    return tp if tp in (int, float, str) else None


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def add_config_args(parser: argparse.ArgumentParser, cls, prefix: str = "", planned=()) -> None:
    """Add one `--field-name` option per dataclass field (default None = keep YAML/default);
    the fields in `planned` default to the corpus' plan (acoustic_kd.plan)."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} options (override the YAML config)")
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        opt = "--" + prefix + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        if f.name in planned:
            default = "from the corpus: acoustic-kd plan"
        helptext = f.metadata.get("help", "") + f" (default: {default})"
        if tp is bool or tp == "bool":
            group.add_argument(opt, dest=prefix + f.name, type=_parse_bool, default=None,
                               metavar="BOOL", help=helptext)
        elif typing.get_origin(tp) in (list, tuple):
            inner = typing.get_args(tp)[0] if typing.get_args(tp) else str
            group.add_argument(opt, dest=prefix + f.name, type=inner, nargs="+", default=None,
                               help=helptext)
        else:
            group.add_argument(opt, dest=prefix + f.name, type=_arg_type(tp) or str, default=None,
                               help=helptext)


def overrides_from_args(args: argparse.Namespace, cls, prefix: str = "") -> dict:
    return {f.name: getattr(args, prefix + f.name, None) for f in dataclasses.fields(cls)}
