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

The rules act on each image axis (height, width) separately, and the axes are followed through
the dims of every tensor, so that what a reshape does is read from it rather than guessed:

- a window covers at most the H_in samples of its input: a kernel larger than its (padded) map
  adds (H_in − 1)·j_in, as the whole-input rule does. So no unit sees more than its input map as a
  whole, r ≤ r_in + (H_in − 1)·j_in at every layer: a bound that follows from the rules, not a clip.
  r may still exceed the image, by the padding it counts, as Table 1's fc6 (355 px on 227) does;
- functional convolutions and pools (``F.conv2d``, ``F.max_pool2d`` ...) count as their modules do;
- permute / transpose / movedim (and torchvision's ``Permute``) move the axes with the dims and
  change nothing;
- view / reshape / flatten / unflatten / squeeze / unsqueeze: a dim that merges an image axis with
  other dims (``x.view(x.size(0), -1)``, ``torch.flatten(x, 1)``, ``x.permute(0, 2, 3, 1).reshape(n,
  -1)``) sees that axis whole (the flatten rule: 33 + (3 − 1)·8 = 49 for a 3×3 map of stride 8, in
  whatever order its dims were); a dim kept as it is keeps its axis; an axis split over several dims
  is counted as seen whole (an upper bound);
- Linear and matmul consume the last dim: the whole-input rule along it when it is an image axis
  (a Linear on NCHW mixes the width), nothing when it holds channels (a Linear on NHWC, ConvNeXt);
- reductions over dims (mean, sum, amax ...) and softmax / cumsum / normalize along a dim see those
  dims whole; indexing picks positions (a strided slice multiplies j by its step);
- any other op is element-wise (broadcasting), unless its result has fewer dims than an input,
  which it then sees whole, or shrinks an image axis from n to m samples (a wrapped function such
  as Swin's patch merging), which is read as an adaptive pool from n to m. Shape-only values
  (``x.size(0)``, ``x.shape``) carry no field.

A forward that returns a tuple, list or dict (detectors, multi-head nets) also lists each tensor
of its result as a layer of kind ``output``, named by its path: ``output.0``, ``output.1`` ... for
tuples and lists, ``output.<key>`` for dict keys, nested ``output.0.1``, ``output.boxes.0``; its
shape, r and j are those of the node that produces it. Should a layer name start with
``output.``, the prefix is ``output_1`` instead, and so on. A forward returning one tensor has no
such rows: its last layer is the output. (A tuple that a leaf module returns, such as
``nn.MultiheadAttention``'s, is no row; its tensors are, when they are the forward's result.)

A TorchScript module cannot be traced with FX; its layers can still be listed when its forward
reads, in its TorchScript graph, as a chain of its children (a scripted ``nn.Sequential``, or a
module whose ``forward`` only calls its children one after another): children that are chains
themselves are opened (``0.1``), the others are layers, their kind their ``original_name`` and
their r and j from the attributes scripted conv and pool modules keep (kernel_size, stride,
dilation). The chain is checked by running the layers one after another against the whole module
on a random input; a module that is no chain is a :class:`UserError` saying so.

Tracing goes through :class:`workbench.models.tracing.ThreadTracer`, so it neither disturbs nor is
disturbed by forward passes in other threads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.fx as fx
import torch.nn as nn

#: Functions and methods kept in the table besides modules: merges of tensors, and flatten.
MERGES = {"add", "iadd", "cat", "concat", "mul", "imul"}
KEPT_FUNCTIONS = MERGES | {"flatten"}

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

#: The kind of the rows that name a forward's outputs.
OUTPUT_KIND = "output"


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


def tracer_kwargs() -> dict[str, Any]:
    """Leaf modules for the tracer: those the model sources declare
    (:func:`workbench.models.sources.leaf_modules`)."""
    from workbench.models.sources.registry import leaf_modules

    return {"leaf_modules": list(leaf_modules())}


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
    The forward's outputs are named by :func:`output_prefix` and :func:`output_paths`.
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
        name = _unique(name, base, taken)
        names[node] = name
        queries[name] = qualname
    return gm, names, queries


def _unique(name: str, base: str, taken: set[str]) -> str:
    k = 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def output_prefix(names: Any) -> str:
    """``output``, or ``output_1``, ``output_2`` ... when a layer name already starts with it."""
    names = list(names)
    prefix, k = "output", 0
    while any(n.startswith(prefix + ".") for n in names):
        k += 1
        prefix = f"output_{k}"
    return prefix


def output_paths(structure: Any, parts: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, leaf) of a forward's result as FX records it: a path component is a tuple or list
    index or a dict key, a leaf a node (whose value may hold more) or a constant."""
    if isinstance(structure, (tuple, list)):
        for i, item in enumerate(structure):
            yield from output_paths(item, parts + (str(i),))
    elif isinstance(structure, dict):
        for key, item in structure.items():
            yield from output_paths(item, parts + (str(key),))
    else:
        yield parts, structure


def pick(value: Any, key: str) -> Any:
    """One component of an output path: an index into a tuple or list, or a dict key."""
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k) == key:
                return v
        raise KeyError(key)
    if isinstance(value, (tuple, list)):
        return value[int(key)]
    raise TypeError(f"no part '{key}' in a {type(value).__name__} output")


def layer_table(module: nn.Module, input_size: tuple[int, ...], *, aliases: str | None = None,
                device: torch.device | str = "cpu") -> list[LayerInfo]:
    """Every addressable layer of ``module`` in network order (see the module docstring).

    A torch.fx failure propagates as is; a forward pass that fails at ``input_size`` raises
    :class:`InputMismatch`; a TorchScript module that is not a chain of its children raises
    :class:`workbench.errors.UserError`."""
    if isinstance(module, torch.jit.ScriptModule):
        rows = _script_rows(module, input_size, device)
    else:
        rows = _fx_rows(module, input_size, device)
    alias_of = _aliases(aliases, [(name, kind) for name, kind, *_ in rows])
    return [LayerInfo(name, kind, shape, r, j, alias_of.get(name), i) for i, (name, kind, shape, r, j) in enumerate(rows)]


def _fx_rows(module: nn.Module, input_size: tuple[int, ...], device) -> list[tuple[str, str, tuple[int, ...], int, int]]:
    gm, names, _ = trace(module)
    was_training = module.training
    try:
        result = _propagate_shapes(gm.eval(), torch.zeros(1, *input_size, device=device))
    finally:
        module.train(was_training)

    fields: dict[fx.Node, Field] = {}
    rows: list[tuple[str, str, tuple[int, ...], int, int]] = []
    for node in gm.graph.nodes:
        if node.op == "output":
            rows += _output_rows(node, result, fields, names.values())
            continue
        fields[node] = field = _node_field(gm, node, fields)
        if node.op in ("placeholder", "get_attr"):
            continue
        shape = node.meta.get(SHAPE)
        if shape is None:
            continue
        inputs = [n for n in _tensor_args(node) if n in fields]
        kind = type(gm.get_submodule(node.target)).__name__ if node.op == "call_module" else _op_name(node)
        computed = [n for n in inputs if n.op != "get_attr"]
        if node.op == "call_module" or (kind in KEPT_FUNCTIONS and (kind not in MERGES or len(computed) >= 2
                                                                     or kind in ("cat", "concat"))):
            rows.append((names.get(node, node.name), kind, shape[1:], max(field.r), max(field.j)))
    return rows


def _output_rows(node: fx.Node, result: Any, fields: dict[fx.Node, Field], names) -> list[tuple]:
    """Rows ``output.<path>`` for the tensors of a tuple, list or dict result; none for one tensor."""
    structure = node.args[0]
    if isinstance(structure, fx.Node) and isinstance(result, torch.Tensor):
        return []
    prefix = output_prefix(names)
    rows = []
    for parts, leaf in output_paths(structure):
        if not isinstance(leaf, fx.Node) or leaf not in fields:
            continue
        value = result
        for part in parts:
            value = pick(value, part)
        for more, field, tensor in _tensors_in(value, fields[leaf]):
            name = ".".join((prefix,) + parts + more)
            rows.append((name, OUTPUT_KIND, tuple(int(v) for v in tensor.shape[1:]), max(field.r), max(field.j)))
    return rows


def _tensors_in(value: Any, field: Field, parts: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Field, torch.Tensor]]:
    """(path, field, tensor) of each tensor inside one node's value."""
    if isinstance(value, torch.Tensor):
        yield parts, field, value
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            sub = field.items[i] if field.items is not None and i < len(field.items) else field
            yield from _tensors_in(item, sub, parts + (str(i),))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors_in(item, field, parts + (str(key),))


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


# --- receptive fields -------------------------------------------------------------------------------


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


# --- TorchScript ------------------------------------------------------------------------------------


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
