"""The layer table: every addressable layer with its output shape, receptive field and stride.

The network is traced with torchvision's FX tracer (the one ``create_feature_extractor`` uses,
so names agree with truncation), keeping our custom modules as leaves. Receptive field size r
and stride j (the distance between neighbouring feature samples, both in input pixels) are
propagated analytically along the graph, as in Mahendran & Vedaldi (IJCV 2016), Table 1:

- conv / pool with kernel k, dilation d, stride s:  r_out = r_in + (k−1)·d·j_in,  j_out = j_in·s
- element-wise layers (ReLU, BN, dropout ...): unchanged
- merges (add, cat, mul): the max r and max j of their inputs
- layers that see their whole input (adaptive pools to 1, flatten, a spatial input to linear):
  r_out = r_in + (H_in − 1)·j_in, j unchanged; an adaptive pool to o > 1 uses its largest window.

Tracing goes through :class:`workbench.models.tracing.ThreadTracer`, so it neither disturbs nor is
disturbed by forward passes in other threads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn

#: Functions and methods kept in the table besides modules: merges of tensors, and flatten.
MERGES = {"add", "iadd", "cat", "concat", "mul", "imul"}
KEPT_FUNCTIONS = MERGES | {"flatten"}


class InputMismatch(ValueError):
    """A forward pass at the given input size failed: the size does not fit the network."""


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    shape: tuple[int, ...]
    rf_size: int
    stride: int
    alias: str | None
    index: int


def tracer_kwargs() -> dict[str, Any]:
    """Leaf modules for the tracer: ours, plus torchvision's ops as create_feature_extractor adds them."""
    from workbench.models.architectures import CUSTOM_LEAVES

    return {"leaf_modules": list(CUSTOM_LEAVES)}


def _full_tracer_kwargs() -> dict[str, Any]:
    import inspect

    import torchvision

    ops = [obj for _, obj in inspect.getmembers(torchvision.ops) if inspect.isclass(obj) and issubclass(obj, nn.Module)]
    kwargs = tracer_kwargs()
    kwargs["leaf_modules"] = list(set(kwargs["leaf_modules"] + ops))
    kwargs["autowrap_modules"] = (math, torchvision.ops)
    return kwargs


def _op_name(node: fx.Node) -> str:
    target = node.target
    if node.op == "call_method":
        return str(target)
    name = getattr(target, "__name__", str(target))
    return name.strip("_")


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n))
    return found


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _adaptive_window(size_in: int, size_out: int | None) -> tuple[int, int]:
    """Largest window and (rounded) step of an adaptive pool from ``size_in`` to ``size_out``.

    A pool to a single sample keeps the stride, as flatten and the fc layers of Table 1 do."""
    if size_out is None or size_out >= size_in:
        return 1, 1
    starts = [math.floor(i * size_in / size_out) for i in range(size_out)]
    ends = [math.ceil((i + 1) * size_in / size_out) for i in range(size_out)]
    return max(e - s for s, e in zip(starts, ends)), (size_in // size_out if size_out > 1 else 1)


def trace(module: nn.Module) -> tuple[fx.GraphModule, dict[fx.Node, str], dict[str, str]]:
    """The FX graph of ``module`` (eval mode), each node's layer name, and name -> create_feature_extractor node.

    A module's layer name is its path (``conv1_2``, ``layer1.0.conv1``), with ``_1``, ``_2`` ... for
    repeated calls (``layer1.0.relu_1``); other nodes keep torchvision's name (``layer1.0.add``).
    torchvision's own names for modules differ where a path ends in ``_<digits>``: it strips that
    (the module ``conv1_2`` becomes ``conv1_1``), so truncation is given torchvision's name.
    """
    from workbench.models.tracing import ThreadTracer

    was_training = module.training
    module.eval()
    try:
        tracer = ThreadTracer(**_full_tracer_kwargs())
        graph = tracer.trace(module)
    finally:
        module.train(was_training)
    gm = fx.GraphModule(tracer.root, graph, module.__class__.__name__)
    names: dict[fx.Node, str] = {}
    queries: dict[str, str] = {}
    taken: set[str] = set()
    calls: dict[str, int] = {}
    for node, qualname in tracer.node_to_qualname.items():
        if node.op == "call_module":
            base = str(node.target)
            k = calls.get(base, 0)
            name = base if k == 0 else f"{base}_{k}"
            calls[base] = k + 1
        else:
            base = name = qualname
        k = 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        names[node] = name
        queries[name] = qualname
    return gm, names, queries


def layer_table(module: nn.Module, input_size: tuple[int, ...], *, aliases: str | None = None,
                device: torch.device | str = "cpu") -> list[LayerInfo]:
    """Every addressable layer of ``module`` in network order (see the module docstring).

    A torch.fx failure propagates as is; a forward pass that fails at ``input_size`` raises
    :class:`InputMismatch`."""
    gm, names, _ = trace(module)
    was_training = module.training
    try:
        _propagate_shapes(gm.eval(), torch.zeros(1, *input_size, device=device))
    finally:
        module.train(was_training)

    field: dict[fx.Node, tuple[tuple[int, int], tuple[int, int]]] = {}
    rows: list[tuple[str, str, tuple[int, ...], int, int]] = []
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "get_attr"):
            field[node] = ((1, 1), (1, 1))
            continue
        if node.op == "output":
            continue
        inputs = [n for n in _tensor_args(node) if n in field]
        r_in = tuple(max(field[n][0][a] for n in inputs) for a in (0, 1)) if inputs else (1, 1)
        j_in = tuple(max(field[n][1][a] for n in inputs) for a in (0, 1)) if inputs else (1, 1)
        shape_in = _spatial(inputs[0]) if inputs else None
        shape_out = _spatial(node)
        kind = type(gm.get_submodule(node.target)).__name__ if node.op == "call_module" else _op_name(node)
        r, j = _propagate(gm, node, r_in, j_in, shape_in, shape_out)
        field[node] = (r, j)
        shape = node.meta.get(SHAPE)
        if shape is None:
            continue
        computed = [n for n in inputs if n.op != "get_attr"]
        if node.op == "call_module" or (kind in KEPT_FUNCTIONS and (kind not in MERGES or len(computed) >= 2
                                                                     or kind in ("cat", "concat"))):
            rows.append((names.get(node, node.name), kind, shape[1:], max(r), max(j)))
    alias_of = _aliases(aliases, [(name, kind) for name, kind, *_ in rows])
    return [LayerInfo(name, kind, shape, r, j, alias_of.get(name), i) for i, (name, kind, shape, r, j) in enumerate(rows)]


#: ``node.meta`` key of a node's output shape (N, C, H, W ...), set by :func:`_propagate_shapes`.
SHAPE = "workbench_shape"


class _ShapeRecorder(fx.Interpreter):
    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            n.meta[SHAPE] = tuple(int(v) for v in result.shape)
        return result


def _propagate_shapes(gm: fx.GraphModule, x: torch.Tensor) -> None:
    """One forward pass of ``gm`` on ``x``, recording each node's output shape; nothing printed."""
    interpreter = _ShapeRecorder(gm)
    interpreter.extra_traceback = False
    try:
        with torch.no_grad():
            interpreter.run(x)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise InputMismatch(first_line(exc)) from exc


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, shortened; its type name if it has none."""
    text = str(exc).strip().splitlines()
    line = " ".join(text[0].split()) if text else ""
    return (line[:limit - 3] + "...") if len(line) > limit else (line or type(exc).__name__)


def _spatial(node: fx.Node) -> tuple[int, int] | None:
    shape = node.meta.get(SHAPE)
    if shape is None or len(shape) != 4:
        return None
    return int(shape[2]), int(shape[3])


def _propagate(gm: fx.GraphModule, node: fx.Node, r_in, j_in, shape_in, shape_out):
    module = gm.get_submodule(node.target) if node.op == "call_module" else None
    kernel = stride = dilation = None
    if module is not None and hasattr(module, "kernel_size") and hasattr(module, "stride"):
        kernel, stride = _pair(module.kernel_size), _pair(module.stride)
        dilation = _pair(getattr(module, "dilation", 1))
    elif module is not None and type(module).__name__.startswith("Adaptive") and shape_in is not None:
        out = shape_out or (1, 1)
        windows = [_adaptive_window(shape_in[a], out[a]) for a in (0, 1)]
        kernel, stride, dilation = tuple(w[0] for w in windows), tuple(w[1] for w in windows), (1, 1)
    elif node.op != "call_module" and _op_name(node).startswith("adaptive") and shape_in is not None:
        out = shape_out or (1, 1)
        windows = [_adaptive_window(shape_in[a], out[a]) for a in (0, 1)]
        kernel, stride, dilation = tuple(w[0] for w in windows), tuple(w[1] for w in windows), (1, 1)
    elif shape_in is not None and shape_out is None:  # a spatial map collapsed: flatten, linear, mean ...
        kernel, stride, dilation = shape_in, (1, 1), (1, 1)
    if kernel is None and module is not None and any(True for _ in module.children()):
        kernel, stride = _composed(module)  # a leaf block such as torchvision's Conv2dNormActivation
        dilation = (1, 1)
    if kernel is None:
        return r_in, j_in
    r = tuple(r_in[a] + (kernel[a] - 1) * dilation[a] * j_in[a] for a in (0, 1))
    j = tuple(j_in[a] * stride[a] for a in (0, 1))
    return r, j


def _composed(module: nn.Module) -> tuple[tuple[int, int], tuple[int, int]]:
    """Kernel and stride of a block whose conv/pool submodules run one after another."""
    r, j = [1, 1], [1, 1]
    for sub in module.modules():
        if sub is not module and hasattr(sub, "kernel_size") and hasattr(sub, "stride"):
            k, s, d = _pair(sub.kernel_size), _pair(sub.stride), _pair(getattr(sub, "dilation", 1))
            for a in (0, 1):
                r[a] += (k[a] - 1) * d[a] * j[a]
                j[a] *= s[a]
    return (r[0], r[1]), (j[0], j[1])


def _aliases(scheme: str | None, layers: list[tuple[str, str]]) -> dict[str, str]:
    """Paper names: AlexNet numbers conv/pool/fc layers in sequence (conv1 ... pool5, fc6 ... fc8),
    VGG by block (conv1_1, relu1_1, conv1_2 ... pool5, fc6 ... fc8); dropouts have none."""
    if scheme not in ("alexnet", "vgg"):
        return {}
    out: dict[str, str] = {}
    n, block, within, tag = 0, 1, 0, None
    for name, kind in layers:
        if kind == "Conv2d":
            if scheme == "alexnet":
                n += 1
                tag = str(n)
            else:
                within += 1
                tag = f"{block}_{within}"
            out[name] = f"conv{tag}"
        elif kind == "MaxPool2d":
            out[name] = f"pool{n}" if scheme == "alexnet" else f"pool{block}"
            if scheme == "vgg":
                block, within = block + 1, 0
            tag = None
        elif kind == "Linear":
            if scheme == "alexnet":
                n += 1
                tag = str(n)
            else:
                tag = str(block)
                block += 1
            out[name] = f"fc{tag}"
        elif kind in ("ReLU", "BatchNorm2d") and tag is not None:
            out[name] = ("relu" if kind == "ReLU" else "bn") + tag
    return out
