"""Weighted L2-regularised logistic regression on fixed features (a head on a frozen backbone).

The objective is scikit-learn's: ``0.5 * |w|^2 + C * sum_i s_i * log_loss_i`` (bias not
penalised), solved by L-BFGS (float32: the optimum moves logits by under 1e-3), so a ``C`` measured with scikit-learn means the same
here and the SDK needs no scikit-learn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LinearFit:
    coef: np.ndarray  # (D,) the fake-minus-real direction
    bias: float
    iterations: int
    converged: bool

    def decision(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """The logit of *fake* for each row of ``x``."""
        x = torch.as_tensor(x, dtype=torch.float32)
        return (x @ torch.from_numpy(self.coef) + self.bias).numpy()

    def two_class(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``Linear(D, 2)`` weights and bias giving the same softmax as :meth:`decision` (the
        real row is zero, so ``logit_fake - logit_real`` is the decision)."""
        weight = torch.zeros(2, len(self.coef), dtype=torch.float32)
        weight[1] = torch.from_numpy(self.coef).float()
        return weight, torch.tensor([0.0, self.bias], dtype=torch.float32)


def fit_logistic(x: np.ndarray | torch.Tensor, labels: np.ndarray, weights: np.ndarray | None = None,
                 c: float = 1.0, max_iter: int = 2000, tol: float = 1e-6) -> LinearFit:
    """Fit on rows ``x`` (N, D) with 0/1 ``labels`` and per-row ``weights`` (default 1)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
    s = torch.ones_like(y) if weights is None else torch.as_tensor(np.asarray(weights), dtype=torch.float32)
    scale = 1.0 / float(s.sum())  # the same minimiser, at the scale of a mean loss: ``tol`` means the same for any N
    coef = torch.zeros(x.shape[1], dtype=torch.float32, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS([coef, bias], lr=1, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = x @ coef + bias
        loss = c * (s * torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")).sum()
        loss = scale * (loss + 0.5 * coef.pow(2).sum())
        loss.backward()
        return loss

    opt.step(closure)
    state = opt.state[opt._params[0]]
    iterations = int(state.get("n_iter", 0))
    grad = torch.cat([coef.grad.abs().flatten(), bias.grad.abs().flatten()]).max().item()
    return LinearFit(coef.detach().numpy().copy(), float(bias.item()), iterations,
                     converged=grad <= tol * 10 or iterations < max_iter)
