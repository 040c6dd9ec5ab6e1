"""SRGAN's perceptual loss network: VGG19's `features` stack (torchvision's exact layer indices),
loaded from a local weights file (the loss itself: `mrisr.losses.perceptual`).

Features are VGG19's `features` without its last layer (the final max-pool), i.e. up to relu5_4
("VGG54" in SRGAN). No file configured → no perceptual term (`train.gan` says so in its log and
card): random or other features would be a silent substitute. These machines
cannot download torchvision's weights (torchvision is not even installed), so the network is
rebuilt here and loaded from a local file:

* a torchvision `vgg19` state_dict (e.g. `vgg19-dcbb9e9d.pth`; keys `features.N.*`, the
  classifier keys are ignored), or
* a state_dict of the features stack alone (keys `N.weight`, `N.bias`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mrisr.errors import InputError

# torchvision's VGG19 ("E") configuration: conv widths, "M" = 2×2 max-pool.
VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                    512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
FEATURE_LAYERS = 36  # features[:36] = up to relu5_4, all but the last max-pool
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features(n_layers: int = FEATURE_LAYERS) -> nn.Sequential:
    """VGG19 `features[:n_layers]` with torchvision's module indices (so state_dicts load)."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            c_in = int(v)
    return nn.Sequential(*layers[:n_layers])


def features_state_dict(state: dict, n_layers: int) -> dict[str, torch.Tensor]:
    """The `features[:n_layers]` entries of a torchvision vgg19 or features-only state_dict."""
    prefix = "features." if any(k.startswith("features.") for k in state) else ""
    out = {}
    for k, v in state.items():
        if not k.startswith(prefix):
            continue
        name = k[len(prefix):]
        index = name.split(".", 1)[0]
        if index.isdigit() and int(index) < n_layers:
            out[name] = v
    return out


def load_vgg19_features(path: str | Path, n_layers: int = FEATURE_LAYERS) -> nn.Sequential:
    """Frozen VGG19 features from a local weights file; InputError naming the file if it is
    missing, unreadable or not VGG19 weights."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "VGG19 weights file not found (train.vgg_weights)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or unsafe pickle
        raise InputError(path, f"unreadable VGG19 weights ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict):
        raise InputError(path, "not a state_dict (expected a dict of tensors)")
    net = vgg19_features(n_layers)
    try:
        net.load_state_dict(features_state_dict(state, n_layers), strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise InputError(path, f"not VGG19 weights ({first[1].strip() if len(first) > 1 else first[0]})") from None
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()
