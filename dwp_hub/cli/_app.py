"""The ``dwp-hub`` application: every command group wired in ONE place.

Command groups (one module each; none imports this module):

* registry (:mod:`._registry`): list, info, verify, sample, remove
* build (:mod:`._build`): train-source, harvest, fit, publish, build
* hub (:mod:`._hub`): push, pull
* vi (:mod:`._vi`): vi

Options shared by several commands are defined once in :mod:`._options`; errors are reported by
the table in :mod:`._errors`. ``--debug``, ``-h``/``--help`` are accepted before and after the
subcommand; ``--version`` before it.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import typer

from dwp_hub.cli import _build, _hub, _registry, _vi
from dwp_hub.cli._console import console
from dwp_hub.cli._errors import _state, handle_errors
from dwp_hub.cli._options import DebugOpt

app = typer.Typer(name="dwp-hub", help="A hub of pretrained deep weight priors.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False,
                  context_settings={"help_option_names": ["-h", "--help"]})

#: (command name, function, help panel) of every command, in the order ``--help`` lists them.
COMMANDS: list[tuple[str, Callable[..., Any], str]] = [
    ("list", _registry.list_cmd, "Registry"),
    ("info", _registry.info_cmd, "Registry"),
    ("verify", _registry.verify_cmd, "Registry"),
    ("sample", _registry.sample_cmd, "Registry"),
    ("remove", _registry.remove_cmd, "Registry"),
    ("train-source", _build.train_source_cmd, "Build"),
    ("harvest", _build.harvest_cmd, "Build"),
    ("fit", _build.fit_cmd, "Build"),
    ("publish", _build.publish_cmd, "Build"),
    ("build", _build.build_cmd, "Build"),
    ("push", _hub.push_cmd, "Hub"),
    ("pull", _hub.pull_cmd, "Hub"),
    ("vi", _vi.vi_cmd, "Variational inference"),
]


def _with_debug(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with a ``--debug`` option added (so it works after the subcommand too) and errors
    reported by :func:`~dwp_hub.cli._errors.handle_errors`."""
    guarded = handle_errors(fn)

    @wraps(fn)
    def command(*args: Any, debug: bool = False, **kwargs: Any) -> Any:
        if debug:
            _state["debug"] = True
        return guarded(*args, **kwargs)

    sig = inspect.signature(fn, eval_str=True)
    debug = inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=DebugOpt)
    command.__signature__ = sig.replace(parameters=[*sig.parameters.values(), debug])  # type: ignore[attr-defined]
    command.__annotations__ = {**{p.name: p.annotation for p in sig.parameters.values()}, "debug": DebugOpt,
                               "return": sig.return_annotation}
    del command.__wrapped__  # typer reads the signature above, not fn's
    return command


for _name, _fn, _panel in COMMANDS:
    app.command(_name, rich_help_panel=_panel)(_with_debug(_fn))


def _print_version(value: bool) -> None:
    if value:
        from dwp_hub._version import __version__

        console.print(f"dwp-hub {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    debug: DebugOpt = False,
    version: bool = typer.Option(False, "--version", "-V", callback=_print_version, is_eager=True,
                                 help="Print the dwp-hub version and exit."),
) -> None:
    _state["debug"] = debug


def main() -> None:
    """Console-script entry point."""
    app(prog_name="dwp-hub")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
