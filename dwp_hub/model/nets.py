"""The paper's networks: MNIST classifiers (``fconv``), a 3x3 variant, and the CIFAR net.

Every net is described by a small JSON-able config so checkpoints rebuild their module from
metadata alone (no pickle).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from dwp_hub.errors import ConfigError, CheckpointError


@dataclass(frozen=True)
class NetConfig:
    """Architecture of a classifier.

    ``arch="fconv"``: Conv(1→h0, 7) → LeakyReLU → MaxPool2 → Conv(h0→h1, 5) → LeakyReLU →
    MaxPool2 → Linear(h1·9 → 10) (paper Table 2; source nets use 256/512, the VI net 32/128).

    ``arch="fconv3"``: three 3x3 blocks Conv(pad 1) → LeakyReLU → MaxPool2 with widths
    ``widths`` (28→14→7→3), then Linear(w3·9 → 10): the source network of the 3x3 priors.

    ``arch="cifar"``: the paper's Table 2 CIFAR net on 3x32x32 inputs, ``widths=(c1, c2, c3, fc)``
    (paper: 128, 256, 256, 512): Conv(3→c1, 7) → LeakyReLU → MaxPool2 (32→26→13) →
    Conv(c1→c2, 5) → LeakyReLU (→9) → Conv(c2→c3, 5) → LeakyReLU (→5) → Linear(c3·25 → fc) →
    LeakyReLU → Linear(fc → num_classes). No padding, and a single max-pool after the first conv
    (the paper's text: "after the first convolutional layer a max-pooling layer was applied"),
    which leaves a 5x5 map and gives exactly Table 2's 5,759,498 parameters for 10 classes
    (18,944 + 819,456 + 1,638,656 + 3,277,312 + 5,130); a second pool or "same" padding would
    not. The Linear(c3·25 → fc) equals a 5x5
    conv on the 5x5 map, which is why the text speaks of four conv layers. Modules 0 and 3 are
    the 7x7 and first 5x5 conv (``0.weight``, ``3.weight``, as in ``fconv``), module 5 the second 5x5.
    """

    arch: str = "fconv"
    widths: tuple[int, ...] = (32, 128)
    in_channels: int = 1
    num_classes: int = 10

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetConfig:
        try:
            channels = d.get("in_channels", 3 if d["arch"] == "cifar" else 1)
            return cls(d["arch"], tuple(int(w) for w in d["widths"]), int(channels),
                       int(d.get("num_classes", 10)))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"Malformed network config {d!r}: {err}") from err


#: Input side (pixels) each architecture expects.
INPUT_SIDE = {"fconv": 28, "fconv3": 28, "cifar": 32}


def input_shape(config: NetConfig) -> tuple[int, int, int]:
    """``(channels, height, width)`` of one input image for ``config``."""
    side = INPUT_SIDE.get(config.arch)
    if side is None:
        raise ConfigError(f"Unknown arch {config.arch!r}; use one of {', '.join(INPUT_SIDE)}.")
    return config.in_channels, side, side


def build_net(config: NetConfig) -> nn.Sequential:
    """Build the classifier described by ``config`` (28x28 inputs; 32x32 for ``cifar``)."""
    act = nn.LeakyReLU
    if config.arch == "cifar":
        if len(config.widths) != 4:
            raise ConfigError("cifar takes four widths (conv1, conv2, conv3, fc), e.g. 128,256,256,512.")
        c1, c2, c3, fc = config.widths
        return nn.Sequential(
            nn.Conv2d(config.in_channels, c1, 7), act(), nn.MaxPool2d(2),  # 32 -> 26 -> 13
            nn.Conv2d(c1, c2, 5), act(),  # 13 -> 9
            nn.Conv2d(c2, c3, 5), act(),  # 9 -> 5
            nn.Flatten(), nn.Linear(c3 * 25, fc), act(), nn.Linear(fc, config.num_classes),
        )
    if config.arch == "fconv":
        if len(config.widths) != 2:
            raise ConfigError("fconv takes two widths (h0, h1).")
        h0, h1 = config.widths
        return nn.Sequential(
            nn.Conv2d(config.in_channels, h0, 7), act(), nn.MaxPool2d(2),
            nn.Conv2d(h0, h1, 5), act(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(h1 * 9, config.num_classes),
        )
    if config.arch == "fconv3":
        layers: list[nn.Module] = []
        c = config.in_channels
        for w in config.widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), act(), nn.MaxPool2d(2)]
            c = w
        side = 28
        for _ in config.widths:
            side //= 2
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * side * side, config.num_classes))
    raise ConfigError(f"Unknown arch {config.arch!r}; use 'fconv', 'fconv3' or 'cifar'.")


def xavier_init_(net: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Xavier-uniform weights and zero biases for every conv/linear layer (the paper's init)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            fan_out = m.weight.shape[0] * m.weight[0][0].numel()
            bound = (6.0 / (fan_in + fan_out)) ** 0.5
            with torch.no_grad():
                m.weight.uniform_(-bound, bound, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
    return net
