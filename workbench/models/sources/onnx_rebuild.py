"""Converting with onnx2torch and rebuilding the result (:func:`_rebuild`) so that the layer table
and truncation see plain torch modules under the exporting network's own module names."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from workbench.errors import UserError
from workbench.models.sources.onnx_rewrite import (
    EXPORT_HINT, _clean_part, _image_input, _line, _onnx2torch_version, _opset, _plan_names, _value_info)


def _convert(model, path: Path, onnx2torch: Any) -> fx.GraphModule:
    """onnx2torch's conversion; the global RNG is left as it was (its modules are built with a random
    init before the file's weights replace it)."""
    try:
        with torch.random.fork_rng(devices=[]):
            return onnx2torch.convert(model)
    except Exception as exc:
        node = _failed_node(exc)
        where = f" at node '{node.name or node.op_type}' ({node.op_type}, opset {_opset(model)})" if node is not None else ""
        raise UserError(f"{path.name}: {_onnx2torch_version()} cannot convert the model{where}: "
                        f"{type(exc).__name__}: {_line(exc)}; {EXPORT_HINT} or without that operator") from None


def _failed_node(exc: BaseException):
    """The ONNX node onnx2torch's ``convert`` was converting when ``exc`` was raised, if known."""
    tb = exc.__traceback__
    node = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "convert" and "onnx_node" in frame.f_locals:
            node = getattr(frame.f_locals["onnx_node"], "proto", None)
        tb = tb.tb_next
    return node


class OnnxScope(nn.Module):
    """A module path of the exported network: holds the layers under it and runs the functions the
    exporter recorded in it (add, cat, pad ...), so torch.fx names them ``<path>.add`` as it names
    the original's. ``forward(key, *tensors)`` runs the function stored under ``key``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}

    def forward(self, key: str, *args: Any) -> Any:
        fn, kwargs = self.calls[key]
        return fn(*args, **kwargs)


def _concat(*tensors: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.cat(tensors, dim=dim)


def _concat_shape(*tensors: torch.Tensor, dim: int) -> torch.Tensor:
    """Concat of integers (shape arithmetic): torch.concatenate, which the layer table does not list as a merge."""
    return torch.concatenate(tensors, dim=dim)


def _flatten(x: torch.Tensor) -> torch.Tensor:
    return torch.flatten(x, 1)


def _reshape(x: torch.Tensor, *, shape: tuple[int, ...]) -> torch.Tensor:
    """ONNX Reshape with a constant shape (0 keeps the input's size there, allowzero=0)."""
    return torch.reshape(x, [x.shape[i] if d == 0 else d for i, d in enumerate(shape)])


def _shape(x: torch.Tensor, *, start: int = 0, end: int | None = None) -> torch.Tensor:
    """ONNX Shape, as torch.fx can trace it (onnx2torch's calls torch.tensor on the shape)."""
    return x.new_tensor(x.shape[start:end], dtype=torch.int64)


def _reshape_dynamic(x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """ONNX Reshape to a computed shape (0 keeps the input's size there), with no Python branch on it."""
    dims = _shape(x).to(shape.device)
    full = torch.where(shape == 0, F.pad(dims, (0, shape.shape[0] - dims.shape[0])), shape)
    return torch.reshape(x, full.tolist())


def _slice(x: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, *, axes: tuple[int, ...],
           steps: tuple[int, ...]) -> torch.Tensor:
    """ONNX Slice with known axes and positive steps; starts and ends may be computed."""
    index: list[Any] = [slice(None)] * (max(axes) + 1)
    for i, (axis, step) in enumerate(zip(axes, steps)):
        index[axis] = slice(starts[i], ends[i], step)
    return x[tuple(index)]


def _divide_int(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.div(a, b, rounding_mode="trunc")


_FLOATS = {1, 10, 11, 16}  # ONNX FLOAT, FLOAT16, DOUBLE, BFLOAT16


_INTEGERS = {2, 3, 4, 5, 6, 7, 12, 13}  # ONNX UINT8, INT8, UINT16, INT16, INT32, INT64, UINT32, UINT64


_BINARY = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul}


def _as_function(module: nn.Module, onnx_node, args: list, ranks: dict, batched: set[str], converted: fx.GraphModule):
    """(function, args, kwargs) computing what ``module`` does, or None to keep the module.

    ``batched``: the values that carry the batch dimension of a model exported at batch 1; a
    constant Reshape of one to (1, ...) keeps the batch instead (0), so the model runs on any batch."""
    from onnx2torch.node_converters.binary_math_operations import OnnxBinaryMathOperation
    from onnx2torch.node_converters.concat import OnnxConcat
    from onnx2torch.node_converters.reshape import OnnxReshape
    from onnx2torch.node_converters.shape import OnnxShape
    from onnx2torch.node_converters.slice import OnnxSlice

    op = onnx_node.op_type
    if isinstance(module, OnnxShape):
        return _shape, args[:1], {"start": module._start, "end": module._end}
    if isinstance(module, OnnxSlice) and 3 <= len(args) <= 5:
        constant = [_attr(converted, str(a.target)).reshape(-1).tolist() if isinstance(a, fx.Node) and a.op == "get_attr"
                    else None for a in args[3:]]
        rank = ranks.get(onnx_node.input[0], (None,))[0]
        axes = constant[0] if len(constant) > 0 else None
        steps = constant[1] if len(constant) > 1 else None
        if len(args) > 3 and axes is None or len(args) > 4 and steps is None:
            return None  # computed axes or steps
        count = ranks.get(onnx_node.input[1], (None, 0, None))[2]
        if axes is None:
            if not count or count[0] is None:
                return None
            axes = list(range(count[0]))
        if any(a < 0 for a in axes):
            if rank is None:
                return None
            axes = [a % rank for a in axes]
        steps = steps or [1] * len(axes)
        if any(step <= 0 for step in steps):
            return None
        return _slice, args[:3], {"axes": tuple(int(a) for a in axes), "steps": tuple(int(v) for v in steps)}
    if isinstance(module, OnnxBinaryMathOperation) and not (module.broadcast == 1 and module.axis is not None):
        if op in _BINARY:
            return _BINARY[op], args, {}
        if op == "Div":
            elem = ranks.get(onnx_node.output[0], (None, 0))[1]
            if elem in _FLOATS:
                return torch.div, args, {}
            if elem:
                return _divide_int, args, {}
        return None
    if isinstance(module, OnnxConcat):
        if ranks.get(onnx_node.output[0], (None, 0))[1] in _INTEGERS:
            return _concat_shape, args, {"dim": int(module.axis)}
        return _concat, args, {"dim": int(module.axis)}
    if isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
        return _flatten, args, {}  # the legacy exporter's Flatten of torch.flatten(x, 1): a row "flatten", as torch's
    if isinstance(module, OnnxReshape) and len(args) == 2 and isinstance(args[1], fx.Node) and args[1].op == "get_attr":
        shape = [int(v) for v in _attr(converted, args[1].target).reshape(-1).tolist()]
        dims = ranks.get(onnx_node.input[0], (None, 0, None))[2]
        rest = math.prod(dims[1:]) if dims is not None and len(dims) >= 2 and None not in dims[1:] else None
        if len(shape) == 2 and dims is not None and len(dims) >= 2 and (
                shape == [0, -1] or (dims[0] == 1 and shape[0] == 1 and shape[1] in (-1, rest))):
            # a flatten after the batch (x.view(1, -1) as exported at batch 1, or x.flatten(1)):
            # torch.flatten(x, 1), which runs at any batch size
            return _flatten, args[:1], {}
        if (onnx_node.input[0] in batched and (dims is None or dims[0] in (1, None)) and len(shape) >= 2
                and shape[0] == 1):
            shape[0] = 0  # exported at batch 1 and keeping it: keep any batch size
        if shape.count(-1) <= 1:
            return _reshape, args[:1], {"shape": tuple(shape)}
    if isinstance(module, OnnxReshape) and len(args) == 2:
        return _reshape_dynamic, args, {}
    return None


class OnnxConstantArgs(nn.Module):
    """An onnx2torch module with its constant inputs (an ONNX Slice's starts and ends, a Split's
    sizes ...) kept as buffers beside it: torch.fx then traces it with those as numbers, where it
    would stop at a Python loop over them as proxies. ``forward(*tensors)`` fills the other inputs."""

    def __init__(self, op: nn.Module, layout: list[int | None], constants: list[torch.Tensor]) -> None:
        super().__init__()
        self.op = op
        self.layout = layout  # per argument of op: index into forward's tensors, or None for the next constant
        for i, value in enumerate(constants):
            self.register_buffer(f"constant_{i}", value)
        self.count = len(constants)

    def forward(self, *tensors: Any) -> Any:
        constants = iter(getattr(self, f"constant_{i}") for i in range(self.count))
        return self.op(*[next(constants) if i is None else tensors[i] for i in self.layout])


def _as_module(module: nn.Module, node: fx.Node, converted: fx.GraphModule) -> tuple[nn.Module, tuple] | None:
    """(plain module, its args) for an onnx2torch module the layer table cannot read, else None."""
    from onnx2torch.node_converters.global_average_pool import OnnxGlobalAveragePoolWithKnownInputShape

    if isinstance(module, OnnxGlobalAveragePoolWithKnownInputShape) and list(module._x_dims) == [2, 3]:
        return nn.AdaptiveAvgPool2d((1, 1)), node.args
    is_torch = type(module).__module__.startswith("torch.nn")
    constant = [isinstance(a, fx.Node) and a.op == "get_attr" for a in node.args]
    if not is_torch and any(constant) and not all(constant) and not node.kwargs:
        layout: list[int | None] = []
        tensors, constants = [], []
        for arg, is_constant in zip(node.args, constant):
            if is_constant:
                layout.append(None)
                constants.append(_attr(converted, str(arg.target)))
            else:
                layout.append(len(tensors))
                tensors.append(arg)
        return OnnxConstantArgs(module, layout, constants), tuple(tensors)
    return None


def _attr(gm: nn.Module, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _rebuild(converted: fx.GraphModule, model, scopes: dict[str, tuple[str, str]]) -> fx.GraphModule:
    """onnx2torch's GraphModule rebuilt with module paths from the exporter and plain torch ops
    (see the module docstring); the computation is the same."""
    import onnx
    from onnx2torch.node_converters.pad import OnnxPadStatic
    from onnx2torch.onnx_graph import OnnxGraph

    ranks = _value_info(model, onnx)
    onnx_nodes = {name: node.proto for name, node in OnnxGraph(model.graph).nodes.items()}
    batched = _batched_values(model)

    # what each call_module node becomes: ("function", fn, args, kwargs) | ("module", module) | padded module
    plans: dict[fx.Node, tuple] = {}
    ops: list[tuple[str, str, str, bool]] = []
    order: list[fx.Node] = []
    for node in converted.graph.nodes:
        if node.op != "call_module":
            continue
        proto = onnx_nodes.get(str(node.target))
        module = converted.get_submodule(str(node.target))
        scope, label = scopes.get(proto.output[0], ("", _clean_part(proto.name or proto.op_type))) if proto is not None \
            else ("", _clean_part(str(node.target)))
        plan: tuple
        fn = _as_function(module, proto, list(node.args), ranks, batched, converted) if proto is not None else None
        if fn is not None and not node.kwargs:
            plan = ("function",) + fn
        elif (isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[0], OnnxPadStatic)
              and not node.kwargs):
            pad = module[0]
            plan = ("padded", module[1], (F.pad, {"pad": list(pad.pads), "mode": pad.mode, "value": pad.constant_value}))
        else:
            plan = ("module",) + (_as_module(module, node, converted) or (module, node.args))
        plans[node] = plan
        ops.append((scope, label, proto.op_type if proto is not None else type(module).__name__, plan[0] != "function"))
        order.append(node)
    names = dict(zip(order, _plan_names(ops)))
    scope_of = {node: op[0] for node, op in zip(order, ops)}

    root = OnnxScope()
    containers: dict[str, OnnxScope] = {"": root}

    def container(scope: str) -> OnnxScope:
        if scope in containers:
            return containers[scope]
        parent_path, _, leaf = scope.rpartition(".")
        parent = container(parent_path)
        child = OnnxScope()
        parent.add_module(leaf, child)
        containers[scope] = child
        return child

    def install(name: str, module: nn.Module) -> None:
        parent_path, _, leaf = name.rpartition(".")
        container(parent_path).add_module(leaf, module)

    constants = _free_name(set(names.values()) | {n.split(".")[0] for n in names.values() if n}, "onnx_constants")
    store = nn.Module()
    root.add_module(constants, store)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    calls: dict[str, int] = {}

    def call(scope: str, fn: Callable, args: tuple, kwargs: dict) -> fx.Node:
        if not scope:
            return graph.call_function(fn, args, kwargs)
        holder = container(scope)
        base = getattr(fn, "__name__", "op").strip("_")
        k = calls.get(f"{scope}:{base}", 0)
        calls[f"{scope}:{base}"] = k + 1
        key = base if k == 0 else f"{base}_{k}"
        holder.calls[key] = (fn, kwargs)
        return graph.call_module(scope, (key, *args))

    for node in converted.graph.nodes:
        if node.op == "placeholder":
            env[node] = graph.placeholder(node.name)
        elif node.op == "get_attr":
            value = _attr(converted, str(node.target))
            field = re.sub(r"\W", "_", str(node.target))
            if isinstance(value, nn.Parameter):
                store.register_parameter(field, value)
            else:
                store.register_buffer(field, value)
            env[node] = graph.get_attr(f"{constants}.{field}")
        elif node.op == "call_module":
            plan = plans[node]
            args = fx.node.map_arg(node.args, lambda n: env[n])
            kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
            if plan[0] == "function":
                _, fn, fargs, fkwargs = plan
                env[node] = call(scope_of[node], fn, tuple(fx.node.map_arg(tuple(fargs), lambda n: env[n])), fkwargs)
            elif plan[0] == "padded":
                _, inner, (pad_fn, pad_kwargs) = plan
                parent = names[node].rpartition(".")[0]
                padded = call(parent, pad_fn, (args[0],), pad_kwargs)
                install(names[node], inner)
                env[node] = graph.call_module(names[node], (padded, *args[1:]), kwargs)
            else:
                install(names[node], plan[1])
                env[node] = graph.call_module(names[node], fx.node.map_arg(plan[2], lambda n: env[n]), kwargs)
        else:  # call_function (getitem of a multi-output op), call_method, output
            env[node] = graph.node_copy(node, lambda n: env[n])
    graph.lint()
    first = fx.GraphModule(root, graph, "OnnxModel")
    first.graph.eliminate_dead_code()  # constants now held by OnnxConstantArgs, ops nothing uses
    return fx.GraphModule(root, first.graph, "OnnxModel")  # copies only what the graph still uses


def _batched_values(model) -> set[str]:
    """Values computed from the image input, when the file fixes its batch size to 1 (else none)."""
    inputs = _image_input(model)
    if len(inputs) != 1:
        return set()
    dims = inputs[0].type.tensor_type.shape.dim
    if not dims or not (dims[0].HasField("dim_value") and dims[0].dim_value == 1):
        return set()
    live = {inputs[0].name}
    for node in model.graph.node:
        if any(i in live for i in node.input):
            live.update(node.output)
    return live


def _free_name(taken: set[str], base: str) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name
