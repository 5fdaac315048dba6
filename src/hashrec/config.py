"""Hyperparameters: one frozen dataclass per model; defaults < preset file < `--set key=value`.

Values given as text (the command line) are parsed as Python literals and type-checked against
the field's declared type; unknown keys are refused with the list of valid ones (nanoGPT's
configurator, without `exec`).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from hashrec.errors import ConfigError

C = TypeVar("C")


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, t) for t in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, t) for v, t in zip(value, args))
    if tp is type(None):
        return value is None
    return isinstance(value, tp)


def _coerce(value: Any, tp: Any) -> Any:
    if isinstance(value, list) and typing.get_origin(tp) in (tuple, typing.Union, types.UnionType):
        value = tuple(value)
    if tp is float and isinstance(value, int):
        value = float(value)
    return value


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal if it parses as one, else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def make_config(cls: type[C], params: dict[str, Any], where: str = "") -> C:
    """Build the config dataclass `cls` from `params`, checking names and types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    prefix = f"{where}: " if where else ""
    out = {}
    for key, value in params.items():
        if key not in fields:
            raise ConfigError(f"{prefix}unknown option {key!r} for {cls.__qualname__}; valid: {', '.join(fields)}")
        value = _coerce(value, hints[key])
        if not _matches(value, hints[key]):
            raise ConfigError(f"{prefix}option {key!r} expects {_name(hints[key])}, got {value!r}")
        out[key] = value
    try:
        return cls(**out)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix}{e}") from None


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["delta=0.7", "windows=(1,2)"]` -> `{"delta": 0.7, "windows": (1, 2)}`."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set delta=0.8")
        out[key.strip()] = parse_value(value.strip())
    return out


def read_preset(path: str | Path) -> dict[str, Any]:
    """A JSON preset file: an object of option names to values."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the preset ({e}); it must be a JSON object") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{path}: a preset must be a JSON object of option names to values")
    return obj


def check(condition: bool, message: str) -> None:
    """Range checks in a config's __post_init__: raise a ConfigError that says what is allowed."""
    if not condition:
        raise ConfigError(message)
