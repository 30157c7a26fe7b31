"""scikit-learn's bundled handwritten digits (1,797 images, 8×8, 17 grey levels).

They stand in for MNIST, which cannot be downloaded here: upsampled bilinearly to 32×32
and scaled to [0, 1]. The held-out split is fixed (stratified, 25 %, seed 0) so every model
of the zoo reports its test accuracy on the same images.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

#: Per-channel statistics of the 32×32 training split, on the [0, 1] scale.
DIGITS_MEAN = (0.3052,)
DIGITS_STD = (0.3235,)
TEST_FRACTION = 0.25
SPLIT_SEED = 0


@lru_cache(maxsize=4)
def _load(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.clamp_(0.0, 1.0).numpy()
    labels = digits.target.astype(np.int64)
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(index, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels)
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]


def load_digits32(split: str = "test", size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, size, size) in [0, 1] and labels (N,) of the ``train``, ``test`` or ``all`` split."""
    xtr, ytr, xte, yte = _load(size)
    if split == "train":
        x, y = xtr, ytr
    elif split == "test":
        x, y = xte, yte
    elif split == "all":
        x, y = np.concatenate([xtr, xte]), np.concatenate([ytr, yte])
    else:
        raise ValueError(f"unknown split {split!r}")
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
