"""Importing this module records that it ran (tests prove a refused spec imports nothing)."""

import os

import torch.nn as nn

IMPORTED = True
if os.environ.get("WORKBENCH_TEST_SENTINEL"):
    open(os.environ["WORKBENCH_TEST_SENTINEL"], "w").close()


class Net(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 14 * 14, 4))
