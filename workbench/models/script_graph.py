"""The layers of a TorchScript module whose forward is a chain of its children (see
:mod:`workbench.models.graph`): found from its TorchScript graph, checked by running them one after
another, and listed with the same receptive-field rules."""

from __future__ import annotations

import torch
import torch.nn as nn

from workbench.models.fields import Field, InputMismatch, _module_field, _Tensor, _unique, first_line


def _script_calls(module: nn.Module) -> list[str] | None:
    """The children a TorchScript module's forward calls, in order, when its graph is nothing but a
    chain of them (each called on the previous one's output, the last one's returned); else None."""
    try:
        graph = module.graph
        inputs = list(graph.inputs())
        outputs = list(graph.outputs())
    except (AttributeError, RuntimeError):
        return None
    if len(inputs) != 2 or len(outputs) != 1:
        return None
    me, current = inputs[0].unique(), inputs[1].unique()
    attributes: dict[int, str] = {}
    calls: list[str] = []
    children = dict(module.named_children())
    for node in graph.nodes():
        kind = node.kind()
        values = list(node.inputs())
        if kind == "prim::GetAttr" and len(values) == 1 and values[0].unique() == me and node.s("name") in children:
            attributes[node.output().unique()] = node.s("name")
        elif (kind == "prim::CallMethod" and node.s("name") == "forward" and len(values) == 2
              and values[0].unique() in attributes and values[1].unique() == current):
            calls.append(attributes[values[0].unique()])
            current = node.output().unique()
        else:
            return None
    return calls if calls and outputs[0].unique() == current else None


def script_steps(module: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """The layers of a TorchScript module that is a chain of its children, in the order they run:
    (name, module, kind), names as FX gives them (paths, ``_1`` ... for repeated calls).

    Raises :class:`workbench.errors.UserError` when its graph is not such a chain."""
    from workbench.errors import UserError

    calls = _script_calls(module)
    if calls is None:
        raise UserError(f"{_script_kind(module)} is TorchScript: its layers cannot be listed, as its forward is not "
                        f"a chain of its submodules (a scripted nn.Sequential is one)")
    steps: list[tuple[str, nn.Module, str]] = []
    _open(module, calls, "", steps)
    taken: set[str] = set()
    counts: dict[str, int] = {}
    named = []
    for path, sub, kind in steps:
        k = counts.get(path, 0)
        counts[path] = k + 1
        named.append((_unique(path if k == 0 else f"{path}_{k}", path, taken), sub, kind))
    return named


def _open(module: nn.Module, calls: list[str], prefix: str, steps: list) -> None:
    children = dict(module.named_children())
    for name in calls:
        child = children[name]
        inner = _script_calls(child) if any(True for _ in child.children()) else None
        if inner is not None:
            _open(child, inner, f"{prefix}{name}.", steps)
        else:
            steps.append((f"{prefix}{name}", child, _script_kind(child)))


def _script_kind(module: nn.Module) -> str:
    return str(getattr(module, "original_name", None) or type(module).__name__)


def check_script_chain(module: nn.Module, steps: list[tuple[str, nn.Module, str]], input_size: tuple[int, ...],
                       device: torch.device | str = "cpu") -> None:
    """Raise a :class:`workbench.errors.UserError` unless ``steps`` run one after another give
    ``module``'s output on a random input of ``input_size`` (seeded: the same every time)."""
    from workbench.errors import UserError

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, *input_size, generator=generator).to(device)
    with torch.no_grad():
        try:
            whole = module(x)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise InputMismatch(first_line(exc)) from exc
        y = x
        try:
            for name, step, kind in steps:
                y = step(y)
        except Exception as exc:  # noqa: BLE001 - a traced submodule, say: reported as one line
            raise UserError(f"{_script_kind(module)} is TorchScript: its layers cannot be listed, as its submodule "
                            f"{name} ({kind}) cannot be run on its own ({first_line(exc)})") from None
    if not (isinstance(whole, torch.Tensor) and isinstance(y, torch.Tensor) and whole.shape == y.shape
            and torch.allclose(y, whole, rtol=1e-4, atol=1e-5 * max(1.0, float(whole.abs().max())))):
        raise UserError(f"{_script_kind(module)} is TorchScript: its layers cannot be listed, as its submodules run "
                        f"one after another do not give its output")


def _script_rows(module: nn.Module, input_size: tuple[int, ...], device) -> list[tuple]:
    from workbench.errors import UserError

    steps = script_steps(module)
    was_training = module.training
    module.eval()
    try:
        check_script_chain(module, steps, input_size, device)
        x = torch.zeros(1, *input_size, device=device)
        field = Field(shape=tuple(x.shape))
        rows = []
        with torch.no_grad():
            for name, step, kind in steps:
                try:
                    y = step(x)
                except (RuntimeError, ValueError, IndexError) as exc:
                    raise InputMismatch(first_line(exc)) from exc
                if not isinstance(y, torch.Tensor):
                    raise UserError(f"{_script_kind(module)} is TorchScript: its layers cannot be listed, as its "
                                    f"submodule {name} ({kind}) does not return a tensor")
                windowed = (("Conv" in kind or "Pool" in kind) and not kind.startswith("Adaptive")
                            and not any(True for _ in step.children()))
                if windowed and not (hasattr(step, "kernel_size") and hasattr(step, "stride")):
                    raise UserError(f"{_script_kind(module)} is TorchScript: its layers cannot be listed, as its "
                                    f"submodule {name} ({kind}) keeps no kernel_size and stride (traced, not "
                                    f"scripted?)")
                field = _module_field(step, kind, field, _Tensor(tuple(int(v) for v in y.shape)))
                rows.append((name, kind, tuple(int(v) for v in y.shape[1:]), max(field.r), max(field.j)))
                x = y
    finally:
        module.train(was_training)
    return rows
