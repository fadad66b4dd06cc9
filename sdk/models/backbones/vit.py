"""A plain PyTorch Vision Transformer that speaks Hugging Face's DINOv2 tensor names.

One module serves DINOv2 (layer-scale, exact GELU, final LayerNorm) and CLIP's vision tower
(pre-LayerNorm, quick-GELU, no layer-scale): the differences are flags in :class:`ViTConfig`,
and CLIP checkpoints are renamed into this layout on load (see ``hf.py``). Writing the model
ourselves keeps it exportable by every edge toolchain (no timm, no transformers at run time).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..contract import ExportHints


@dataclass(frozen=True)
class ViTConfig:
    """Shape and flavour of a ViT; the defaults are DINOv2 ViT-S/14."""

    hidden_size: int = 384
    num_layers: int = 12
    num_heads: int = 6
    intermediate_size: int = 1536
    patch_size: int = 14
    # Grid the stored position embeddings were trained at (DINOv2: 518 px -> 37x37).
    pretrain_image_size: int = 518
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu"  # "gelu" (exact, erf) or "quick_gelu" (CLIP)
    layerscale: bool = True
    pre_layernorm: bool = False  # CLIP normalises the embeddings before the encoder
    patch_bias: bool = True  # CLIP's patch embedding has no bias

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def pretrain_grid(self) -> int:
        return self.pretrain_image_size // self.patch_size


def _activation(name: str) -> nn.Module:
    if name == "gelu":
        return nn.GELU()
    if name == "quick_gelu":
        return _QuickGELU()
    raise ValueError(f"unknown hidden_act {name!r}; expected 'gelu' or 'quick_gelu'")


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class PatchEmbeddings(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.projection = nn.Conv2d(
            3, cfg.hidden_size, cfg.patch_size, stride=cfg.patch_size, bias=cfg.patch_bias
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.projection(pixels).flatten(2).transpose(1, 2)


class Embeddings(nn.Module):
    """CLS token + patch tokens + position embeddings, resized bicubically to the input grid."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.grid = cfg.pretrain_grid  # side of the patch grid the stored embeddings are for
        n_patches = cfg.pretrain_grid**2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.hidden_size))
        self.position_embeddings = nn.Parameter(torch.zeros(1, n_patches + 1, cfg.hidden_size))
        self.patch_embeddings = PatchEmbeddings(cfg)

    def interpolated_positions(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Position embeddings for a ``grid_h x grid_w`` patch grid.

        Matches Hugging Face's DINOv2 export: bicubic (a=-0.75), half-pixel centres, target
        size ``H // patch``; no antialiasing (the reference ONNX graph has none).
        """
        pos = self.position_embeddings
        g = self.grid
        if grid_h == g and grid_w == g:
            return pos
        cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
        d = patch_pos.shape[-1]
        patch_pos = patch_pos.reshape(1, g, g, d).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(
            patch_pos, size=(grid_h, grid_w), mode="bicubic", align_corners=False
        )
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, d)
        return torch.cat([cls_pos, patch_pos], dim=1)

    @torch.no_grad()
    def resize_to(self, grid: int) -> None:
        """Store the embeddings already resized for a ``grid x grid`` input (deployment size).

        Same numbers as resizing on every call, but no bicubic resize left in exported graphs
        (Core ML cannot run one, and it is wasted work everywhere else).
        """
        self.position_embeddings = nn.Parameter(self.interpolated_positions(grid, grid).clone())
        self.grid = grid

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        p = self.cfg.patch_size
        tokens = self.patch_embeddings(pixels)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        return tokens + self.interpolated_positions(pixels.shape[-2] // p, pixels.shape[-1] // p)


class SelfAttention(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.num_heads

        # 3-D (batch*heads, tokens, dim) products: 4-D broadcasting matmuls export as
        # expand_copy + bmm, and ExecuTorch runs those copies outside XNNPACK (slow).
        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, h, d // h).transpose(1, 2).reshape(b * h, n, d // h)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scale = 1.0 / math.sqrt(d // h)
        attn = torch.softmax(torch.bmm(q * scale, k.transpose(1, 2)), dim=-1)
        return torch.bmm(attn, v).reshape(b, h, n, d // h).transpose(1, 2).reshape(b, n, d)


class _Dense(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.dense = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


class Attention(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.attention = SelfAttention(cfg)
        self.output = _Dense(cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.attention(x))


class LayerScale(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.lambda1 = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.lambda1


class MLP(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.activation = _activation(cfg.hidden_act)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        d, eps = cfg.hidden_size, cfg.layer_norm_eps
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.attention = Attention(cfg)
        self.layer_scale1 = LayerScale(d) if cfg.layerscale else nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=eps)
        self.mlp = MLP(cfg)
        self.layer_scale2 = LayerScale(d) if cfg.layerscale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale1(self.attention(self.norm1(x)))
        return x + self.layer_scale2(self.mlp(self.norm2(x)))


# What an encoder returns (``Encoder.readout``): its final tokens, or a summary of every block's
# output: the CLS row ("blocks"), and with it the mean of the patch rows ("blocks+patches").
READOUTS = ("tokens", "blocks", "blocks+patches")


class Encoder(nn.Module):
    """The blocks. ``forward`` returns what ``readout`` names, so an exporter that traces the
    encoder alone (PT2E targets keep the stem float) captures a multi-block head's input in the
    same graph as the blocks, from one pass."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.layer = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.readout = "tokens"

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.layer:
            x = block(x)
        return x

    def summaries(self, x: torch.Tensor, patch_means: bool = True) -> torch.Tensor:
        """``(B, k * n_blocks, D)``: after each block, the residual stream's CLS row (before any
        final LayerNorm) and, with ``patch_means``, the mean of its patch rows, in block order."""
        rows = []
        for block in self.layer:
            x = block(x)
            rows.append(x[:, 0])
            if patch_means:
                rows.append(x[:, 1:].mean(dim=1))
        return torch.stack(rows, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.readout == "tokens":
            return self.tokens(x)
        return self.summaries(x, patch_means=self.readout == "blocks+patches")


class VisionTransformer(nn.Module):
    """ViT returning final-normalised tokens; ``tokens[:, 0]`` is the CLS feature.

    For DINOv2 that is ``Dinov2Model(...).last_hidden_state``; for CLIP the CLS row equals
    ``CLIPVisionModel(...).pooler_output``.
    """

    def __init__(self, cfg: ViTConfig = ViTConfig()):
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.pre_layernorm = (
            nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) if cfg.pre_layernorm else None
        )
        self.encoder = Encoder(cfg)
        self.layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.readout = "tokens"  # what forward returns (read_blocks)

    @property
    def feature_dim(self) -> int:
        return self.config.hidden_size

    def forward_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Final-normalised tokens. Through the encoder module itself while it returns tokens, so
        an exporter's hook on it sees the call and a converted graph swapped in for it runs."""
        x = self.embed(pixels)
        return self.layernorm(self.encoder(x) if self.readout == "tokens" else self.encoder.tokens(x))

    def read_blocks(self, readout: str) -> None:
        """Make :meth:`forward` return ``readout`` (one of :data:`READOUTS`; "tokens" restores
        the CLS feature)."""
        if readout not in READOUTS:
            raise ValueError(f"unknown readout {readout!r}; expected one of {READOUTS}")
        self.readout = self.encoder.readout = readout  # its own copy: an exporter may swap the encoder out

    def summaries(self, pixels: torch.Tensor, patch_means: bool = True) -> torch.Tensor:
        """Every block's CLS row (and patch mean): ``Encoder.summaries`` from pixels, whatever
        the readout (what a feature cache stores once per crop)."""
        return self.encoder.summaries(self.embed(pixels), patch_means)

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Tokens entering the first block (patch + position embeddings, CLIP's pre-norm)."""
        x = self.embeddings(pixels)
        return self.pre_layernorm(x) if self.pre_layernorm is not None else x

    def tokens_before(self, pixels: torch.Tensor, block: int) -> torch.Tensor:
        """Tokens entering block ``block``: what a budget recipe caches for a frozen prefix."""
        x = self.embed(pixels)
        for layer in self.encoder.layer[:block]:
            x = layer(x)
        return x

    def forward_from(self, tokens: torch.Tensor, block: int) -> torch.Tensor:
        """CLS feature from tokens entering block ``block`` (the rest of :meth:`forward`)."""
        for layer in self.encoder.layer[block:]:
            tokens = layer(tokens)
        return self.layernorm(tokens)[:, 0]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """CLS feature, shape ``(B, hidden_size)``; with a block readout (:meth:`read_blocks`),
        the block summaries ``(B, k * n_blocks, hidden_size)``."""
        if self.readout != "tokens":
            return self.encoder(self.embed(pixels))
        return self.forward_tokens(pixels)[:, 0]


def vit_export_hints(vit: VisionTransformer, prefix: str = "backbone", smoothing: bool = True) -> ExportHints:
    """Export hints of a model whose quantized part is this ViT at ``prefix``: the patch embedding
    (and pre-norm) as the stem, the encoder as the blocks, and, with ``smoothing``, each block's
    LayerNorm -> the Linears it feeds for SmoothQuant."""
    pairs = []
    for i in range(len(vit.encoder.layer)):
        base = f"{prefix}.encoder.layer.{i}"
        pairs.append((f"{base}.norm1", tuple(f"{base}.attention.attention.{p}" for p in ("query", "key", "value"))))
        pairs.append((f"{base}.norm2", (f"{base}.mlp.fc1",)))
    stem = (f"{prefix}.embeddings",) + ((f"{prefix}.pre_layernorm",) if vit.pre_layernorm is not None else ())
    return ExportHints(quantized=prefix, stem=stem, blocks=f"{prefix}.encoder",
                       smoothing=tuple(pairs) if smoothing else ())
