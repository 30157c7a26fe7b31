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
disturbed by forward passes in other threads. The receptive-field rules live in
:mod:`workbench.models.fields`, the TorchScript chains in :mod:`workbench.models.script_graph`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.fx as fx
import torch.nn as nn

from workbench.models.fields import (
    SHAPE, Field, InputMismatch, _node_field, _op_name, _propagate_shapes, _tensor_args, _unique, first_line)
from workbench.models.script_graph import _script_rows, check_script_chain, script_steps


#: Functions and methods kept in the table besides modules: merges of tensors, and flatten.
MERGES = {"add", "iadd", "cat", "concat", "mul", "imul"}


KEPT_FUNCTIONS = MERGES | {"flatten"}


#: The kind of the rows that name a forward's outputs.
OUTPUT_KIND = "output"


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


#: The layer table's names, with the rule helpers other modules import from here (fields.py holds
#: the receptive-field rules, script_graph.py the TorchScript chains).
__all__ = ["InputMismatch", "KEPT_FUNCTIONS", "LayerInfo", "MERGES", "OUTPUT_KIND", "check_script_chain", "first_line",
           "layer_table", "output_paths", "output_prefix", "pick", "script_steps", "trace", "tracer_kwargs"]
