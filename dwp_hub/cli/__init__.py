"""The ``dwp-hub`` command line (typer + rich). Heavy imports happen inside commands, so
``dwp-hub list`` and ``info`` never import torch."""

from dwp_hub.cli._app import app, main
from dwp_hub.cli import _vi  # noqa: F401,E402  (registers `dwp-hub vi`)
from dwp_hub.cli import _hub  # noqa: F401,E402 - registers pull / push

__all__ = ["app", "main"]
