"""Declared types and ranges of config values, checked by one function for YAML, dicts and options.

Every config dataclass field states its range in its metadata, next to its help text:

    epochs: int = field(default=6, metadata={"help": "maximum epochs", "range": "[1, inf)"})
    optimizer: str = field(default="adamw", metadata={"help": "...", "choices": ("adamw", "sgd")})

A range is an interval: `[` / `]` include the bound, `(` / `)` exclude it, `inf` is no bound. A
list or tuple field's range applies to each element. A value is converted to the field's type
where that is exact (the YAML string "1e-3" for a float, 2.0 for an int, "no" for a bool) and is an
error otherwise (1.7 for an int, "ten", "maybe" for a bool); NaN is never in a range.
`check_fields(obj)` runs in each config's `__post_init__`; `arg_type(...)` gives argparse the same
check for command-line options (`positive_int` and friends for options that are no config field).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import re
import types
import typing

from .errors import ConfigError

BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True,
              "false": False, "no": False, "off": False, "0": False}
_INTERVAL = re.compile(r"^\s*([\[(])\s*(-?inf|[-+0-9.e]+)\s*,\s*(-?inf|[-+0-9.e]+)\s*([\])])\s*$")


class FieldError(ConfigError):
    """A config value outside its declared type or range (key, value and what is allowed)."""

    def __init__(self, key: str, value, expected: str, owner: str = ""):
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"{owner + '.' if owner else ''}{key} = {value!r}: expected {expected}")


@functools.lru_cache(maxsize=None)
def parse_range(spec: str) -> tuple[float, float, bool, bool]:
    """'[1, inf)' -> (low, high, low included, high included)."""
    m = _INTERVAL.match(spec)
    if not m:
        raise ValueError(f"bad range {spec!r}: write it as an interval, e.g. '[1, inf)' or '(0, 1]'")
    lo, hi = float(m.group(2)), float(m.group(3))
    return lo, hi, m.group(1) == "[", m.group(4) == "]"


def in_range(x: float, spec: str) -> bool:
    lo, hi, lo_in, hi_in = parse_range(spec)
    if math.isnan(x):
        return False
    return (lo <= x if lo_in else lo < x) and (x <= hi if hi_in else x < hi)


def describe(base: type, meta: dict) -> str:
    """What a value of type `base` under `meta`'s range/choices may be, e.g. 'an integer >= 1'."""
    if "choices" in meta:
        return "one of " + ", ".join(str(c) for c in meta["choices"])
    if base is bool:
        return "true or false (also yes/no, on/off, 1/0)"
    if base not in (int, float):
        return "a string"
    noun = "an integer" if base is int else "a number"
    if "range" not in meta:
        return noun
    lo, hi, lo_in, hi_in = parse_range(meta["range"])
    num = (lambda v: f"{int(v)}" if base is int or v == int(v) else f"{v:g}")
    if math.isinf(lo) and math.isinf(hi):
        return noun if base is int else "a finite number"
    if math.isinf(hi):
        return f"{noun} {'>=' if lo_in else '>'} {num(lo)}"
    if math.isinf(lo):
        return f"{noun} {'<=' if hi_in else '<'} {num(hi)}"
    return f"{noun} in {'[' if lo_in else '('}{num(lo)}, {num(hi)}{']' if hi_in else ')'}"


def split_type(tp) -> tuple[type, str, bool]:
    """(element type, 'list' | 'tuple' | '', None allowed) of a field annotation."""
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0]
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        inner = typing.get_args(tp)[0] if typing.get_args(tp) else str
        return inner, origin.__name__, optional
    return tp, "", optional


def convert_scalar(base: type, value, meta: dict):
    """`value` as `base` within `meta`'s range/choices; ValueError(expected) when it is not."""
    expected = describe(base, meta)
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
            return BOOL_WORDS[value.strip().lower()]
        raise ValueError(expected)
    if base in (int, float):
        value = _number(base, value, expected)
        if "range" in meta and not in_range(value, meta["range"]):
            raise ValueError(expected)
    elif base is str and not isinstance(value, str):
        raise ValueError(expected)
    if "choices" in meta and value not in meta["choices"]:
        raise ValueError(expected)
    return value


def _number(base: type, value, expected: str):
    if isinstance(value, bool):
        raise ValueError(expected)
    if isinstance(value, str):
        try:
            value = float(value.strip()) if base is float else _int_text(value.strip())
        except ValueError:
            raise ValueError(expected) from None
    if not isinstance(value, (int, float)):
        raise ValueError(expected)
    if base is float:
        return float(value)
    if isinstance(value, float) and not (math.isfinite(value) and value == int(value)):
        raise ValueError(expected)
    return int(value)


def _int_text(s: str):
    try:
        return int(s)
    except ValueError:
        return float(s)   # "1e3" is an integer; "1.7" is rejected by the caller


def convert(tp, value, meta: dict):
    """`value` checked and converted to the annotation `tp` (lists/tuples element-wise)."""
    base, seq, optional = split_type(tp)
    if value is None:
        if optional:
            return None
        raise ValueError(("a list of " if seq else "") + describe(base, meta))
    if seq:
        if not isinstance(value, (list, tuple)):
            raise ValueError("a list of " + _plural(describe(base, meta)))
        try:
            items = [convert_scalar(base, v, meta) for v in value]
        except ValueError as e:
            raise ValueError("a list of " + _plural(str(e))) from None
        return tuple(items) if seq == "tuple" else items
    return convert_scalar(base, value, meta)


def _plural(expected: str) -> str:
    return re.sub(r"^(an|a) (integer|number|string)", r"\2s", expected)


@functools.lru_cache(maxsize=None)
def field_types(cls) -> dict:
    return typing.get_type_hints(cls)


def check_fields(obj) -> None:
    """Convert and check every field of the config dataclass `obj` in place (FieldError on the
    first bad one; its key is the field name)."""
    hints = field_types(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        try:
            new = convert(hints[f.name], value, f.metadata)
        except ValueError as e:
            raise FieldError(f.name, value, str(e), type(obj).__name__) from None
        if new is not value:
            object.__setattr__(obj, f.name, new)


def expected_text(cls, name: str) -> str:
    """'an integer >= 1' for a field of `cls` (for help texts)."""
    f = cls.__dataclass_fields__[name]
    base, seq, optional = split_type(field_types(cls)[name])
    text = describe(base, f.metadata)
    return ("a list of " + _plural(text) if seq else text) + (" or null" if optional else "")


# ---------------------------------------------------------------- command-line options
def arg_type(base: type, range: str | None = None, choices=None, name: str = ""):
    """An argparse `type=` that converts one option string and checks it like a config value."""
    meta = {k: v for k, v in (("range", range), ("choices", choices)) if v is not None}

    def parse(text: str):
        try:
            return convert_scalar(base, text, meta)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {e}") from None

    parse.__name__ = name or f"{base.__name__} {range or ''}".strip()
    return parse


def field_arg_type(cls, name: str):
    """The argparse `type=` of a config field (of one element for list/tuple fields)."""
    f = cls.__dataclass_fields__[name]
    base, _, _ = split_type(field_types(cls)[name])
    return arg_type(base, f.metadata.get("range"), f.metadata.get("choices"), name)


positive_int = arg_type(int, "[1, inf)", name="positive_int")
nonnegative_int = arg_type(int, "[0, inf)", name="nonnegative_int")
positive_float = arg_type(float, "(0, inf)", name="positive_float")
finite_float = arg_type(float, "(-inf, inf)", name="finite_float")
