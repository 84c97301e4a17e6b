"""How the CLI reports errors: ONE table maps each error type to how its message is formatted
(from the error's fields) and to the exit status, as huggingface_hub's ``cli/_errors.py`` does.

* Usage errors (how the command was called) exit 2, like click's own usage errors.
* Errors in the data, the registry or the network exit 1; an interrupt exits 130.
* A remedy that the library names as a keyword argument (``resume=False``, an error's ``remedy`` field)
  is shown as the flag that sets it (``--no-resume``, :data:`REMEDY_FLAGS`).
* No traceback unless ``--debug`` (before or after the subcommand) or ``DWP_HUB_DEBUG=1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import typer
from rich.markup import escape

from dwp_hub import constants
from dwp_hub import errors as E
from dwp_hub.cli._console import err_console

F = TypeVar("F", bound=Callable[..., Any])

#: Set by ``--debug`` (the root option or the one every command accepts).
_state = {"debug": False}

#: Click's own exceptions (typer may vendor click): click reports them (usage errors exit 2).
_CLICK_ERRORS = tuple({click.exceptions.ClickException,
                       *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")})

USAGE = 2
FAILURE = 1
INTERRUPTED = 130


#: How the CLI spells a library remedy (:class:`dwp_hub.errors.Remedy`, an argument setting): the flag that
#: sets it. Python callers read ``resume=False``; ``dwp-hub vi`` users ``--no-resume``.
REMEDY_FLAGS: dict[tuple[str, Any], str] = {
    ("resume", False): "--no-resume",
}


def _text(err: BaseException) -> str:
    """``str(err)``, with a remedy named by its CLI flag when the error offers one that the CLI has."""
    remedy = getattr(err, "remedy", None)
    if isinstance(err, E.DwpHubError) and remedy is not None:
        return err.message_with(REMEDY_FLAGS.get((remedy.argument, remedy.value)))
    return str(err)


def _hint(message: str, extra: str | None) -> str:
    """``message`` plus ``extra`` unless the message already says it."""
    if not extra or extra.strip().rstrip(".?") in message:
        return message
    return f"{message.rstrip()} {extra}"


def _version_of(path: Path | None) -> str | None:
    """``NAME@VERSION`` when ``path`` lies in a registry's ``<name>/<version>/`` folder."""
    if path is None:
        return None
    from dwp_hub.registry._names import Version, validate_name  # light: no torch

    for folder in (path, *path.parents[:2]):
        try:
            Version.parse(folder.name)
            return f"{validate_name(folder.parent.name)}@{folder.name}"
        except (E.DwpHubError, ValueError):
            continue
    return None


def _integrity(err: E.IntegrityError) -> str:
    msg = _text(err)
    if err.expected and err.actual and err.actual not in msg:
        msg += f" (expected {err.expected}, found {err.actual})"
    spec = _version_of(err.path)
    if spec is None or "dwp-hub remove" in msg:
        return msg
    embedded = constants.embedded_registry().resolve()
    if err.path is not None and embedded in Path(os.path.realpath(err.path)).parents:  # realpath: loops too
        return msg + " It is in the registry shipped with dwp-hub: reinstall it (pip install --force-reinstall dwp-hub)."
    return msg + (f" Remove the damaged local copy with 'dwp-hub remove {spec} --yes', then publish or pull it "
                  "again; 'dwp-hub verify' checks every local prior.")


def _not_found(err: E.PriorNotFoundError) -> str:
    msg = _text(err)
    if err.candidates and not any(c in msg for c in err.candidates):
        msg = _hint(msg, f"Did you mean {', '.join(err.candidates)}?")
    return msg


def _card(err: E.CardError) -> str:
    msg = _text(err)
    if err.path is not None and str(err.path) not in msg and err.path.name not in msg:
        msg = f"{err.path}: {msg}"
    if err.field and err.field not in msg:
        msg += f" (card field {err.field})"
    return msg


def _recipe(err: E.RecipeError) -> str:
    msg = _text(err)
    if err.path is not None and str(err.path) not in msg:
        msg = f"{err.path}: {msg}"
    if err.key and err.key not in msg:
        msg += f" (recipe key {err.key})"
    return msg


def _output(err: E.OutputPathError) -> str:
    msg = _text(err)
    if err.path is not None and str(err.path) not in msg and str(err.path) != ".":
        msg = f"--out {err.path}: {msg}"
    return msg


def _hub(err: E.HubError) -> str:
    msg = _text(err)
    repo, rev = getattr(err, "repo_id", None), getattr(err, "revision", None)
    if repo and repo not in msg:
        msg = f"{repo}{'@' + rev if rev else ''}: {msg}"
    if isinstance(err, E.AuthenticationError):
        msg = _hint(msg, "Log in with 'hf auth login' or set HF_TOKEN to a token with write access.")
    elif isinstance(err, E.OfflineError):
        msg = _hint(msg, "Connect to the network (and unset DWP_HUB_OFFLINE / HF_HUB_OFFLINE), or use a prior "
                         "that is already cached.")
    return msg


@dataclass(frozen=True)
class ErrorFormat:
    """How one error type is shown: a label, its message formatted from the error's fields, an exit status."""

    label: str
    message: Callable[[Any], str]
    exit_code: int


#: Error type -> how to show it. The most specific type that matches wins (an error's MRO is walked).
ERROR_FORMATS: dict[type[BaseException], ErrorFormat] = {
    E.OutputPathError: ErrorFormat("Error", _output, USAGE),
    E.InvalidNameError: ErrorFormat("Error", _text, FAILURE),
    E.InvalidVersionError: ErrorFormat("Error", _text, FAILURE),
    E.PriorNotFoundError: ErrorFormat("Error", _not_found, FAILURE),
    E.IntegrityError: ErrorFormat("Error", _integrity, FAILURE),
    E.CardError: ErrorFormat("Error", _card, FAILURE),
    E.RecipeError: ErrorFormat("Error", _recipe, FAILURE),
    E.HubError: ErrorFormat("Error", _hub, FAILURE),
    E.DwpHubError: ErrorFormat("Error", _text, FAILURE),
}
_UNEXPECTED = ErrorFormat("Unexpected error", str, FAILURE)


def error_format(err: BaseException) -> ErrorFormat:
    """The table row for ``err`` (the nearest class in its MRO), or the one for unexpected errors."""
    for cls in type(err).__mro__:
        if cls in ERROR_FORMATS:
            return ERROR_FORMATS[cls]
    return _UNEXPECTED


def report(err: BaseException) -> int:
    """Print ``err`` on stderr as the table says; return its exit status."""
    fmt = error_format(err)
    try:
        body = fmt.message(err)
    except Exception:  # noqa: BLE001 - a formatter must never hide the error itself
        body = str(err)
    label = fmt.label if fmt is not _UNEXPECTED else f"{fmt.label} ({type(err).__name__})"
    err_console.print(f"[bold red]{escape(label)}:[/bold red] {escape(body)}", markup=True, highlight=False,
                      soft_wrap=True)
    if fmt is _UNEXPECTED:
        err_console.print("Run again with --debug for the traceback.")
    return fmt.exit_code


def debugging() -> bool:
    return _state["debug"] or constants.debug()


def handle_errors(fn: F) -> F:
    """Run a command; report its errors through :data:`ERROR_FORMATS` (traceback only when debugging)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit, *_CLICK_ERRORS):
            raise  # click prints usage errors itself (exit 2)
        except KeyboardInterrupt:
            if debugging():
                raise
            err_console.print("[red]Interrupted.[/red]")
            raise typer.Exit(INTERRUPTED) from None
        except Exception as err:
            if debugging():
                raise
            raise typer.Exit(report(err)) from None

    return wrapper  # type: ignore[return-value]
