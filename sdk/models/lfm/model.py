"""LFM: a local-focus detector of generated and edited faces, trained from scratch.

The image enters as its neighbouring-pixel residual NPR = x - up(down(x)) (fixed, no weights):
what a generator's upsampling leaves between neighbouring pixels, with the face's content
mostly cancelled. A small CNN (the salience network) maps it to 128 feature maps at 1/8 of
the crop, a 1x1 convolution reduces them to 64, and each of those is pooled by the mean of its
K = 16 largest positions (Top-K pooling) instead of the mean of all: a forgery trace covers a
small part of the face, and a global average dilutes it with every clean position. A linear
head reads the 64 pooled values.

In training, rank-based linear dropout drops the r-th largest of the K values with probability
rising linearly from 0.1 (r = 0) to 0.3 (r = K - 1), so the model cannot lean on one spot;
``selection="random-k"`` instead trains on K random positions of each map (an option, off by
default).

Because the head is linear in the pooled values and each pooled value is a mean of selected
positions, every position's share of the fake-minus-real logit is exact: that share, summed
over channels, is the salience map :meth:`LFM.explain` returns. Training can supervise the same
per-position shares with the self-blends' masks (``train.LFMConfig.localization_weight``), so the
map the user sees points at the blended region rather than wherever the residual is loud.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ...errors import ArtifactError
from ...zoo import ModelSpec
from ..contract import DetectorModel, ExportHints
from ..pooling import ranked_top_k
from ..tensors import load_checked_tensors

TOP_K = 16
WIDTHS = (16, 32, 64, 128)  # stem, then three blocks: 1/2, 1/4, 1/8, 1/8 of the crop
REDUCED = 64


def npr(x: torch.Tensor) -> torch.Tensor:
    """Neighbouring-pixel residual ``x - up(down(x))``: nearest 2x down- then up-sampling, so
    each 2x2 cell loses its top-left pixel's value. Written as a strided slice and a nearest
    resize, which every target lowers."""
    return x - F.interpolate(x[:, :, ::2, ::2], scale_factor=2.0, mode="nearest")


class ConvBNReLU(nn.Module):
    """3x3 conv (symmetric padding) -> BatchNorm -> ReLU; the BatchNorm folds away for export."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv, self.bn = fuse_conv_bn_eval(self.conv.eval(), self.bn.eval()), nn.Identity()


class SalienceNet(nn.Module):
    """Small conv blocks on the residual: ``(B, 3, S, S) -> (B, 128, S/8, S/8)``."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        self.stem = ConvBNReLU(3, widths[0], stride=2)
        strides = (2, 2, 1)
        self.blocks = nn.Sequential(*(ConvBNReLU(a, b, s) for a, b, s in zip(widths, widths[1:], strides)))
        self.out_channels = widths[-1]

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(residual))


def rank_dropout_keep(k: int, low: float = 0.1, high: float = 0.3) -> torch.Tensor:
    """Keep probability of each rank 0..k-1 under rank-based linear dropout."""
    return 1.0 - torch.linspace(low, high, k)


class TopKPool(nn.Module):
    """Mean of each channel's ``k`` largest positions: ``(B, C, H, W) -> (B, C)``.

    Training drops ranks (:func:`rank_dropout_keep`) and, with ``selection="random-k"``, pools
    ``k`` random positions instead; evaluation is the plain top-k mean, computed by
    :func:`ranked_top_k` so the exported graph holds no sort.
    """

    def __init__(self, k: int = TOP_K, selection: str = "top-k"):
        super().__init__()
        if selection not in ("top-k", "random-k"):
            raise ValueError(f"selection must be 'top-k' or 'random-k', not {selection!r}")
        self.k, self.selection = k, selection

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        flat = maps.flatten(2)
        if not self.training:
            return ranked_top_k(flat, self.k)[0].mean(-1)
        if self.selection == "random-k":
            values = flat.gather(-1, torch.rand(flat.shape, device=flat.device).topk(self.k, dim=-1).indices)
        else:
            values = flat.topk(self.k, dim=-1).values
        keep = (torch.rand_like(values) < rank_dropout_keep(self.k).to(values.device)).to(values.dtype)
        return (values * keep).sum(-1) / keep.sum(-1).clamp_min(1.0)

    def selected(self, maps: torch.Tensor) -> torch.Tensor:
        """0/1 mask of the positions the evaluation pooling reads, per channel."""
        return ranked_top_k(maps.flatten(2), self.k)[1].view_as(maps)


class LFM(DetectorModel):
    """``forward(pixels) -> logits (B, 2)``; class 1 is *fake*."""

    heatmap_kind = "salience"

    def __init__(self, k: int = TOP_K, selection: str = "top-k", num_classes: int = 2):
        super().__init__()
        self.backbone = SalienceNet()
        self.reduce = nn.Conv2d(self.backbone.out_channels, REDUCED, 1)
        self.pool = TopKPool(k, selection)
        self.head = nn.Linear(REDUCED, num_classes)

    def maps(self, pixels: torch.Tensor) -> torch.Tensor:
        """The reduced salience maps Top-K reads: ``(B, 64, S/8, S/8)``."""
        return self.reduce(self.backbone(npr(pixels)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.maps(pixels)))

    def logits_and_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.pool(self.maps(pixels))
        return self.head(pooled), F.normalize(pooled, p=2, dim=-1)

    def position_shares(self, maps: torch.Tensor, selected: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, S/8, S/8)``: each position's share of the fake-minus-real logit, counting the
        channels in ``selected`` (the pooling's picks: the exact share) or, without it, every
        channel (the dense map training supervises)."""
        direction = (self.head.weight[1] - self.head.weight[0]).view(1, -1, 1, 1)
        weighted = maps * direction if selected is None else maps * selected * direction
        return weighted.sum(1) / self.pool.k

    @torch.no_grad()
    def explain(self, pixels: torch.Tensor) -> torch.Tensor:
        """Each position's exact share of the fake-minus-real logit (``(B, S/8, S/8)``): the
        head's weight difference times the value, over the channels whose top-k picked it."""
        maps = self.maps(pixels)
        return self.position_shares(maps, self.pool.selected(maps))

    def export_hints(self) -> ExportHints:
        # INT8 covers the salience network; the 1x1 reduction, Top-K and the head stay float
        # (cheap, and Top-K's ranks are what quantization error would reorder).
        return ExportHints(quantized="backbone", stem=("backbone.stem",))

    def fold_for_inference(self) -> None:
        for module in self.modules():
            if isinstance(module, ConvBNReLU):
                module.fold_batchnorm()


def build(spec: ModelSpec, pretrained: bool = True) -> LFM:
    """The family's builder: LFM from its trained tensors (no pretrained backbone: every weight
    trains from scratch)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LFM()
    if pretrained and spec.weights:
        state = load_checked_tensors(spec, f"train them with `deepfake-sdk train {spec.name} --data <data folder>`")
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
            raise ArtifactError(f"{spec.weights} does not fit LFM: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()
