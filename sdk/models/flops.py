"""How much arithmetic one image costs a model: the numerator of the benchmark's roofline column."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def model_macs(model: nn.Module, size: int = 224) -> int:
    """Multiply-accumulates of one ``size`` x ``size`` image through ``model`` (convolutions,
    matrix products and attention, as torch's flop counter sees them: FLOPs / 2)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(1, 3, size, size))
    return int(counter.get_total_flops() // 2)
