"""Generic config machinery: dataclass defaults -> YAML file -> command-line ``key.sub=value`` overrides.

Each subsystem defines one ``@dataclass`` config next to its code (a docstring under every field, validation in
``__post_init__``) and a top-level config composes them. This module turns such a class into a validated instance::

    cfg = load_config(PretrainConfig, "train/configs/demo.yaml", ["optim.lr=3e-4", "data.langs=[en, ru]"])
    dump_config(cfg, run_dir)  # run_dir/config.yaml; load_config(PretrainConfig, that_path) == cfg

Merging works on nested dicts (one per dataclass section) so every error can name the dotted key and the source of
the value; the dataclasses are built once at the end, innermost first, so each ``__post_init__`` sees final values.
Values are coerced from the annotations strictly (``1`` is not a bool, ``no`` is not a str) with two conveniences:
ints are accepted for floats, and numeric strings for numbers, because YAML 1.1 reads ``1e-4`` (no dot) as a string.

Merge semantics: a mapping given for a section merges into it (``null`` for a non-optional section changes nothing,
so an empty ``data:`` block in YAML is harmless); every other value replaces the old one, except that dotted
command-line keys into a ``dict`` field (``data.weights.en=0.5``) update single entries, whereas
``data.weights={en: 0.5}`` replaces the dict. On the command line a value that does not fit its field as YAML is
retried as the raw text, so ``name=1.10`` or ``lang=no`` on a ``str`` field give the strings "1.10" and "no".
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import difflib
import enum
import functools
import inspect
import os
import sys
import tempfile
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from core.errors import UserError, report

__all__ = ["ConfigError", "load_config", "parse_overrides", "merge", "from_dict", "to_dict", "dump_config",
           "config_diff", "field_docs", "format_help", "parse_cli", "COMMAND_LINE", "CONFIG_FILENAME"]

T = TypeVar("T")
COMMAND_LINE = "the command line"
CONFIG_FILENAME = "config.yaml"
_REQUIRED = "<required>"  # stands for "no default" in config_diff and format_help


class ConfigError(UserError, ValueError):
    """A config could not be built: unknown key, wrong type, failed validation or unreadable file.

    An expected error (core.errors): a command ends on it with one ERROR line and exit status 2."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key  # dotted key of the offending value, where there is one


class _Cli:
    """A command-line leaf: the YAML-parsed value plus the raw text it came from (for the retry as a string)."""

    __slots__ = ("parsed", "raw")

    def __init__(self, parsed: Any, raw: str):
        self.parsed, self.raw = parsed, raw

    def __repr__(self) -> str:
        return repr(self.parsed)


class _Dotted(dict):
    """A mapping made by dotted command-line keys; it updates ``dict`` fields entry by entry instead of replacing."""


# ----------------------------------------------------------------------------------------------- parsing inputs
def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """Turns ``a.b.c=value`` strings into a nested dict; later arguments win.

    Values are parsed with ``yaml.safe_load``: ``x=3`` -> 3, ``x=0.1`` -> 0.1, ``x=true`` -> True, ``x=[1,2]``,
    ``x={a: 1}``, ``x=null`` -> None, ``x=en,ru`` -> "en,ru"; text that is not valid YAML stays a string. Only the
    first ``=`` splits, so values may contain ``=``.

    Args:
        args: Override strings such as ``["optim.lr=1e-4", "data.langs=[en,ru]"]``.

    Returns:
        The nested dict, e.g. ``{"optim": {"lr": "1e-4"}, "data": {"langs": ["en", "ru"]}}``.

    Raises:
        ValueError: An argument has no ``=``, an empty key part, or conflicts with an earlier argument.
    """
    return _unwrap(_parse_overrides(args))


def _parse_overrides(args: Sequence[str]) -> _Dotted:
    tree = _Dotted()
    for arg in [args] if isinstance(args, str) else args:
        key, sep, text = arg.partition("=")
        parts = [p.strip() for p in key.split(".")]
        if not sep or not all(parts):
            raise ValueError(f"bad override {arg!r}: expected key=value with a dotted key, "
                             f"e.g. optim.lr=1e-4 or data.langs=[en,ru]")
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            parsed = text
        node = tree
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, _Dotted())
            if not isinstance(node, _Dotted):
                raise ValueError(f"override {arg!r} conflicts with the earlier value of {'.'.join(parts[:i + 1])!r}")
        node[parts[-1]] = _Cli(parsed, text)
    return tree


def _unwrap(tree: Any) -> Any:
    if isinstance(tree, _Cli):
        return tree.parsed
    return {k: _unwrap(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which PyYAML would otherwise resolve silently to the last one."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: str | Path) -> Mapping:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file '{path}': {e.strerror or e}") from e
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file '{path}' is not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file '{path}' must hold a mapping at the top level, got {type(data).__name__}")
    return data


# ------------------------------------------------------------------------------------------ dataclass schema
@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception as e:  # a forward reference the module cannot resolve
        raise ConfigError(f"cannot resolve the type annotations of {cls.__qualname__}: {e}") from e


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _is_instance(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _section_type(tp: Any) -> type | None:
    """The dataclass held by a ``Cfg`` or ``Cfg | None`` field, else None."""
    if _is_union(tp):
        args = [a for a in get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else None
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _join(path: str, name: Any) -> str:
    return f"{path}.{name}" if path else str(name)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if _is_union(tp):
        return " | ".join(_type_name(a) for a in get_args(tp))
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None:
        name = getattr(origin, "__name__", repr(origin))
        return f"{name}[{', '.join('...' if a is Ellipsis else _type_name(a) for a in args)}]" if args else name
    return getattr(tp, "__name__", repr(tp))


def _tree(obj: Any) -> dict[str, Any]:
    """A dataclass instance as a dict of its init fields, sections recursively, other values untouched."""
    hints = _hints(type(obj))
    out = {}
    for name in _fields(type(obj)):
        value = getattr(obj, name)
        out[name] = _tree(value) if _section_type(hints[name]) and _is_instance(value) else value
    return out


def _defaults(cls: type) -> dict[str, Any]:
    """The dataclass defaults as a tree; required fields are absent, required sections use their own defaults."""
    out, hints = {}, _hints(cls)
    for name, f in _fields(cls).items():
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        elif _section_type(hints[name]) is hints[name]:
            value = _defaults(hints[name])
        else:
            continue
        out[name] = _tree(value) if _section_type(hints[name]) and _is_instance(value) else value
    return out


# ------------------------------------------------------------------------------------------ merge and coerce
def merge(cls: type, base: Mapping[str, Any], update: Mapping[str, Any], path: str = "",
          source: str = "a mapping") -> dict[str, Any]:
    """Merges ``update`` into ``base`` for dataclass ``cls``, checking keys and coercing values to their types.

    Sections (nested dataclasses) stay dicts in the result; `_build` turns the final tree into instances.

    Args:
        cls: The dataclass both mappings describe.
        base: Current values (e.g. the defaults tree); not modified.
        update: New values, nested mappings for sections.
        path: Dotted path of ``cls`` inside the top-level config, for messages.
        source: Where ``update`` came from, for messages ("config file 'x.yaml'", "the command line").

    Returns:
        A new merged dict.

    Raises:
        ConfigError: Unknown key (with close matches), wrong type, or a non-mapping given for a section.
    """
    if not isinstance(update, Mapping):
        raise ConfigError(f"{path or 'the top level'} (from {source}) takes a mapping of {cls.__name__} fields, "
                          f"got {update!r}")
    fields, hints, out = _fields(cls), _hints(cls), dict(base)
    for raw_name, value in update.items():
        name, key = str(raw_name), _join(path, raw_name)
        if name not in fields:
            raise ConfigError(_unknown_key_message(cls, name, path, source), key)
        tp, sub = hints[name], _section_type(hints[name])
        if sub is not None and isinstance(value, _Cli):
            value = value.parsed
        if sub is not None and (isinstance(value, Mapping) or (value is None and tp is sub)):
            current = out.get(name)
            current = _tree(current) if _is_instance(current) else current
            current = current if isinstance(current, Mapping) else _defaults(sub)  # None: an optional section
            out[name] = merge(sub, current, value or {}, key, source)
        elif sub is not None and not (value is None or isinstance(value, sub)):
            example = next(iter(_fields(sub)), "field")
            raise ConfigError(f"{key!r} (from {source}) is a section ({sub.__name__}) and takes a mapping of its "
                              f"fields, e.g. {key}.{example}=...; got {value!r}")
        elif isinstance(value, _Dotted) and isinstance(out.get(name), Mapping):
            out[name] = _coerce({**out[name], **value}, tp, key, source)
        else:
            out[name] = _coerce(value, tp, key, source)
    return out


def _all_keys(cls: type, path: str) -> list[str]:
    keys = []
    for name, tp in ((n, _hints(cls)[n]) for n in _fields(cls)):
        keys.append(_join(path, name))
        if (sub := _section_type(tp)) is not None:
            keys += _all_keys(sub, _join(path, name))
    return keys


def _unknown_key_message(cls: type, name: str, path: str, source: str) -> str:
    names = list(_fields(cls))
    guesses = [_join(path, g) for g in difflib.get_close_matches(name, names, n=3, cutoff=0.6)]
    if not guesses:  # maybe the key lives one section deeper: `batch_size=4` meant `data.batch_size=4`
        guesses = [k for k in _all_keys(cls, path)
                   if difflib.get_close_matches(name, [k.rsplit(".", 1)[-1]], cutoff=0.8)][:3]
    msg = f"unknown key {_join(path, name)!r} (from {source})"
    if guesses:
        msg += "; did you mean " + " or ".join(map(repr, guesses)) + "?"
    where = f"under {path!r}" if path else "at the top level"
    return msg + f"; valid keys {where}: {', '.join(names)}"


def _type_error(key: str, source: str, tp: Any, value: Any, hint: str = "") -> ConfigError:
    if isinstance(value, _Dotted):  # `data.langs.x=1`: dotted keys that go below a plain value
        return ConfigError(f"cannot set {_join(key, next(iter(value)))!r} (from {source}): {key!r} holds a "
                           f"{_type_name(tp)}, not a section", key)
    msg = (f"invalid value for {key!r} (from {source}): expected {_type_name(tp)}, "
           f"got {value!r} ({type(value).__name__})")
    return ConfigError(msg + (f"; {hint}" if hint else ""), key)


def _scalar(value: Any, tp: type) -> Any:
    """``value`` as a bool/int/float/str, or None if it does not fit; numeric strings count as numbers."""
    if tp in (bool, str):
        return value if isinstance(value, tp) else None
    number = None if isinstance(value, bool) else value if isinstance(value, (int, float)) else None
    for conv in (int, float) if isinstance(value, str) else ():
        with contextlib.suppress(ValueError):
            number = conv(value.strip().replace("_", ""))
            break
    if tp is float or number is None:
        return None if number is None else float(number)
    return int(number) if isinstance(number, int) or float(number).is_integer() else None


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Checks ``value`` against annotation ``tp`` and converts it (list -> tuple, str -> Path, ...)."""
    if isinstance(value, _Cli):
        try:
            return _coerce(value.parsed, tp, key, source)
        except ConfigError as err:
            # `name=1.10` or `lang=no` on a str field: use the text as typed. `x=null` stays null.
            if not isinstance(value.parsed, str) and (value.parsed is not None or not value.raw.strip()):
                with contextlib.suppress(ConfigError):
                    return _coerce(value.raw, tp, key, source)
            raise err
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any or tp is object:
        return value
    if _is_union(tp):
        if value is None and type(None) in args:
            return None
        if type(value) in args:  # exact match first, so a quoted "3" stays a str for `int | str`
            return value
        deeper = None  # an error inside a container (`weights.en`) says more than "expected dict | None"
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as e:
                deeper = deeper or (e if e.key not in (None, key) else None)
        raise deeper or _type_error(key, source, tp, value)
    if origin is Literal:
        for allowed in args:  # type check too: True == 1 but must not match Literal[1]
            if value == allowed and type(value) is type(allowed):
                return allowed
        raise ConfigError(f"invalid value for {key!r} (from {source}): {value!r} is not one of "
                          f"{', '.join(map(repr, args))}", key)
    if tp is type(None):
        if value is None:
            return None
        raise _type_error(key, source, tp, value)
    if _section_type(tp) is not None:  # e.g. the elements of a list[SubConfig]
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return _build(tp, merge(tp, _defaults(tp), value, key, source), key)
        raise _type_error(key, source, tp, value, "give a mapping of its fields")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        with contextlib.suppress(ValueError, TypeError):
            return tp(value)
        if isinstance(value, str) and value in tp.__members__:
            return tp[value]
        raise ConfigError(f"invalid value for {key!r} (from {source}): {value!r} is not one of "
                          f"{', '.join(repr(m.value) for m in tp)}", key)
    if tp in (bool, int, float, str):
        if (out := _scalar(value, tp)) is not None:
            return out
        hint = {bool: "use true or false", str: "quote it: YAML reads unquoted yes/no/on/off/true/false as "
                "booleans" if isinstance(value, bool) else ""}.get(tp, "")
        raise _type_error(key, source, tp, value, hint)
    if isinstance(tp, type) and issubclass(tp, PurePath):
        if isinstance(value, (str, os.PathLike)):
            return tp(value)
        raise _type_error(key, source, tp, value)
    container = origin or tp
    if container in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, source, tp, value, "write lists as [a, b]")
        if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _type_error(key, source, tp, value, f"expected exactly {len(args)} items")
            items = [_coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args, strict=True))]
        else:
            items = [_coerce(v, args[0] if args else Any, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if container is tuple else items
    if container in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _type_error(key, source, tp, value, "write mappings as {a: 1, b: 2}")
        kt, vt = args if len(args) == 2 else (Any, Any)
        return {_coerce(k, kt, f"{key}.{k}", source): _coerce(v, vt, f"{key}.{k}", source) for k, v in value.items()}
    if isinstance(tp, type) and not isinstance(value, tp):
        raise _type_error(key, source, tp, value)
    return value  # other typing constructs (Callable, TypeVar, ...) are passed through unchecked


def _build(cls: type[T], data: Mapping[str, Any], path: str) -> T:
    """Constructs ``cls`` from a merged tree, innermost sections first; wraps ``__post_init__`` errors."""
    kwargs, hints = {}, _hints(cls)
    for name, f in _fields(cls).items():
        key = _join(path, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing required key {key!r} ({_type_name(hints[name])}); "
                                  f"set it in the config file or with {key}=...")
            continue
        value, sub = data[name], _section_type(hints[name])
        kwargs[name] = _build(sub, value, key) if sub is not None and isinstance(value, Mapping) else value
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # raised by the dataclass's own __post_init__
        raise ConfigError(f"{path or cls.__name__}: {e}") from e


# ------------------------------------------------------------------------------------------------- public API
def load_config(cls: type[T], yaml_path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Builds ``cls`` from its defaults, then a YAML file, then command-line overrides.

    Args:
        cls: The top-level config dataclass.
        yaml_path: Optional YAML file with nested mappings for nested dataclass fields.
        overrides: ``key.sub=value`` strings (see `parse_overrides`); they win over the file.

    Returns:
        A fully constructed instance: every nested ``__post_init__`` has run on the final values.

    Raises:
        ConfigError: Unreadable file, bad override, unknown key, wrong type, or failed validation. The message names
            the dotted key and where the value came from.
    """
    tree = _defaults(cls)
    if yaml_path is not None:
        tree = merge(cls, tree, _read_yaml(yaml_path), source=f"config file '{yaml_path}'")
    try:
        parsed = _parse_overrides(overrides)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return _build(cls, merge(cls, tree, parsed, source=COMMAND_LINE), "")


def from_dict(cls: type[T], d: Mapping[str, Any], source: str = "a mapping") -> T:
    """Builds ``cls`` from its defaults updated with the nested mapping ``d`` (the inverse of `to_dict`)."""
    return _build(cls, merge(cls, _defaults(cls), d, source=source), "")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Converts a config instance to plain YAML/JSON data in declaration order.

    Paths become str, tuples lists, enums their values; nested dataclasses become dicts.

    Raises:
        ConfigError: A value of a type that has no plain form.
    """
    if not _is_instance(cfg):
        raise TypeError(f"to_dict expects a dataclass instance, got {type(cfg).__name__}")
    return _plain(cfg, "")


def _plain(value: Any, key: str) -> Any:
    if _is_instance(value):
        return {n: _plain(getattr(value, n), _join(key, n)) for n in _fields(type(value))}
    if isinstance(value, enum.Enum):
        return _plain(value.value, key)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{key}[{i}]") for i, v in enumerate(value)]
    for kind in (bool, int, float, str):  # exact types: safe_dump rejects subclasses such as numpy.float64
        if isinstance(value, kind):
            return kind(value)
    if value is None:
        return None
    raise ConfigError(f"cannot write {key!r}: a {type(value).__name__} value has no plain YAML form")


def dump_config(cfg: Any, run_dir: str | Path) -> Path:
    """Writes ``run_dir/config.yaml`` atomically (temp file in the same directory, then ``os.replace``).

    Keys keep their declaration order; ``load_config(type(cfg), path)`` gives back an equal config. Call it on one
    rank only; concurrent writers are safe but wasteful.

    Args:
        cfg: The resolved config instance.
        run_dir: The run directory; created if missing.

    Returns:
        The path of the written file.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cls = type(cfg)
    text = (f"# Resolved {cls.__module__}.{cls.__qualname__} (defaults -> YAML file -> command line).\n"
            f"# Reload with train.config.load_config({cls.__qualname__}, <this file>).\n"
            + yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False, allow_unicode=True, width=120))
    fd, tmp = tempfile.mkstemp(prefix=f".{CONFIG_FILENAME}.", suffix=".tmp", dir=run_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run directories are read by the whole team
        os.replace(tmp, run_dir / CONFIG_FILENAME)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return run_dir / CONFIG_FILENAME


def config_diff(cfg: Any) -> dict[str, tuple[Any, Any]]:
    """Lists the leaf keys whose values differ from the dataclass defaults, for run names and logs.

    Returns:
        ``{"optim.lr": (default, value), ...}`` in declaration order, both sides in plain form (see `to_dict`);
        the default is ``"<required>"`` for fields without one.
    """
    out: dict[str, tuple[Any, Any]] = {}

    def walk(obj: Any, defaults: Mapping[str, Any], path: str) -> None:
        for name in _fields(type(obj)):
            key, value, default = _join(path, name), getattr(obj, name), defaults.get(name, _REQUIRED)
            if _is_instance(value) and isinstance(default, Mapping):
                walk(value, default, key)
            elif (plain := _plain(value, key)) != (old := _plain(default, key)):
                out[key] = (old, plain)

    walk(cfg, _defaults(type(cfg)), "")
    return out


# ------------------------------------------------------------------------------------------------ docs and CLI
def field_docs(cls: type) -> dict[str, str]:
    """Extracts each field's docstring: the string literal right under the field in the class body.

    Inherited fields get the docs of the class that declares them. Classes whose source is unavailable
    (``python -c``, ``make_dataclass``, frozen apps) contribute no docs, so the result may be ``{}``.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_class_field_docs(klass))
    names = {f.name for f in dataclasses.fields(cls)}
    return {name: doc for name, doc in docs.items() if name in names}


@functools.cache
def _class_field_docs(klass: type) -> dict[str, str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
    except Exception:  # no source (OSError/TypeError) or source that does not parse after dedent
        return {}
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    docs = {}
    for stmt, nxt in zip(node.body, node.body[1:], strict=False) if node else ():
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def format_help(cls: type) -> str:
    """Lists every settable key, sections recursively, as ``key.sub (type, default=...): doc`` lines."""
    lines: list[str] = []

    def walk(klass: type, defaults: Mapping[str, Any], path: str) -> None:
        docs, hints = field_docs(klass), _hints(klass)
        for name in _fields(klass):
            key, tp, default = _join(path, name), hints[name], defaults.get(name, _REQUIRED)
            doc = " ".join(docs.get(name, "").split())
            sub = _section_type(tp)
            if sub is not None and isinstance(default, Mapping):
                info = f"{sub.__name__} section"
            else:
                info = _type_name(tp) + (", required" if default is _REQUIRED else f", default={_show(default)}")
            lines.append(f"{key} ({info})" + (f": {doc}" if doc else ""))
            if sub is not None:
                walk(sub, default if isinstance(default, Mapping) else _defaults(sub), key)

    walk(cls, _defaults(cls), "")
    return "\n".join(lines)


def _show(value: Any) -> str:
    try:
        return repr(_plain(value, ""))
    except ConfigError:
        return repr(value)


def parse_cli(cls: type[T], argv: Sequence[str] | None = None, *, prog: str | None = None,
              description: str | None = None, exit_on_error: bool = True) -> T:
    """Entry-point helper: ``[--config FILE] [key.sub=value ...]`` -> config; ``-h`` lists every key.

    ``--key.sub=value`` is accepted as a spelling of ``key.sub=value``.

    Args:
        cls: The top-level config dataclass.
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.
        prog: Program name for usage and error lines.
        description: Text printed under the usage line by ``--help``.
        exit_on_error: Print a config error as the commands' one ERROR line (core.errors) and exit with status 2
            (True), or raise it (False: what entry points decorated with ``core.errors.entry_point`` pass).

    Returns:
        The loaded config (see `load_config`).
    """
    parser = argparse.ArgumentParser(prog=prog, add_help=False, allow_abbrev=False,
                                     usage="%(prog)s [--config FILE] [key.sub=value ...]")
    parser.add_argument("--config", "-c", metavar="FILE", default=None)
    parser.add_argument("--help", "-h", action="store_true")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if args.help:
        print(parser.format_usage() + (f"\n{description}\n" if description else "")
              + "\n  -c, --config FILE  YAML file merged over the defaults; key=value overrides win over it"
              + "\n  -h, --help         show this help\n\nconfig keys:\n"
              + textwrap.indent(format_help(cls), "  "))
        raise SystemExit(0)
    overrides = []
    try:
        for item in rest:
            if item.startswith("-") and not (item.startswith("--") and "=" in item):
                raise ConfigError(f"unknown option {item!r}; set config keys as key.sub=value (see --help)")
            overrides.append(item[2:] if item.startswith("--") else item)
        return load_config(cls, args.config, overrides)
    except ConfigError as e:
        if not exit_on_error:
            raise
        raise SystemExit(report(e, parser.prog)) from None
