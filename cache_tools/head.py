"""A linear head fitted on teacher embeddings, for encoder teachers without a task head."""

from __future__ import annotations

import numpy as np


def fit_linear_head(
    features: np.ndarray, labels: np.ndarray, num_classes: int,
    l2: float = 1e-4, iterations: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression (L-BFGS, full batch, deterministic on CPU).

    Features are standardized for the fit; the standardization is folded into
    the returned ``weight [C, D]`` and ``bias [C]`` (float32), which apply to
    raw features: ``logits = features @ weight.T + bias``.
    """
    import torch

    x = torch.as_tensor(np.asarray(features, np.float64))
    y = torch.as_tensor(np.asarray(labels, np.int64))
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    torch.manual_seed(0)
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], max_iter=iterations, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight.T + bias, y) + l2 * (weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        w = weight / std
        b = bias - (w * mean).sum(1)
    return w.numpy().astype(np.float32), b.numpy().astype(np.float32)
