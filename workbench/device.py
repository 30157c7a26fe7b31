"""Device choice: cuda, then mps, then cpu. Nothing else in the core assumes a device."""

from __future__ import annotations

import torch

from workbench.errors import UserError
from workbench.limits import check_device_name

__all__ = ["available_devices", "check_device_name", "resolve_device", "describe", "memory_report"]


def available_devices() -> list[str]:
    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks the first of cuda, mps, cpu; an explicit name must be available."""
    if isinstance(name, torch.device):
        return name
    name = check_device_name(name)
    if name == "auto":
        return torch.device(available_devices()[0])
    device = torch.device(name)
    if device.type not in available_devices():
        raise UserError(f"device '{name}' is not available here: use one of {', '.join(available_devices())}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"device '{name}' does not exist: this machine has {torch.cuda.device_count()} GPU(s), "
                        f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return device


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def memory_report(device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        return {"allocated_mb": torch.cuda.memory_allocated(device) / 2**20,
                "peak_mb": torch.cuda.max_memory_allocated(device) / 2**20}
    return {}
