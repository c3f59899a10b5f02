"""Typed configs: dataclasses loaded from YAML files and ``--params_override``, strictly.

Every config in the project is a tree of dataclasses. :func:`load` builds one from defaults, then a
YAML experiment file, then any number of overrides, each of which is either

* a YAML or JSON mapping as a string or file path (``"{train: {total_steps: 10}}"``), or
* the TPU detection models' flat form ``"a.b=1,c.d=x"`` (values parsed as YAML scalars/lists).

An unknown key or a value of the wrong type raises :class:`ConfigError` naming the full key path, so
a typo never silently trains the default. Values are range-checked by :func:`check` once every layer
is applied: a dataclass lists its bounds in a ``RANGES`` class variable (``{"total_steps": ">= 1",
"init_lr": "> 0", "gray_value": "0..255"}``; several conditions are joined by ","; a list field is
checked item by item), and a NaN or infinite float is refused in every field. :func:`save` writes the
effective config as YAML.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import yaml

from hierseg.errors import UsageError

T = TypeVar("T")


class ConfigError(UsageError):
    """An unknown key or a bad value in a config, with the key path named."""


def to_dict(cfg: Any) -> Any:
    """A dataclass tree -> plain dicts/lists (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{path}: {value!r} fits none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return merge(tp(), value, path)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if (origin is tuple or tp is tuple) else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, path): _coerce(v, vt, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    raise ConfigError(f"{path}: unsupported field type {tp}")


def merge(cfg: T, overrides: Mapping[str, Any], path: str = "") -> T:
    """Returns a copy of ``cfg`` with ``overrides`` (nested dicts) applied, type-checked."""
    if not dataclasses.is_dataclass(cfg):
        raise ConfigError(f"{path or 'config'}: not a config section")
    hints = typing.get_type_hints(type(cfg))
    names = {f.name for f in dataclasses.fields(cfg)}
    changes = {}
    for key, value in overrides.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key '{where}' (known here: {', '.join(sorted(names))})")
        tp = hints[key]
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            changes[key] = merge(current, value, where)
        else:
            changes[key] = _coerce(value, tp, where)
    return dataclasses.replace(cfg, **changes)


def parse_override(text: str) -> dict:
    """Parses one ``--params_override`` value into a nested dict.

    Accepts a path to a YAML/JSON file, a YAML/JSON mapping string, or ``a.b=1,c.d=[1,2]``.

    Raises:
      ConfigError: for a file that does not exist, text that is not YAML, or a key given both a value
        and sub-keys (``train=1,train.total_steps=2``).
    """
    text = text.strip()
    if not text:
        return {}
    if os.path.exists(text) or text.startswith("gs://"):
        return read_yaml(text)
    if "=" not in text and text.lower().endswith((".yaml", ".yml", ".json")):
        raise ConfigError(f"--params_override: file {text} not found")
    if text.startswith(("{", "[", "!")) or "\n" in text or ("=" not in text and ":" in text):
        loaded = _safe_load(text, "--params_override")
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"--params_override: expected a mapping, got {text!r}")
        return dict(loaded)
    out: dict = {}
    for item in _split_top_level(text):
        if "=" not in item:
            raise ConfigError(f"--params_override: '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        value = _safe_load(raw, f"--params_override: {key.strip()}") if raw.strip() else ""
        node = out
        parts = key.strip().split(".")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--params_override: '{'.'.join(parts[: i + 1])}' is given both a value and sub-keys")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"--params_override: '{key.strip()}' is given both a value and sub-keys")
        node[parts[-1]] = value
    return out


def _safe_load(text: str, where: str) -> Any:
    """yaml.safe_load with its errors (syntax, unknown tags) as one-line ConfigErrors."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML: {problem}{at}") from None


def _split_top_level(text: str) -> list[str]:
    """Splits on commas not inside brackets, so ``a=[1,2],b=3`` gives two items."""
    items, depth, cur = [], 0, []
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        items.append("".join(cur))
    return [i.strip() for i in items if i.strip()]


def read_yaml(path: str) -> dict:
    """A YAML/JSON file's top-level mapping (local or gs://).

    Raises:
      ConfigError: naming the file when it is missing, not YAML, or not a mapping.
    """
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise ConfigError(f"{path}: config file not found")
    with tf.io.gfile.GFile(path, "r") as f:
        loaded = _safe_load(f.read().lstrip("\ufeff"), path)
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top")
    return dict(loaded)


def load(
    cls: type[T],
    config_file: str | None = None,
    params_override: str | list[str] | None = None,
    section: str | None = None,
) -> T:
    """Defaults of ``cls`` <- ``config_file`` <- each override, in order.

    Args:
      section: when given, only this top-level key of the file/overrides applies to ``cls`` (so one
        experiment file can hold the sections of several tools); other top-level keys are ignored.
    """
    from hierseg.config.shipped import resolve_config_file

    cfg = cls()
    layers: list[tuple[str, dict]] = []
    if config_file:
        config_file = resolve_config_file(config_file)  # a shipped config by name works from any folder
        layers.append((config_file, read_yaml(config_file)))
    if isinstance(params_override, str):
        params_override = [params_override]
    for o in params_override or []:
        layers.append(("--params_override", parse_override(o)))
    for source, d in layers:
        if section is not None:
            d = d.get(section) or {}
        try:
            cfg = merge(cfg, d)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    return check(cfg)


def _condition_holds(value: float, cond: str) -> bool:
    cond = cond.strip()
    if ".." in cond:
        lo, hi = cond.split("..")
        return float(lo) <= value <= float(hi)
    for op, test in ((">=", float.__ge__), ("<=", float.__le__), (">", float.__gt__), ("<", float.__lt__)):
        if cond.startswith(op):
            return test(float(value), float(cond[len(op) :]))
    raise ValueError(f"bad range condition {cond!r}")


def _check_value(value: Any, rng: str | None, path: str) -> None:
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_value(v, rng, f"{path}[{i}]")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{path}: {value} is not a finite number")
    if rng and not all(_condition_holds(float(value), c) for c in rng.split(",")):
        raise ConfigError(f"{path}: {value} is out of range (must be {rng})")


def check(cfg: T, path: str = "") -> T:
    """Range-checks a config tree: each dataclass's ``RANGES`` bounds, and finite floats everywhere.

    Returns:
      ``cfg`` unchanged, so calls chain.
    Raises:
      ConfigError: naming the full key path, the value and the allowed range.
    """
    if not dataclasses.is_dataclass(cfg):
        return cfg
    ranges: dict[str, str] = getattr(type(cfg), "RANGES", {})
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        where = f"{path}.{f.name}" if path else f.name
        if dataclasses.is_dataclass(value):
            check(value, where)
        elif isinstance(value, dict):
            for k, v in value.items():
                check(v, f"{where}.{k}")
        else:
            _check_value(value, ranges.get(f.name), where)
    return cfg


def save(cfg: Any, path: str) -> None:
    """Writes the config as YAML, atomically (local or gs://)."""
    from hierseg import atomic_write

    atomic_write.write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
