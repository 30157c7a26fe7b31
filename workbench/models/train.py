"""Training a classifier on the bundled digits, as a job.

Used by ``workbench zoo train`` for the bundled models and by the deformation studies
(optionally on random labels, Ruderman et al. sect. 5, or on synthetic data, sect. 4.3).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench.jobs import CancelToken, Job, Log, Step


def train_classifier(module: nn.Module, *, epochs: int = 10, seed: int = 0, lr: float = 1e-3,
                     batch_size: int = 64, weight_decay: float = 0.0, random_labels: bool = False,
                     mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                     train_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                     test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                     augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                     device: str | torch.device = "cpu", cancel: CancelToken | None = None) -> Job:
    """Adam on cross-entropy; images in [0, 1] are normalised by ``mean``/``std`` first.

    Without ``train_data`` the digits train/test split is used. ``augment(batch, generator)``,
    if given, transforms each training batch (on [0, 1] images) with the seeded generator. Returns a dict with
    ``train_accuracy``, ``test_accuracy`` and ``epochs``.
    """
    from workbench.data.digits import DIGITS_MEAN, DIGITS_STD, load_digits32

    device = torch.device(device)
    cancel = cancel or CancelToken()
    if train_data is None:
        train_data = load_digits32("train")
        test_data = test_data if test_data is not None else load_digits32("test")
    mean = torch.tensor(mean if mean is not None else DIGITS_MEAN).view(1, -1, 1, 1).to(device)
    std = torch.tensor(std if std is not None else DIGITS_STD).view(1, -1, 1, 1).to(device)
    g = torch.Generator().manual_seed(seed)
    x_train, y_train = train_data
    if random_labels:
        y_train = torch.randint(0, int(y_train.max()) + 1, y_train.shape, generator=g)
    x_train, y_train = x_train.to(device), y_train.to(device)
    module.to(device)
    opt = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(y_train)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    total = epochs * steps_per_epoch
    step = 0
    for epoch in range(epochs):
        module.train()
        order = torch.randperm(n, generator=g).to(device)
        for i in range(0, n, batch_size):
            cancel.check()
            idx = order[i:i + batch_size]
            xb = x_train[idx] if augment is None else augment(x_train[idx], g)
            logits = module((xb - mean) / std)
            loss = F.cross_entropy(logits, y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            yield Step(step, total, {"loss": loss.item()}, stage=f"epoch {epoch + 1}/{epochs}")
    result: dict[str, Any] = {"epochs": epochs, "train_accuracy": accuracy(module, (x_train, y_train), mean, std)}
    if test_data is not None:
        result["test_accuracy"] = accuracy(module, test_data, mean, std)
    yield Log(f"trained {epochs} epochs: " + ", ".join(f"{k}={v:.4f}" for k, v in result.items() if k != "epochs"))
    return result


@torch.no_grad()
def accuracy(module: nn.Module, data: tuple[torch.Tensor, torch.Tensor], mean: torch.Tensor, std: torch.Tensor,
             batch_size: int = 256) -> float:
    module.eval()
    x, y = data
    device = mean.device
    correct = 0
    for i in range(0, len(y), batch_size):
        logits = module((x[i:i + batch_size].to(device) - mean) / std)
        correct += int((logits.argmax(1).cpu() == y[i:i + batch_size].cpu()).sum())
    return correct / max(len(y), 1)
