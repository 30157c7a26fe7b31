"""What the per-layer plots share (the Deformation and Smoothness docks): the curves' colours and
the layer names as axis ticks."""

from __future__ import annotations

#: One colour per measured model or setting, in the order they were added.
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def layer_ticks(names: list[str], most: int = 14) -> list[list[tuple[int, str]]]:
    """Axis ticks: every layer as a tick, at most ``most`` of them labelled (the rest unlabelled)."""
    step = max(1, -(-len(names) // most))
    major = [(i, n) for i, n in enumerate(names) if i % step == 0]
    minor = [(i, "") for i in range(len(names)) if i % step]
    return [major, minor]
