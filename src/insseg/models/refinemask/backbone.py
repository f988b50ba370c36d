"""ResNet-50/101 backbone as mmdet configures it for RefineMask (``style='pytorch'``, ``frozen_stages=1``,
``norm_eval=True``): torchvision's ResNet layout and parameter names (stride on the 3x3 conv), plain
``BatchNorm2d`` kept in eval mode (running statistics never updated; affine parameters still trained beyond
the frozen stem and first stage). Returns C2..C5.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from torch import Tensor
from torchvision.models import resnet50, resnet101

from insseg.errors import CheckpointError

RESNETS = {50: resnet50, 101: resnet101}


class ResNet(nn.Module):
    def __init__(self, depth: int = 50, frozen_stages: int = 1, norm_eval: bool = True) -> None:
        super().__init__()
        if depth not in RESNETS:
            raise ValueError(f"RefineMask's ResNet depth must be one of {sorted(RESNETS)}, got {depth}")
        self.depth = depth
        net = RESNETS[depth](weights=None)
        self.conv1 = net.conv1
        self.bn1 = net.bn1
        self.relu = net.relu
        self.maxpool = net.maxpool
        self.layer1 = net.layer1
        self.layer2 = net.layer2
        self.layer3 = net.layer3
        self.layer4 = net.layer4
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._freeze_stages()

    def _frozen_modules(self) -> list[nn.Module]:
        mods: list[nn.Module] = []
        if self.frozen_stages >= 0:
            mods += [self.conv1, self.bn1]
        for i in range(1, self.frozen_stages + 1):
            mods.append(getattr(self, f"layer{i}"))
        return mods

    def _freeze_stages(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> ResNet:
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs

    def load_torchvision_weights(self, path: str | Path) -> None:
        """Load an ImageNet ResNet state dict of this depth in torchvision's layout (``fc.*`` ignored)."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(
                f"backbone weights {path} not found: expected torchvision's ImageNet ResNet-{self.depth} state "
                f"dict (e.g. resnet{self.depth}-*.pth from torchvision's model zoo)"
            )
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
            raise CheckpointError(f"cannot read backbone weights {path}: {e}") from None
        if isinstance(sd, dict) and "state_dict" in sd:
            sd = sd["state_dict"]
        sd = {k[len("backbone.") :] if k.startswith("backbone.") else k: v for k, v in sd.items()}
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
        own = self.state_dict()
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        bad_shape = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
        if missing or unexpected or bad_shape:
            raise CheckpointError(
                f"backbone weights {path} do not fit ResNet-{self.depth}: missing {missing[:10]} ({len(missing)}), "
                f"unexpected {unexpected[:10]} ({len(unexpected)}), wrong shape {bad_shape[:10]}"
            )
        self.load_state_dict(sd, strict=True)
