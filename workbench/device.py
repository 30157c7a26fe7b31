"""Device choice: cuda, then mps, then cpu. Nothing else in the core assumes a device."""

from __future__ import annotations

import torch

from workbench.errors import UserError


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
    if name in (None, "", "auto"):
        return torch.device(available_devices()[0])
    base = str(name).split(":")[0]
    if base not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device '{name}': use auto, cpu, cuda or mps")
    if base not in available_devices():
        raise UserError(f"device '{name}' is not available here: use one of {', '.join(available_devices())}")
    return torch.device(name)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def memory_report(device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        return {"allocated_mb": torch.cuda.memory_allocated(device) / 2**20,
                "peak_mb": torch.cuda.max_memory_allocated(device) / 2**20}
    return {}
