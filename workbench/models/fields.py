"""Receptive field r and stride j along a traced graph (the rules of :mod:`workbench.models.graph`'s
docstring; Mahendran & Vedaldi, IJCV 2016, Table 1): a shape-recording pass over the FX graph, and
the rule for each function, method and module."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn


#: Ops that change only how a tensor's elements are laid out in dims (row-major order kept).
RESHAPES = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as", "ravel",
            "Flatten", "Unflatten"}


#: Ops that reorder dims.
PERMUTES = {"permute", "transpose", "swapaxes", "swapdims", "movedim", "moveaxis", "t", "Permute"}


#: Reductions over dims (all of them when no dim is given).
REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "std", "var", "prod", "logsumexp", "nansum", "nanmean",
              "median", "nanmedian", "argmax", "argmin", "all", "any", "norm", "count_nonzero", "std_mean",
              "var_mean", "aminmax", "mode"}


#: Ops whose every output along one dim depends on the whole of that dim.
ALONG_DIM = {"softmax", "log_softmax", "cumsum", "cumprod", "logcumsumexp", "cummax", "cummin", "normalize"}


LINEARS = {"Linear", "LazyLinear", "NonDynamicallyQuantizableLinear", "linear"}


class InputMismatch(ValueError):
    """A forward pass at the given input size failed: the size does not fit the network."""


@dataclass(frozen=True)
class Field:
    """Receptive field r and stride j (per image axis: height, width) of every element of a value.

    For a tensor, ``dims[d]`` says which image axis dim d runs along (0, 1, or None for batch,
    channels and dims that have seen their axis whole); ``dims`` None means unknown: an NCHW map
    for a 4-D tensor. ``items`` are the fields of the tensors in a tuple or list, where known;
    ``data`` is False for values computed from shapes only."""

    r: tuple[int, int] = (1, 1)
    j: tuple[int, int] = (1, 1)
    dims: tuple[int | None, ...] | None = None
    shape: tuple[int, ...] | None = None
    items: tuple["Field", ...] | None = None
    data: bool = True

    def layout(self) -> tuple[int | None, ...]:
        if self.dims is not None and self.shape is not None and len(self.dims) == len(self.shape):
            return self.dims
        if self.shape is None:
            return ()
        return (None, None, 0, 1) if len(self.shape) == 4 else (None,) * len(self.shape)


@dataclass(frozen=True)
class _Tensor:
    """A tensor argument as :class:`_ShapeRecorder` remembers it: its shape only."""

    shape: tuple[int, ...]


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


def _unique(name: str, base: str, taken: set[str]) -> str:
    k = 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


#: ``node.meta`` keys set by :func:`_propagate_shapes`: a node's output shape (N, C, H, W ...) when
#: it is a tensor, its arguments and its value with tensors replaced by their shapes (:class:`_Tensor`),
#: and whether its value holds any tensor.
SHAPE = "workbench_shape"


ARGS = "workbench_args"


VALUE = "workbench_value"


DATA = "workbench_data"


def _describe(value: Any) -> Any:
    """``value`` with each tensor replaced by a :class:`_Tensor` (its shape), containers kept."""
    if isinstance(value, torch.Tensor):
        return _Tensor(tuple(int(v) for v in value.shape))
    if isinstance(value, torch.Size):
        return tuple(int(v) for v in value)
    if isinstance(value, dict):
        return {k: _describe(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_describe(v) for v in value) if type(value) in (tuple, list) else tuple(_describe(v) for v in value)
    if isinstance(value, slice):
        return slice(_describe(value.start), _describe(value.stop), _describe(value.step))
    return value


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return any(_holds_tensor(v) for v in value)
    return False


class _ShapeRecorder(fx.Interpreter):
    def run_node(self, n: fx.Node) -> Any:
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        result = super().run_node(n)
        n.meta[ARGS] = (_describe(args), _describe(kwargs))
        n.meta[VALUE] = _describe(result)
        n.meta[DATA] = _holds_tensor(result)
        if isinstance(result, torch.Tensor):
            n.meta[SHAPE] = tuple(int(v) for v in result.shape)
        return result


def _propagate_shapes(gm: fx.GraphModule, x: torch.Tensor) -> Any:
    """One forward pass of ``gm`` on ``x``, recording each node's output shape and arguments; its result."""
    interpreter = _ShapeRecorder(gm)
    interpreter.extra_traceback = False
    try:
        with torch.no_grad():
            return interpreter.run(x)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise InputMismatch(first_line(exc)) from exc
    except (TypeError, KeyError, AttributeError, NotImplementedError, AssertionError, ArithmeticError) as exc:
        # the model's own forward code failed (a callable's module may raise anything): one line
        raise InputMismatch(f"{type(exc).__name__}: {first_line(exc)}") from exc


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, shortened; its type name if it has none."""
    text = str(exc).strip().splitlines()
    line = " ".join(text[0].split()) if text else ""
    return (line[:limit - 3] + "...") if len(line) > limit else (line or type(exc).__name__)


def _node_field(gm: fx.GraphModule, node: fx.Node, fields: dict[fx.Node, Field]) -> Field:
    shape = node.meta.get(SHAPE)
    if node.op in ("placeholder", "get_attr"):
        return Field(shape=shape, data=node.meta.get(DATA, True))
    if not node.meta.get(DATA, True):
        return Field(data=False)
    data = [fields[n] for n in _tensor_args(node) if n in fields and fields[n].data]
    first = node.args[0] if node.args else None
    x = fields.get(first) if isinstance(first, fx.Node) else None
    x = x if x is not None and x.data else (data[0] if data else Field(shape=None))
    args, kwargs = node.meta.get(ARGS, ((), {}))
    value = node.meta.get(VALUE)
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        if len(data) > 1:
            return _generic(data, value)
        return _module_field(module, type(module).__name__, x, value)
    op = _op_name(node)
    try:
        field = _function_field(op, x, data, args, kwargs, value)
    except (TypeError, ValueError, IndexError, KeyError):  # arguments not as expected: the generic rule
        field = None
    return field if field is not None else _generic(data, value)


def _function_field(op: str, x: Field, data: list[Field], args: tuple, kwargs: dict, value: Any) -> Field | None:
    """The rule for a function or method ``op``; None where the generic rule applies."""
    out = value.shape if isinstance(value, _Tensor) else None
    if x.shape is None:
        if op == "getitem" and x.items is not None and isinstance(args[1], int):
            return x.items[args[1]]
        return None
    n = len(x.shape)
    if op == "getitem":
        return _indexed(x, args[1], out) if out is not None else None
    if op in RESHAPES and out is not None:
        return _reshaped(x, out)
    if op in PERMUTES and out is not None:
        return _permuted(x, _permutation(op, n, args[1:], kwargs), out)
    if op in LINEARS and out is not None:
        return _last_dim_whole(x, out)
    if op in ("matmul", "mm", "bmm") and out is not None and len(data) == 2:
        return _matmul(data[0], data[1], out)
    if op in REDUCTIONS and not (len(args) > 1 and isinstance(args[1], _Tensor)):
        dim = kwargs.get("dim", kwargs.get("axis", args[2] if op == "norm" and len(args) > 2 else
                                            (args[1] if op != "norm" and len(args) > 1 else None)))
        reduced = set(range(n)) if dim is None else _dims(dim, n)
        return _values(value, lambda shape: _reduced(x, reduced, shape))
    if op in ALONG_DIM and out is not None:
        default = 1 if op == "normalize" else (0 if n in (0, 1, 3) else 1)
        dim = kwargs.get("dim", args[2] if op == "normalize" and len(args) > 2 else
                         (args[1] if op != "normalize" and len(args) > 1 else default))
        dim = default if dim is None else dim
        return _values(value, lambda shape: _reduced(x, _dims(dim, n), shape))
    if op.startswith("adaptive") and out is not None:
        spatial = 1 if op.endswith("1d") else 2
        return _windowed(x, {d: _adaptive_window(x.shape[d], out[d]) for d in range(n - spatial, n)}, out)
    if op in ("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "lp_pool1d", "lp_pool2d") and out is not None:
        spatial = 1 if op.endswith("1d") else 2
        names = ("input", "norm_type") if op.startswith("lp") else ("input",)
        params = dict(zip(names + ("kernel_size", "stride", "padding", "dilation"), args), **kwargs)
        kernel = _ntuple(params["kernel_size"], spatial)
        stride = _ntuple(params.get("stride") or params["kernel_size"], spatial)
        dilation = _ntuple(params.get("dilation", 1) if op.startswith("max") else 1, spatial)
        return _conv(x, kernel, stride, dilation, out)
    if op in ("conv1d", "conv2d") and out is not None and len(args) > 1 and isinstance(args[1], _Tensor):
        spatial = 1 if op == "conv1d" else 2
        params = dict(zip(("input", "weight", "bias", "stride", "padding", "dilation"), args), **kwargs)
        kernel = params["weight"].shape[2:]
        return _conv(x, kernel, _ntuple(params.get("stride", 1), spatial), _ntuple(params.get("dilation", 1), spatial), out)
    if op == "stack" and out is not None:
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) % len(out)
        tensors = [f for f in data if f.shape is not None]
        r, j = _max_field(tensors)
        layout = tensors[0].layout()
        return Field(r, j, layout[:dim] + (None,) + layout[dim:], out)
    if op == "unbind" and isinstance(value, (tuple, list)):
        dim = _dims(kwargs.get("dim", args[1] if len(args) > 1 else 0), n).pop()
        layout = x.layout()
        return _values(value, lambda shape: Field(x.r, x.j, layout[:dim] + layout[dim + 1:], shape))
    return None


def _values(value: Any, rule) -> Field | None:
    """``rule(shape)`` for a tensor value; for a tuple or list of tensors, a field holding one per item."""
    if isinstance(value, _Tensor):
        return rule(value.shape)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, _Tensor) for v in value):
        items = tuple(rule(v.shape) for v in value)
        r, j = _max_field(list(items))
        return Field(r, j, items=items)
    return None


def _dims(dim: Any, n: int) -> set[int]:
    if isinstance(dim, (tuple, list)):
        return {int(d) % n for d in dim}
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(dim)
    return {dim % n} if n else set()


def _ntuple(value: Any, n: int) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value) if len(value) == n else (int(value[0]),) * n
    return (int(value),) * n


def _max_field(fields: list[Field]) -> tuple[tuple[int, int], tuple[int, int]]:
    if not fields:
        return (1, 1), (1, 1)
    r = (max(f.r[0] for f in fields), max(f.r[1] for f in fields))
    j = (max(f.j[0] for f in fields), max(f.j[1] for f in fields))
    return r, j


def _seen(x: Field, spans: dict[int, int]) -> tuple[int, int]:
    """r after a window of ``spans[d]`` samples along each dim d of ``x``, capped at the dim's size."""
    r = list(x.r)
    layout = x.layout()
    for d, span in spans.items():
        axis = layout[d] if 0 <= d < len(layout) else None
        if axis is not None:
            r[axis] += (max(1, min(int(span), x.shape[d])) - 1) * x.j[axis]
    return (r[0], r[1])


def _windowed(x: Field, windows: dict[int, tuple[int, int]], out: tuple[int, ...]) -> Field:
    """A window (span in samples, step) along each dim d of ``windows``: conv, pool, adaptive pool."""
    r = _seen(x, {d: span for d, (span, _) in windows.items()})
    j = list(x.j)
    layout = x.layout()
    for d, (_, step) in windows.items():
        if layout[d] is not None:
            j[layout[d]] *= int(step)
    dims = layout if len(out) == len(x.shape) else None
    return Field(r, (j[0], j[1]), dims, out)


def _conv(x: Field, kernel, stride, dilation, out: tuple[int, ...]) -> Field:
    n, k = len(x.shape), len(kernel)
    if k > n:
        return _generic([x], _Tensor(out))
    return _windowed(x, {n - k + i: ((kernel[i] - 1) * dilation[i] + 1, stride[i]) for i in range(k)}, out)


def _reduced(x: Field, reduced: set[int], out: tuple[int, ...]) -> Field:
    """Dims ``reduced`` seen whole: kept (as size 1, or as they are for softmax) or removed."""
    r = _seen(x, {d: x.shape[d] for d in reduced})
    layout = x.layout()
    if len(out) == len(x.shape):
        dims = tuple(None if d in reduced else layout[d] for d in range(len(layout)))
    else:
        dims = tuple(layout[d] for d in range(len(layout)) if d not in reduced)
        dims = dims if len(dims) == len(out) else (None,) * len(out)
    return Field(r, x.j, dims, out)


def _last_dim_whole(x: Field, out: tuple[int, ...]) -> Field:
    n = len(x.shape)
    if n == 0:
        return Field(x.r, x.j, None, out)
    r = _seen(x, {n - 1: x.shape[n - 1]})
    layout = x.layout()
    dims = layout[:-1] + (None,) if len(out) == n else (None,) * len(out)
    return Field(r, x.j, dims, out)


def _matmul(a: Field, b: Field, out: tuple[int, ...]) -> Field:
    if a.shape is None or b.shape is None or not a.shape or not b.shape:
        return _generic([a, b], _Tensor(out))
    seen_a = Field(_seen(a, {len(a.shape) - 1: a.shape[-1]}), a.j, a.dims, a.shape)
    seen_b = Field(_seen(b, {max(0, len(b.shape) - 2): b.shape[max(0, len(b.shape) - 2)]}), b.j, b.dims, b.shape)
    r, j = _max_field([seen_a, seen_b])
    dims: list[int | None] = [None] * len(out)
    la, lb = a.layout(), b.layout()
    if len(a.shape) >= 2 and len(out) >= 2:
        dims[len(out) - 2 if len(b.shape) >= 2 else len(out) - 1] = la[-2]
    if len(b.shape) >= 2 and len(out) >= 1:
        dims[len(out) - 1] = lb[-1]
    for d in range(len(out) - 2):
        da = d - (len(out) - len(a.shape))
        if 0 <= da < len(a.shape) - 2 and a.shape[da] == out[d]:
            dims[d] = la[da]
    return Field(r, j, tuple(dims), out)


def _reshaped(x: Field, out: tuple[int, ...]) -> Field:
    """view / reshape / flatten / squeeze ...: dims grouped by equal products, row-major order kept."""
    shape, layout = x.shape, x.layout()
    ins = [d for d in range(len(shape)) if shape[d] != 1]
    outs = [d for d in range(len(out)) if out[d] != 1]
    dims: list[int | None] = [None] * len(out)
    whole: set[int] = set()
    i = k = 0
    while i < len(ins) and k < len(outs):
        group_in, group_out = [ins[i]], [outs[k]]
        p_in, p_out = shape[ins[i]], out[outs[k]]
        i, k = i + 1, k + 1
        while p_in != p_out:
            if p_in < p_out and i < len(ins):
                group_in.append(ins[i])
                p_in, i = p_in * shape[ins[i]], i + 1
            elif p_out < p_in and k < len(outs):
                group_out.append(outs[k])
                p_out, k = p_out * out[outs[k]], k + 1
            else:
                return _generic([x], _Tensor(out))
        if len(group_in) == 1 and len(group_out) == 1:
            dims[group_out[0]] = layout[group_in[0]]
        else:  # merged with other dims, or split: seen whole
            whole.update(group_in)
    if i < len(ins) or k < len(outs):
        return _generic([x], _Tensor(out))
    return Field(_seen(x, {d: shape[d] for d in whole}), x.j, tuple(dims), out)


def _permutation(op: str, n: int, args: tuple, kwargs: dict) -> list[int]:
    """The order of the input's dims in the output of a permute-like ``op``."""
    if op in ("permute", "Permute"):
        dims = kwargs.get("dims", args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args)
        order = [int(d) % n for d in dims]
    elif op in ("transpose", "swapaxes", "swapdims"):
        a = kwargs.get("dim0", kwargs.get("axis0", args[0] if args else None))
        b = kwargs.get("dim1", kwargs.get("axis1", args[1] if len(args) > 1 else None))
        order = list(range(n))
        order[int(a) % n], order[int(b) % n] = order[int(b) % n], order[int(a) % n]
    elif op == "t":
        order = list(range(n))[::-1] if n == 2 else list(range(n))
    else:  # movedim / moveaxis
        source = kwargs.get("source", args[0] if args else None)
        destination = kwargs.get("destination", args[1] if len(args) > 1 else None)
        source = [int(s) % n for s in (source if isinstance(source, (tuple, list)) else [source])]
        destination = [int(d) % n for d in (destination if isinstance(destination, (tuple, list)) else [destination])]
        order = [d for d in range(n) if d not in source]
        for dest, src in sorted(zip(destination, source)):
            order.insert(dest, src)
    if sorted(order) != list(range(n)):
        raise ValueError(order)
    return order


def _permuted(x: Field, order: list[int], out: tuple[int, ...]) -> Field:
    if len(out) != len(order):
        return _generic([x], _Tensor(out))
    layout = x.layout()
    return Field(x.r, x.j, tuple(layout[d] for d in order), out)


def _indexed(x: Field, index: Any, out: tuple[int, ...]) -> Field | None:
    """Basic indexing (ints, slices, None, ...): picks positions; a slice's step multiplies j."""
    index = index if isinstance(index, tuple) else (index,)
    if any(not (i is None or i is Ellipsis or isinstance(i, slice) or (isinstance(i, int) and not isinstance(i, bool)))
           for i in index):
        return None
    layout, n = x.layout(), len(x.shape)
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    if consumed > n:
        return None
    if Ellipsis not in index:
        index = index + (Ellipsis,)
    dims: list[int | None] = []
    j = list(x.j)
    d = 0
    for i in index:
        if i is Ellipsis:
            dims.extend(layout[d:d + n - consumed])
            d += n - consumed
        elif i is None:
            dims.append(None)
        elif isinstance(i, slice):
            step = i.step if isinstance(i.step, int) else 1
            if layout[d] is not None and step > 1:
                j[layout[d]] *= step
            dims.append(layout[d])
            d += 1
        else:
            d += 1
    if len(dims) != len(out):
        return None
    return Field(x.r, (j[0], j[1]), tuple(dims), out)


def _generic(data: list[Field], value: Any) -> Field:
    """Any other op: element-wise (broadcast) where the rank is kept, its input seen whole where it changes."""
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, _Tensor) for v in value):
        items = tuple(_generic(data, v) for v in value)
        r, j = _max_field(list(items))
        return Field(r, j, items=items)
    if not isinstance(value, _Tensor):
        r, j = _max_field(data)
        return Field(r, j)
    out = value.shape
    seen: list[Field] = []
    for f in data:
        if f.shape is not None and len(f.shape) > len(out):
            f = Field(_seen(f, {d: f.shape[d] for d in range(len(f.shape))}), f.j, (None,) * len(f.shape), f.shape)
        seen.append(f)
    r, j = _max_field(seen)
    if not any(f.shape is not None for f in seen):  # from values of unknown layout: NCHW if 4-D
        return Field(r, j, None, out)
    dims: list[int | None] = [None] * len(out)
    for d in range(len(out)):
        for f in seen:
            if f.shape is None:
                continue
            fd = d - (len(out) - len(f.shape))
            if 0 <= fd < len(f.shape) and f.layout()[fd] is not None and (f.shape[fd] != 1 or out[d] == 1):
                axis = dims[d] = f.layout()[fd]
                if f.shape[fd] > out[d] > 0:  # shrinks the axis: read as an adaptive pool
                    span, step = _adaptive_window(f.shape[fd], out[d])
                    r = tuple(max(r[a], f.r[a] + (span - 1) * f.j[a]) if a == axis else r[a] for a in (0, 1))
                    j = tuple(max(j[a], f.j[a] * step) if a == axis else j[a] for a in (0, 1))
                break
    return Field(r, j, tuple(dims), out)


def _module_field(module: nn.Module, kind: str, x: Field, value: Any) -> Field:
    """The rule for a module (``kind``: its class name, or a scripted module's original name)."""
    out = value.shape if isinstance(value, _Tensor) else None
    if x.shape is None or out is None:
        return _generic([x], value)
    n = len(x.shape)
    spatial = 1 if kind.endswith("1d") else (3 if kind.endswith("3d") else 2)
    if kind.startswith("Adaptive"):
        spatial = min(spatial, n)
        return _windowed(x, {d: _adaptive_window(x.shape[d], out[d]) for d in range(n - spatial, n)}, out)
    if hasattr(module, "kernel_size") and hasattr(module, "stride"):
        size = module.kernel_size
        spatial = len(size) if isinstance(size, (tuple, list)) else spatial
        kernel = _ntuple(size, spatial)
        stride = _ntuple(module.stride if module.stride not in (None, (), []) else size, spatial)
        dilation = _ntuple(getattr(module, "dilation", 1), spatial)
        return _conv(x, kernel, stride, dilation, out)
    if kind in LINEARS or isinstance(module, nn.Linear):
        return _last_dim_whole(x, out)
    if kind in RESHAPES:
        return _reshaped(x, out)
    if kind == "Permute" and hasattr(module, "dims"):
        try:
            return _permuted(x, _permutation("permute", n, (list(module.dims),), {}), out)
        except (TypeError, ValueError):
            return _generic([x], value)
    if any(True for _ in module.children()):
        kernel, stride = _composed(module)  # a leaf block such as torchvision's Conv2dNormActivation
        if kernel != (1, 1) or stride != (1, 1):
            return _conv(x, kernel, stride, (1, 1), out)
    return _generic([x], value)


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
