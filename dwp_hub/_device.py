"""Where to compute: the ``device`` argument of the training functions and ``--device`` of the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dwp_hub.errors import ConfigError

if TYPE_CHECKING:
    import torch

#: The device types dwp-hub computes on.
DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: Any = None) -> torch.device:
    """``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, a ``torch.device``; None: the CPU) as a
    ``torch.device`` that this machine has.

    Raises:
        ConfigError: not a device name, a device type dwp-hub does not compute on, or a device this machine
            lacks (no CUDA, a CUDA index beyond the devices there); the message names the device.
    """
    import torch

    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{str(device)[:40]!r} is not a device; use {', '.join(DEVICE_TYPES[:2])}, cuda:N or "
                          f"{DEVICE_TYPES[2]}.") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(device)!r}: no CUDA device is available here (torch "
                              f"{torch.__version__}, torch.cuda.is_available() is False); use cpu.")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {str(device)!r}: this machine has {count} CUDA device(s), cuda:0 to "
                              f"cuda:{count - 1}.")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {str(device)!r}: the Apple MPS backend is not available here; use cpu.")
    elif dev.type != "cpu":
        raise ConfigError(f"device {str(device)!r}: dwp-hub computes on {', '.join(DEVICE_TYPES)}, not {dev.type}.")
    return dev
