"""The ``dwp-hub`` command line (typer + rich), wired in :mod:`dwp_hub.cli._app`. Heavy imports
happen inside commands, so ``dwp-hub list`` and ``info`` never import torch."""

from dwp_hub.cli._app import app, main

__all__ = ["app", "main"]
