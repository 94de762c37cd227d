"""Typed configs from defaults, a YAML file and ``--set key=value`` overrides."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pdeforge.errors import PdeforgeError

__all__ = ["build_config", "parse_overrides", "validation_message"]

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def parse_value(text: str) -> Any:
    """``--set`` values: JSON literals (numbers, true/false, null, lists), else plain strings."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs as a dict; dotted keys (``model_options.width=64``) nest.

    Parameters
    ----------
    pairs
        The values of the repeated ``--set`` option (``None`` when it was not given).

    Returns
    -------
    dict
        Nested mapping of keys to values parsed as JSON literals where they are ones.

    Raises
    ------
    PdeforgeError
        For a pair without ``=``, an empty key, or a key nested under a plain value.

    Examples
    --------
    >>> parse_overrides(["epochs=3", "model_options.width=64", "model=fno"])
    {'epochs': 3, 'model_options': {'width': 64}, 'model': 'fno'}
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise PdeforgeError(f"--set expects key=value, got '{pair}'")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise PdeforgeError(f"--set {key}: '{part}' is not a group of options")
        node[leaf] = parse_value(value.strip())
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, merging nested dicts key by key."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_yaml(path: Path | None) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (empty for no file or an empty one).

    Raises
    ------
    PdeforgeError
        If the file is missing, unreadable, not YAML, or not a mapping.
    """
    if path is None:
        return {}
    try:
        payload = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PdeforgeError(f"config file {path} does not exist") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or type(exc).__name__
        raise PdeforgeError(f"config file {path} is not readable YAML ({where}{problem})") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PdeforgeError(f"config file {path} is not readable YAML ({type(exc).__name__})") from None
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise PdeforgeError(f"config file {path} must hold a mapping of keys to values")
    return payload


def _group_of(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The config model that holds the key at ``loc`` (a nested group such as ``patching``), else ``model``."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field is not None else None
        groups = [t for t in (annotation, *typing.get_args(annotation))
                  if isinstance(t, type) and issubclass(t, BaseModel)]
        if not groups:
            return model
        model = groups[0]
    return model


def validation_message(exc: ValidationError, model: type[BaseModel], what: str) -> str:
    """One line for the first problem pydantic found.

    Parameters
    ----------
    exc
        The error raised by validating ``model``.
    model
        The pydantic model that was validated (an unknown key is answered with its field names).
    what
        What the config is of, as in :func:`build_config`.

    Returns
    -------
    str
        The message of a :class:`PdeforgeError`.
    """
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "config"
    if err["type"] == "extra_forbidden":
        known = ", ".join(sorted(_group_of(model, err["loc"][:-1]).model_fields))
        return f"unknown key '{key}' for {what} (known keys: {known})"
    value = err.get("input")
    shown = f" {value!r}" if not isinstance(value, dict) else ""
    return f"invalid value{shown} for '{key}' of {what}: {err['msg']}"


def build_config(model: type[ConfigT], what: str, *, file: Path | None = None,
                 overrides: dict[str, Any] | None = None, explicit: dict[str, Any] | None = None) -> ConfigT:
    """Validate a config from its sources: defaults < YAML file < ``--set`` < explicit command-line flags.

    Parameters
    ----------
    model
        The pydantic model of the config.
    what
        What the config is of, named in error messages (a problem's name, ``training``).
    file
        YAML file of values, if any.
    overrides
        Nested values from :func:`parse_overrides`.
    explicit
        Values of dedicated command-line flags; ``None`` means the flag was not given.

    Returns
    -------
    BaseModel
        An instance of ``model``.

    Raises
    ------
    PdeforgeError
        With one line for the first invalid value.
    """
    flags = {k: v for k, v in (explicit or {}).items() if v is not None}
    values = merge(merge(load_yaml(file), overrides or {}), flags)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise PdeforgeError(validation_message(exc, model, what)) from None
