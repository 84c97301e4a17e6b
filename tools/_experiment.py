"""Shared machinery of the experiment scripts: configs, seeds, result files, provenance, random priors.

**Configs.** Each figure or study is one frozen dataclass, a subclass of :class:`ExperimentConfig`. Every field
has a role (:func:`setting`):

* ``setting`` (the default): changes what a run computes, so it is part of the config's hash;
* ``grid``: which runs there are (sizes, seeds, arms): the rows' key, not the hash;
* ``run``: how and where the runs execute (workers, threads, folders): neither;
* ``notes``: interpretation that the report prints verbatim (reports otherwise hold only measured numbers
  and what was run; a report also prints ``<stem>.notes.md`` from its output folder when there is one).

A config loads from YAML (:meth:`ExperimentConfig.from_yaml`; keys are field names, an unknown key is an
error), every field is a command-line flag (``--field-name`` unless the field names its own), and flags
override the file (``--config FILE``). :meth:`~ExperimentConfig.to_dict` is JSON-able and
:meth:`~ExperimentConfig.sha256` is the sha256 of the settings (first 16 hex digits).

**Rows.** :class:`ResultFile` is the one results CSV. A row is keyed by its ``config_sha256`` (the hash of the
settings that produced it: :meth:`ExperimentConfig.row_settings`, which drops settings that do not apply to
that row, e.g. the deep weight prior's spec in a standard-normal row) and the figure's row key (e.g. size,
prior, seed); it records the settings as JSON (``settings``), the dwp-hub version and the git commit. Writes
are atomic (temporary file, fsync, rename); a rerun skips rows already present (resume). CSVs written before
config hashing have no ``settings``: they stay readable, and their rows match a job by the figure's
``legacy`` rule, i.e. by the columns the old scripts keyed them by.

**Seeds.** One syntax everywhere (:func:`parse_seeds`): ``"3"`` is seed 3, ``"0-4"`` seeds 0 to 4,
``"0,2,5"`` those seeds, and parts combine (``"0-2,7"``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import dataclasses
import functools
import hashlib
import json
import multiprocessing as mp
import os
import shlex
import subprocess
import sys
import time
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

REPO = Path(__file__).resolve().parents[1]
SETTING, GRID, RUN, NOTES = "setting", "grid", "run", "notes"
ROLES = (SETTING, GRID, RUN, NOTES)
#: What a row records as its prior spec when it used randomly initialised stand-in priors.
RANDOM_SPEC = "random-vae"


class ConfigError(ValueError):
    """A config that cannot be read or is inconsistent (the scripts print it as a usage error)."""


# -- seeds and other lists ------------------------------------------------------------------------------
def parse_ints(text: Any) -> tuple[int, ...]:
    """Non-negative integers in the seed syntax: ``"3"``, ``"0-4"`` (inclusive), ``"0,2,5"``, ``"0-2,7"``;
    also an int or a YAML list of such items. Order is kept, repeats are dropped; empty is an error."""
    if isinstance(text, bool):
        raise TypeError(f"expected integers, got {text!r}")
    if isinstance(text, int):
        items: list[Any] = [text]
    elif isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = str(text).split(",")
    out: list[int] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            if item < 0:
                raise ValueError(f"negative value {item}")
            out.append(item)
            continue
        part = str(item).strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError(f"empty range {part!r}")
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError as err:
            raise ValueError(f"{part!r} is not N, A-B or a comma-separated list of them ({err})") from None
        if out and out[-1] < 0:
            raise ValueError(f"negative value in {part!r}")
    if not out:
        raise ValueError(f"no values in {text!r}")
    return tuple(dict.fromkeys(out))


def parse_seeds(text: Any) -> tuple[int, ...]:
    """The one seed syntax of every script: ``"3"`` is seed 3; ``"0-4"`` seeds 0, 1, 2, 3, 4;
    ``"0,2,5"`` those seeds; ``"0-2,7"`` both forms together."""
    return parse_ints(text)


def format_seeds(seeds: Iterable[int]) -> str:
    """The shortest seed-syntax string for ``seeds`` (``(0, 1, 2, 3, 4)`` → ``"0-4"``)."""
    values = list(seeds)
    parts, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if j == i else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)


def seeds_or_legacy_count(text: Any, script: str) -> tuple[int, ...]:
    """``--seeds`` of a script whose old syntax read a single number N as seeds 0..N-1 (fig3a, fig4).

    The recorded commands of those figures (``--seeds 5``, ``--seeds 10``) keep their meaning: a bare number on
    the command line is read as that count, with a warning that names the seed syntax to use instead
    (``--seeds 0-4``). Everything else is :func:`parse_seeds`; YAML configs always use :func:`parse_seeds`.
    """
    s = str(text).strip()
    if s.isdigit():
        n = int(s)
        if n < 1:
            raise ValueError(f"in {script} a bare number is the old count syntax (N: seeds 0..N-1); for seed 0 alone "
                             "write 0-0")
        print(f"{script}: --seeds {n} is the old count syntax, read as seeds 0-{n - 1} (write --seeds "
              f"{format_seeds(range(n))}; in the seed syntax a single number is one seed).", file=sys.stderr)
        return tuple(range(n))
    return parse_seeds(s)


def parse_fractions(text: Any) -> tuple[Fraction, ...]:
    """``"1/16,1/8,1"`` (or a YAML list) → fractions."""
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    out = tuple(Fraction(str(s).strip()) for s in items if str(s).strip())
    if not out:
        raise ValueError(f"no fractions in {text!r}")
    return out


def parse_kernel_specs(text: Any) -> dict[int, str]:
    """``"7=notmnist-7x7,5=notmnist-5x5"`` (or a YAML mapping) → ``{7: "notmnist-7x7", 5: "notmnist-5x5"}``."""
    if isinstance(text, Mapping):
        return {int(k): str(v).strip() for k, v in text.items()}
    table = {}
    for item in str(text).split(","):
        if not item.strip():
            continue
        size, sep, spec = item.partition("=")
        if not sep or not size.strip().isdigit() or not spec.strip():
            raise ValueError(f"expected KERNEL_SIZE=SPEC pairs like 7=notmnist-7x7,5=notmnist-5x5; got {item!r}")
        table[int(size)] = spec.strip()
    return table


def format_kernel_specs(table: Mapping[int, str]) -> str:
    """The inverse of :func:`parse_kernel_specs`, largest kernel first."""
    return ",".join(f"{k}={v}" for k, v in sorted(table.items(), reverse=True))


# -- provenance -----------------------------------------------------------------------------------------
@functools.cache
def git_commit() -> str:
    """The short commit of the checkout, ``+dirty`` when tracked files under dwp_hub/ or tools/ differ from it;
    ``""`` outside a git checkout."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False)

    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode:
            return ""
        dirty = git("diff", "--quiet", "HEAD", "--", "dwp_hub", "tools").returncode == 1
    except (OSError, subprocess.SubprocessError):
        return ""
    return head.stdout.strip() + ("+dirty" if dirty else "")


def package_version() -> str:
    from dwp_hub import __version__

    return __version__


def provenance() -> dict[str, str]:
    """The columns every result row records besides its config: dwp-hub version and git commit."""
    return {"dwp_hub": package_version(), "commit": git_commit()}


def config_hash(settings: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``settings`` (sorted keys), first 16 hex digits."""
    blob = json.dumps(jsonable(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def jsonable(value: Any) -> Any:
    """``value`` with paths and fractions as strings, tuples as lists and mapping keys as strings."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (Path, Fraction)):
        return str(value)
    return value


def command_line(script: str, argv: Sequence[str] | None, prefix: str = "python") -> str:
    """How a script was invoked, as a shell line (``python tools/fig2a.py --seeds 0-4``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join([prefix, f"tools/{script}.py", *map(shlex.quote, args)])


# -- configs ----------------------------------------------------------------------------------------------
def setting(default: Any = dataclasses.MISSING, help: str = "", *, role: str = SETTING,
            flags: Sequence[str] = (), parse: Callable[[Any], Any] | None = None,
            cli_parse: Callable[[str], Any] | None = None, negate: bool = False,
            nargs: str | None = None, choices: Sequence[str] | None = None, cli: bool = True,
            factory: Callable[[], Any] | None = None) -> Any:
    """A config field.

    Args:
        default: the default value (``factory`` for mutable ones).
        help: the flag's help text.
        role: ``"setting"``, ``"grid"``, ``"run"`` or ``"notes"`` (see the module docstring).
        flags: the command-line flags (default ``--field-name``); the first is the canonical one.
        parse: reads a command-line string or a YAML value (default: by the field's type).
        cli_parse: reads the command-line string instead of ``parse`` (compatibility with an old flag syntax).
        negate: a boolean whose flags set it to False (``--raw-features`` for ``standardize``).
        nargs, choices: passed to argparse.
        cli: whether the field is a command-line flag at all.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    meta = {"help": help, "role": role, "flags": tuple(flags), "parse": parse, "cli_parse": cli_parse,
            "negate": negate, "nargs": nargs,
            "choices": tuple(choices) if choices else None, "cli": cli}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _coerce(tp: Any, value: Any) -> Any:
    """``value`` (a command-line string or a YAML value) as type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        empty = value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null"))
        if empty and len(inner) < len(args):
            return None
        return _coerce(inner[0], value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        return bool(value)
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
    if tp in (float, str):
        return tp(value)
    if tp is Path:
        return Path(value)
    if origin is tuple:
        item = args[0] if args else Any
        items = value if isinstance(value, (list, tuple)) else [s for s in str(value).split(",") if s.strip()]
        return tuple(_coerce(item, v.strip() if isinstance(v, str) else v) for v in items)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a mapping, got {value!r}")
        return dict(value)
    return value


def _notes(value: Any) -> tuple[str, ...]:
    """A YAML string or list of strings (commas inside a note are text, not separators)."""
    if value is None:
        return ()
    return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Base of every figure's config: see the module docstring. Subclasses set ``NAME`` (recorded in every
    hash, so two figures never share one) and may set ``DEFAULT_CONFIG`` (the YAML read without --config)."""

    NAME: ClassVar[str] = "experiment"
    DEFAULT_CONFIG: ClassVar[Path | None] = None

    notes: tuple[str, ...] = setting((), "interpretation printed verbatim in the report (YAML)", role=NOTES,
                                     cli=False, parse=_notes)

    def __post_init__(self) -> None:
        hints = self._hints()
        for f in dataclasses.fields(self):  # values as their types, however given (YAML, flags, code)
            value = getattr(self, f.name)
            parse = f.metadata.get("parse")
            try:
                value = parse(value) if parse else _coerce(hints[f.name], value)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"{self.NAME}: {f.name}: {err}") from None
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Checks across fields; raise :class:`ConfigError` (subclasses extend)."""

    @classmethod
    @functools.cache
    def _hints(cls) -> dict[str, Any]:
        return typing.get_type_hints(cls)

    @classmethod
    def role_of(cls, name: str) -> str:
        return next(f.metadata.get("role", SETTING) for f in dataclasses.fields(cls) if f.name == name)

    # -- views
    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-able (the YAML that :meth:`from_dict` reads back)."""
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def settings(self) -> dict[str, Any]:
        """The fields with role ``setting``, JSON-able, plus the experiment's name."""
        return {"experiment": self.NAME, **{f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)
                                            if f.metadata.get("role", SETTING) == SETTING}}

    def sha256(self) -> str:
        """The config's hash: :func:`config_hash` of :meth:`settings`."""
        return config_hash(self.settings())

    def row_settings(self, **key: Any) -> dict[str, Any]:
        """The settings that produce the row with this key (default: all of :meth:`settings`)."""
        return self.settings()

    # -- construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{cls.NAME}: unknown key(s) {', '.join(unknown)}; a {cls.__name__} has "
                              f"{', '.join(sorted(names))}.")
        hints = cls._hints()
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                raw, parse = data[f.name], f.metadata.get("parse")
                try:
                    values[f.name] = parse(raw) if parse else _coerce(hints[f.name], raw)
                except (TypeError, ValueError) as err:
                    raise ConfigError(f"{cls.NAME}: {f.name}: {err}") from None
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentConfig:
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read config {path}: {err}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"config {path}: expected a mapping of settings, got {type(data).__name__}.")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with ``changes`` (values coerced like YAML values)."""
        merged = {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, **changes}
        return type(self).from_dict(merged)

    # -- command line
    @classmethod
    def parser(cls, description: str = "") -> argparse.ArgumentParser:
        ap = argparse.ArgumentParser(description=description or cls.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        default_cfg = f" (default: {os.path.relpath(cls.DEFAULT_CONFIG, REPO)})" if cls.DEFAULT_CONFIG else ""
        ap.add_argument("--config", type=Path, default=cls.DEFAULT_CONFIG,
                        help=f"YAML file of settings; flags override it{default_cfg}")
        hints = cls._hints()
        for f in dataclasses.fields(cls):
            m = f.metadata
            if not m.get("cli", True):
                continue
            flags = list(m.get("flags") or ()) or ["--" + f.name.replace("_", "-")]
            default = f.default if f.default is not dataclasses.MISSING else None
            shown = format_seeds(default) if isinstance(default, tuple) and default and all(
                isinstance(v, int) for v in default) else default
            help_text = (m.get("help") or "") + (f" (default: {shown})" if shown not in (None, (), "") else "")
            kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
            if hints[f.name] is bool:
                kw["action"] = "store_false" if m.get("negate") else "store_true"
            else:
                parse = m.get("cli_parse") or m.get("parse") or functools.partial(_coerce, hints[f.name])
                kw["type"] = _argtype(parse, f.name)
                if m.get("nargs"):
                    kw["nargs"] = m["nargs"]
                if m.get("choices"):
                    kw["choices"] = m["choices"]
            ap.add_argument(*flags, **kw)
        return ap

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, description: str = "",
                  extra: Callable[[argparse.ArgumentParser], None] | None = None,
                  ) -> tuple[ExperimentConfig, argparse.Namespace]:
        """The config from ``--config`` (or :attr:`DEFAULT_CONFIG`, or the defaults) with the flags given in
        ``argv`` on top, and the parsed namespace (for the script's own flags, added by ``extra``)."""
        ap = cls.parser(description)
        if extra is not None:
            extra(ap)
        ns = ap.parse_args(argv)
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in vars(ns).items() if k in names}
        for k, v in given.items():  # nargs flags give lists, of tuples when each item parses as the whole tuple type
            if isinstance(v, list):
                given[k] = tuple(x for item in v for x in (item if isinstance(item, tuple) else (item,)))
        try:
            base = cls.from_yaml(ns.config) if ns.config is not None else cls()
            cfg = dataclasses.replace(base, **given) if given else base
        except ConfigError as err:
            ap.error(str(err))
        return cfg, ns


def _argtype(parse: Callable[[Any], Any], name: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = name  # argparse names the type in its error messages
    return convert


# -- result files ----------------------------------------------------------------------------------------
Legacy = Callable[[Mapping[str, str], Mapping[str, Any]], bool]


class ResultFile:
    """A results CSV: one row per result, keyed by (``config_sha256``, ``key`` columns); see the module docstring.

    Args:
        path: the CSV (created on the first :meth:`add`).
        fields: the figure's columns, in order; the provenance columns follow (:attr:`PROVENANCE`), and columns
            of an existing file that neither names are kept at the end.
        key: the columns that, with the config hash, identify a row.
        legacy: ``legacy(row, settings)``: whether a row written before config hashing (no ``settings``) was
            made with ``settings`` (by the columns the old script recorded). Without it such rows match nothing.
    """

    PROVENANCE = ("config_sha256", "settings", "dwp_hub", "commit")

    def __init__(self, path: str | Path, fields: Sequence[str], key: Sequence[str], *,
                 legacy: Legacy | None = None) -> None:
        self.path = Path(path)
        self.key = tuple(key)
        self.legacy = legacy
        self.rows = self.read(self.path)
        header = self._header()
        self.fields = list(dict.fromkeys([*fields, *self.PROVENANCE, *header]))
        missing = set(self.key) - set(self.fields)
        if missing:
            raise ValueError(f"key columns {sorted(missing)} are not among the fields")

    @staticmethod
    def read(path: str | Path) -> list[dict[str, str]]:
        """The rows of a results CSV (old or new), ``[]`` when it does not exist."""
        path = Path(path)
        if not path.is_file():
            return []
        with path.open(newline="") as fh:
            return [dict(r) for r in csv.DictReader(fh)]

    def _header(self) -> list[str]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as fh:
            return next(csv.reader(fh), [])

    # -- matching
    def matches(self, row: Mapping[str, str], settings: Mapping[str, Any] | None = None, **key: Any) -> bool:
        """Whether ``row`` has this (partial) key and was made with ``settings`` (any settings when None)."""
        if any(row.get(k, "") != str(v) for k, v in key.items()):
            return False
        if settings is None:
            return True
        if row.get("settings"):
            return row.get("config_sha256") == config_hash(settings)
        return self.legacy is not None and self.legacy(row, settings)

    def find(self, settings: Mapping[str, Any] | None = None, **key: Any) -> list[dict[str, str]]:
        """The rows with this (partial) key made with ``settings``, in file order."""
        return [r for r in self.rows if self.matches(r, settings, **key)]

    def has(self, settings: Mapping[str, Any], **key: Any) -> bool:
        """Whether the row of this key is already there (resume skips it)."""
        return any(self.matches(r, settings, **key) for r in self.rows)

    # -- writing
    def add(self, rows: Iterable[Mapping[str, Any]], settings: Mapping[str, Any]) -> None:
        """Append ``rows`` made with ``settings`` (hash, settings JSON and provenance filled in), atomically."""
        sha, blob = config_hash(settings), json.dumps(jsonable(settings), sort_keys=True, separators=(",", ":"))
        prov = provenance()
        new = []
        for r in rows:
            row = {k: "" if v is None else str(v) for k, v in r.items() if not k.startswith("_")}
            missing = [k for k in self.key if k not in row]
            if missing:
                raise ValueError(f"row without key column(s) {missing}: {row}")
            row.update({"config_sha256": sha, "settings": blob})
            for k, v in prov.items():
                row.setdefault(k, v)
            new.append(row)
        self.rows += new
        self.write()

    def discard(self, settings: Mapping[str, Any], **key: Any) -> int:
        """Drop the rows of this key made with ``settings`` from :attr:`rows` (a run redone replaces its row; the
        file changes at the next :meth:`add` or :meth:`write`); returns how many were dropped."""
        before = len(self.rows)
        self.rows = [r for r in self.rows if not self.matches(r, settings, **key)]
        return before - len(self.rows)

    def write(self) -> None:
        """Rewrite the file from :attr:`rows` (temporary file, fsync, rename: a kill leaves the old or the new)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore")
            writer.writeheader()
            for r in self.rows:
                writer.writerow({k: r.get(k, "") for k in self.fields})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def merge(self, path: str | Path) -> int:
        """Add the rows of another results CSV of the same figure (a partition of the runs written with its own
        ``--csv`` by another process) that this file lacks, keyed by the key columns and ``config_sha256``, and
        the commands recorded beside it; returns how many rows were added. A row whose key is here with other
        results is refused (ValueError): two runs of one key, which should not happen, are never silently dropped.
        A file that does not exist adds nothing (a partition that has not finished a run yet)."""
        def key(r: Mapping[str, str]) -> tuple[str, ...]:
            return (*(r.get(k, "") for k in self.key), r.get("config_sha256", ""))

        other = ResultFile(path, self.fields, self.key)  # no file: no rows, no commands
        here = {key(r): r for r in self.rows}
        new = []
        for r in other.rows:
            old = here.get(key(r))
            if old is None:
                here[key(r)] = r
                new.append(r)
            elif any(old.get(k, "") != v for k, v in r.items() if k in self.fields and k != "commit"):
                raise ValueError(f"{path}: the row {dict(zip([*self.key, 'config_sha256'], key(r)))} is already "
                                 f"in {self.path} with other results; remove one of them by hand")
        if new:
            self.rows += new
            self.write()
        for command in other.commands():
            self.record(command)
        return len(new)

    # -- the commands that added rows (one per line, beside the CSV)
    @property
    def commands_path(self) -> Path:
        return self.path.with_suffix(".commands.txt")

    def record(self, command: str) -> None:
        """Add ``command`` to the commands file unless it is already there."""
        if command in self.commands():
            return
        self.commands_path.parent.mkdir(parents=True, exist_ok=True)
        with self.commands_path.open("a") as fh:
            fh.write(command + "\n")

    def commands(self) -> list[str]:
        """The recorded commands, oldest first."""
        path = self.commands_path
        return [c for c in path.read_text().splitlines() if c.strip()] if path.is_file() else []


def notes_section(notes: Sequence[str], out_dir: Path, stem: str) -> list[str]:
    """Markdown lines of a report's notes: the config's ``notes`` and ``<out_dir>/<stem>.notes.md``."""
    lines = [f"- {n.strip()}" for n in notes if n.strip()]
    extra = out_dir / f"{stem}.notes.md"
    if extra.is_file():
        lines += [line.rstrip() for line in extra.read_text().strip().splitlines()]
    return ["", "## Notes", "", *lines] if lines else []


# -- priors -----------------------------------------------------------------------------------------------
#: The shipped priors' VAE architectures by kernel size (tools/recipes): kind, z_dim, hidden, activation.
SHIPPED_ARCHS = {7: ("conv7", 2, 32, "elu"), 5: ("conv5", 4, 64, "elu"), 3: ("mlp", 4, 32, "relu")}


def random_prior(kernel_size: int, seed: int = 0) -> Any:
    """An untrained prior with the shipped architecture for ``kernel_size``: the one stand-in for smoke tests and
    timing (sampling costs the same as with the trained prior). Seeded; torch's global RNG is left untouched."""
    import torch

    from dwp_hub.card import ArchConfig, KernelsInfo, KernelStats, Metrics, PriorCard, SourceInfo, TrainingInfo
    from dwp_hub.model.prior import DeepWeightPrior
    from dwp_hub.model.vae import KernelVAE

    kind, z, hidden, act = SHIPPED_ARCHS[kernel_size]
    arch = ArchConfig(kind, kernel_size, z, hidden, act)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = KernelVAE(arch)
    nan = float("nan")
    card = PriorCard(
        name=f"random-{kernel_size}x{kernel_size}", version="0.0.0",
        description="Randomly initialised kernel VAE (not trained): a stand-in for smoke tests and timing.",
        arch=arch, source=SourceInfo("none", "", "none", "none", 0, []),
        kernels=KernelsInfo(0, 0, 0, 0, "none", 0.0), training=TrainingInfo(0, 0.0, 0, seed),
        metrics=Metrics(nan, nan, 0, nan, 0), kernel_stats=KernelStats(nan, nan, {}),
        weights_sha256="", created="", dwp_hub_version=package_version(),
    )
    return DeepWeightPrior(card, vae, source="random")


def random_priors(sizes: Iterable[int] = (7, 5)) -> dict[int, Any]:
    """:func:`random_prior` for each kernel size (seeded by the size)."""
    return {k: random_prior(k, seed=k) for k in sizes}


def load_priors(specs: Mapping[int, str], random: bool = False) -> dict[int, Any]:
    """``{kernel_size: prior}`` from registry specs, or :func:`random_priors` stand-ins with ``random=True``."""
    if random:
        return random_priors(specs)
    import dwp_hub

    return {k: dwp_hub.load(spec) for k, spec in specs.items()}


def pin_specs(table: Mapping[int, str]) -> dict[int, str]:
    """Every spec pinned to the version it resolves to now (the newest when unversioned), so rows say exactly
    which priors a run used."""
    from dwp_hub.registry import resolve

    return {k: resolve(ref).spec for k, ref in table.items()}


# -- running jobs ------------------------------------------------------------------------------------------
def run_jobs(jobs: Iterable[Any], fn: Callable[[Any], Any], on_result: Callable[[Any], None], workers: int,
             *, in_process: bool = True) -> None:
    """``fn(job)`` for every job, ``on_result`` called with each result in this process as it comes.

    ``workers > 1``: in a pool of that many spawned processes, results in the order they complete. ``workers <= 1``:
    one after another in this process (``in_process=False``: in one spawned worker process instead).
    """
    if workers <= 1 and in_process:
        for job in jobs:
            on_result(fn(job))
        return
    with cf.ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn")) as pool:
        for fut in cf.as_completed([pool.submit(fn, j) for j in jobs]):
            on_result(fut.result())


# -- small helpers -----------------------------------------------------------------------------------------
def parse_device(value: Any) -> str:
    """A ``device`` setting: a device this machine has (``cpu``, ``cuda``, ``cuda:1``, ``mps``), as its name;
    anything else is a :class:`~dwp_hub.errors.ConfigError` that names it (a usage error, exit 2, from the CLI)."""
    from dwp_hub._device import resolve_device

    return str(resolve_device(str(value)))


def set_threads(threads: int) -> None:
    """torch threads (0: torch's default)."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    import statistics

    vals = [float(v) for v in values]
    return statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


class Timer:
    """Seconds since construction, when called."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def machine_note() -> str:
    import torch

    return f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU core(s)"
