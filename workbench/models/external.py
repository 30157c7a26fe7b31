"""Models from outside the workbench's zoo: ONNX files (through onnx2torch) and timm architectures.

Both need an optional extra (``pip install 'cnn-workbench[onnx]'`` / ``'cnn-workbench[timm]'``),
imported only when a function here is called.

ONNX (:func:`read_onnx`)
    An ONNX file is data, not code: reading one runs nothing from it, so it needs no ``--trust``.
    The file is parsed as a protobuf ``ModelProto`` and checked before anything converts it;
    tensors stored as external data must lie in files inside the model's own folder. The graph is
    then rewritten where onnx2torch would fail or give a module the layer table cannot read
    (see :func:`_prepare`), converted with onnx2torch, and rebuilt (:func:`_rebuild`) so that
    ``workbench.models.graph.layer_table`` and ``truncate`` see plain torch modules under the
    exporting network's own module names:

    =====================================  =============================================
    ONNX / onnx2torch                      in the returned module
    =====================================  =============================================
    ``/layer1/layer1.0/conv1/Conv``        ``layer1.0.conv1`` (the torch module path; the
    (legacy names; dynamo: name_scopes)    dynamo exporter's ``pkg.torch.onnx.name_scopes``)
    ``Add``/``Sub``/``Mul``/``Div``        ``torch.add`` ... called in the op's module
                                           (row ``layer1.0.add``, as torch.fx names it)
    ``Concat``                             ``torch.cat`` (row ``...cat``; of integers, shape
                                           arithmetic, ``torch.concatenate``: no row)
    ``GlobalAveragePool``, ``ReduceMean``  ``nn.AdaptiveAvgPool2d(1)`` (its receptive field
    over H and W                           covers the whole input, as torch's does)
    ``Flatten`` / Reshape to (1, -1)       ``torch.flatten(x, 1)`` (row ``flatten``)
    Reshape to (1, ...) at batch 1         a Reshape keeping the batch: any batch size runs
    ``Shape``, ``Slice``, other Reshape    functions torch.fx can trace (no loop over a proxy)
    Conv/MaxPool with asymmetric pads      ``F.pad`` then the plain ``nn.Conv2d``/pool
    other onnx2torch modules               kept; constant inputs stored with them
                                           (:class:`OnnxConstantArgs`)
    =====================================  =============================================

    Differences from the torch original's layer table that remain: exporters fold a batch norm
    into the convolution before it, so there is no ``bn`` row and the convolution's output is the
    batch norm's output (torch's legacy exporter keeps the conv's name, ``layer1.0.conv1``; the
    dynamo exporter gives the fused conv the batch norm's name, ``layer1.0.bn1``); dropout is
    gone; torchvision's composite leaves (``Conv2dNormActivation``, ``SqueezeExcitation``) are
    their parts (``features.0.0``, ``features.0.2``); ``F.relu`` and other functional layers the
    torch table does not list are modules here (``conv1.relu``). Receptive fields and strides
    (the formulas of ``workbench.models.graph``) are the original's for every layer both tables
    have, except after a squeeze-excitation block: its global pool makes every later receptive
    field cover the whole input here, where the torch table treats the block as one 1x1 leaf.

timm (:func:`timm_model`)
    ``timm.create_model(name, pretrained=False, **kwargs)`` seeded from ``zoo.INIT_SEED``;
    pretrained weights only from the local Hugging Face cache, never downloaded.
"""

from __future__ import annotations

import ast
import difflib
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from workbench.errors import UserError

ONNX_EXTRA = "pip install 'cnn-workbench[onnx]'"
TIMM_EXTRA = "pip install 'cnn-workbench[timm]'"

#: The newest opset the installed onnx2torch (1.5.x) converts fully; newer models are converted
#: down to it with onnx's version converter when one of their operators is missing at their opset.
ONNX_FALLBACK_OPSET = 17
#: Memory one conversion may need, as a multiple of the model's bytes: the protobuf, onnx2torch's
#: tensors, and the torch module built from them are alive at once.
ONNX_MEMORY_FACTOR = 3
#: A forward pass on zeros checks the converted module when its input has at most this many values.
_CHECK_NUMEL = 1 << 24
_PROTOBUF_LIMIT = 2**31 - 1
#: What to do about a model onnx2torch cannot convert: torch's legacy exporter at opset 17 writes
#: only operators it converts.
EXPORT_HINT = "export the model again with torch.onnx.export(..., dynamo=False, opset_version=17)"


# --- ONNX ------------------------------------------------------------------------------------

def read_onnx(path: Path) -> nn.Module:
    """The ONNX model at ``path`` as a torch module (eval mode) that torch.fx can trace.

    The module's attribute ``input_size`` is the ONNX input's (C, H, W) when the file fixes it,
    else None. Every failure is a one-line :class:`UserError` naming the file."""
    path = Path(path)
    onnx, onnx2torch = _import_onnx(path)
    model = _read_model(path, onnx)
    _check_io(model, path)
    model, scopes = _prepare(model, path, onnx)
    converted = _convert(model, path, onnx2torch)
    module = _rebuild(converted, model, scopes)
    module.input_size = _input_size(model)
    module.eval()
    _smoke_test(module, model, path)
    return module


def _import_onnx(path: Path) -> tuple[Any, Any]:
    try:
        import onnx
        import onnx2torch
    except ImportError:
        raise UserError(f"{path.name}: opening ONNX files needs the optional extra: {ONNX_EXTRA}") from None
    return onnx, onnx2torch


def _onnx2torch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"onnx2torch {version('onnx2torch')}"
    except PackageNotFoundError:
        return "onnx2torch"


def _read_model(path: Path, onnx: Any):
    """Parse ``path`` as an ONNX ``ModelProto`` (external data checked and loaded); nothing else runs."""
    from google.protobuf.message import DecodeError

    from workbench.limits import require_memory

    if not path.is_file():
        raise UserError(f"model file {path} does not exist: check the path")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path.name} is empty: it is not an ONNX model; export the model again")
    if size > _PROTOBUF_LIMIT:
        raise UserError(f"{path.name} is larger than 2 GiB, the limit of one protobuf: an ONNX model that big "
                        f"keeps its weights in external data files; export it with external data")
    require_memory(ONNX_MEMORY_FACTOR * size, f"converting {path.name}", "free memory or use a smaller model")
    data = path.read_bytes()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise UserError(f"{path.name} is not a readable ONNX model (the protobuf does not parse: "
                        f"{_line(exc)}): the file is damaged or not ONNX; export the model again") from None
    del data
    if not model.HasField("graph") or model.ir_version < 3 or not model.opset_import or not model.graph.node:
        raise UserError(f"{path.name} is not an ONNX model (no graph, IR version or opset in it): "
                        f"the file is damaged or of another kind; export the model again")
    _load_external_data(model, path, onnx)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError, or a C++ error for a malformed graph
        raise UserError(f"{path.name} is not a valid ONNX model ({_line(exc)}): export the model again") from None
    return model


def _tensors(model) -> Iterator[Any]:
    """Every TensorProto of ``model``: initializers, sparse ones, and tensors in node attributes,
    in subgraphs and functions too."""

    def in_graph(graph) -> Iterator[Any]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from in_nodes(graph.node)

    def in_nodes(nodes) -> Iterator[Any]:
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    yield from in_graph(attr.g)
                for sub in attr.graphs:
                    yield from in_graph(sub)

    yield from in_graph(model.graph)
    for function in model.functions:
        yield from in_nodes(function.node)


def _load_external_data(model, path: Path, onnx: Any) -> None:
    """Load tensors kept in external files, each of which must be a file inside ``path``'s folder
    (no absolute paths, no ``..``, no links leading out) holding the bytes the model says."""
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    from workbench.limits import require_memory

    folder = path.parent.resolve()
    external = [t for t in _tensors(model) if uses_external_data(t)]
    total = 0
    for tensor in external:
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"{path.name}: tensor '{tensor.name}' is stored in external data '{location}'"
        if not location or Path(location).is_absolute() or Path(location).drive or ".." in Path(location).parts:
            raise UserError(f"{where}, which is not a file name inside the model's folder: "
                            f"keep the data files beside the model and export it again")
        target = (folder / location).resolve()
        if not target.is_relative_to(folder):
            raise UserError(f"{where}, which leads outside the model's folder {folder}: "
                            f"keep the data files beside the model")
        if not target.is_file():
            raise UserError(f"{where}, which is missing: put the data file beside {path.name}")
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
        except ValueError:
            raise UserError(f"{where} with an offset or length that is not a number: the file is damaged") from None
        size = target.stat().st_size
        if offset < 0 or offset > size or (length >= 0 and offset + length > size):
            raise UserError(f"{where}, which is shorter than the model says ({size} bytes, needs "
                            f"{offset + max(length, 0)}): the data file is damaged or belongs to another model")
        total += (length if length >= 0 else size - offset)
    if not external:
        return
    require_memory(ONNX_MEMORY_FACTOR * (total + model.ByteSize()), f"converting {path.name} with its external data",
                   "free memory or use a smaller model")
    if total + model.ByteSize() > _PROTOBUF_LIMIT:
        raise UserError(f"{path.name}: the model with its external data is larger than 2 GiB, more than "
                        f"onnx2torch can convert: use a smaller model")
    for tensor in external:
        try:
            load_external_data_for_tensor(tensor, str(folder))
        except Exception as exc:
            raise UserError(f"{path.name}: cannot read the external data of tensor '{tensor.name}' "
                            f"({_line(exc)}): put the data file beside the model") from None


# --- rewriting the ONNX graph before onnx2torch ------------------------------------------------

def _prepare(model, path: Path, onnx: Any):
    """Rewrite ``model`` for onnx2torch; returns it with each node's module scope (by first output).

    - an ``Identity`` of an initializer (torch's legacy exporter writes one for every duplicate
      weight) and a ``Constant`` become initializers: onnx2torch reads weights only from those
      (else ``KeyError: 'onnx::Conv_197'``);
    - shape arithmetic on small constants is computed (:func:`_fold_small`);
    - ``ReduceMean`` over H and W of a 4-d tensor becomes ``GlobalAveragePool`` (+ ``Flatten``
      without keepdims): the same numbers, in every opset, and a pool for the layer table;
    - a model whose operators onnx2torch lacks at its opset is converted to opset 17 with onnx's
      version converter (the dynamo exporter writes opset 18+, onnx2torch stops at 17).
    """
    scopes = {node.output[0]: _scope(node) for node in model.graph.node if node.output}
    _fold_constants(model, onnx)
    _fold_small(model)
    _reduce_mean_to_pool(model, _value_info(model, onnx), scopes)
    _reshape_allowzero(model)
    missing = _unsupported(model)
    if missing:
        reason = ""
        if _opset(model) > ONNX_FALLBACK_OPSET:
            from onnx import version_converter

            try:
                lowered = version_converter.convert_version(model, ONNX_FALLBACK_OPSET)
            except Exception as exc:
                reason = f"; converting the model to opset {ONNX_FALLBACK_OPSET} failed ({_line(exc).split('failed: ')[-1]})"
            else:
                still = _unsupported(lowered)
                if not still:
                    return lowered, scopes
                missing, reason = still, f" (nor at opset {ONNX_FALLBACK_OPSET})"
        kinds = {}
        for op, domain, version, node in missing:
            kinds.setdefault((op, domain, version), node)
        listed = [f"{op} (opset {version}{f', domain {domain}' if domain else ''}, node '{node}')"
                  for (op, domain, version), node in list(kinds.items())[:3]]
        more = f" and {len(kinds) - 3} more" if len(kinds) > 3 else ""
        raise UserError(f"{path.name}: the ONNX operator{'s' if len(kinds) > 1 else ''} {', '.join(listed)}{more} "
                        f"{'are' if len(kinds) > 1 else 'is'} not supported by {_onnx2torch_version()}{reason}: "
                        f"{EXPORT_HINT} or without that operator")
    return model, scopes


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _unsupported(model) -> list[tuple[str, str, int, str]]:
    """(op, domain, opset, node name) of every node onnx2torch has no converter for."""
    from onnx2torch.node_converters import get_converter

    opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
    found = []
    for node in model.graph.node:
        domain = "" if node.domain == "ai.onnx" else node.domain
        version = opsets.get(domain)
        try:
            if version is None:
                raise NotImplementedError
            get_converter(operation_type=node.op_type, version=version, domain=domain)
        except NotImplementedError:
            found.append((node.op_type, domain, version or 0, node.name or node.op_type))
    return found


def _fold_constants(model, onnx: Any) -> None:
    """Identity(initializer) and Constant nodes -> initializers under their output names."""
    if model.ir_version < 4:  # before IR 4 every initializer must also be a graph input
        return
    graph = model.graph
    outputs = {o.name for o in graph.output}
    inits = {t.name: t for t in graph.initializer}
    kept = []
    for node in graph.node:
        out = node.output[0] if len(node.output) == 1 else None
        tensor = None
        if out and out not in outputs and out not in inits:
            if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and node.input[0] in inits:
                tensor = onnx.TensorProto()
                tensor.CopyFrom(inits[node.input[0]])
            elif node.op_type == "Constant" and node.domain in ("", "ai.onnx") and not node.input:
                tensor = _constant_tensor(node, onnx)
        if tensor is None:
            kept.append(node)
            continue
        tensor.name = out
        graph.initializer.append(tensor)
        inits[out] = graph.initializer[-1]
    if len(kept) != len(graph.node):
        del graph.node[:]
        graph.node.extend(kept)


#: Operators :func:`_fold_small` evaluates when all their inputs are small constants: the shape
#: arithmetic exporters write (``x.view(n, groups, c // groups, h, w)`` at a fixed size).
_FOLDABLE = {"Add", "Sub", "Mul", "Div", "Neg", "Floor", "Ceil", "Min", "Max", "Concat", "Unsqueeze", "Squeeze",
             "Gather", "Cast", "Slice", "Reshape", "Range", "Equal", "Where", "ConstantOfShape", "Shape", "Identity",
             "Expand", "Tile", "Sqrt"}
_FOLD_MAX = 4096


def _fold_small(model) -> None:
    """Replace nodes of :data:`_FOLDABLE` whose inputs are all initializers of at most 4096 values
    by initializers holding their results (evaluated with onnx's reference implementation)."""
    import numpy as np
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    if model.ir_version < 4:
        return
    graph = model.graph
    outputs = {o.name for o in graph.output}
    opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
    inits = {t.name: t for t in graph.initializer}
    values: dict[str, Any] = {}
    kept = []
    for node in graph.node:
        ins = [i for i in node.input if i]
        if (node.op_type not in _FOLDABLE or node.domain not in ("", "ai.onnx") or not ins
                or any(i not in inits for i in ins) or any(o in outputs for o in node.output)
                or any(math.prod(inits[i].dims) > _FOLD_MAX for i in ins)):
            kept.append(node)
            continue
        try:
            for i in ins:
                if i not in values:
                    values[i] = numpy_helper.to_array(inits[i])
            results = ReferenceEvaluator(node, opsets={"": opsets.get("", 17)}).run(None, {i: values[i] for i in ins})
        except Exception:
            kept.append(node)
            continue
        results = [np.asarray(value) for value in results]
        if any(value.size > _FOLD_MAX for value in results):  # ConstantOfShape, Expand ... of a big tensor
            kept.append(node)
            continue
        for name, value in zip(node.output, results):
            values[name] = value
            graph.initializer.append(numpy_helper.from_array(value, name))
            inits[name] = graph.initializer[-1]
    if len(kept) != len(graph.node):
        del graph.node[:]
        graph.node.extend(kept)


def _constant_tensor(node, onnx: Any):
    from onnx import helper, numpy_helper

    for attr in node.attribute:
        if attr.name == "value" and attr.HasField("t"):
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attr.t)
            return tensor
        if attr.name in ("value_float", "value_floats", "value_int", "value_ints"):
            import numpy as np

            value = helper.get_attribute_value(attr)
            dtype = np.float32 if "float" in attr.name else np.int64
            return numpy_helper.from_array(np.array(value, dtype=dtype))
    return None


def _reshape_allowzero(model) -> None:
    """Drop ``allowzero=1`` from a Reshape whose constant shape has no 0 (where it changes nothing):
    the dynamo exporter sets it on every Reshape, and onnx2torch refuses it."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        if 0 in numpy_helper.to_array(inits[node.input[1]]).reshape(-1).tolist():
            continue
        for attr in list(node.attribute):
            if attr.name == "allowzero":
                node.attribute.remove(attr)


def _value_info(model, onnx: Any) -> dict[str, tuple[int | None, int, tuple[int | None, ...] | None]]:
    """Value name -> (rank or None, ONNX element type, dims with None where not fixed) from shape inference.

    Inference runs on a copy without the weights' values (large initializers become inputs of
    their type and shape): shapes never depend on them, and serialising them is most of its cost."""
    from onnx import helper, shape_inference

    light = onnx.ModelProto()
    light.ir_version, light.producer_name = model.ir_version, model.producer_name
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g = light.graph
    g.node.extend(model.graph.node)
    g.input.extend(model.graph.input)
    g.output.extend(model.graph.output)
    g.value_info.extend(model.graph.value_info)
    inputs = {v.name for v in model.graph.input}
    for init in model.graph.initializer:
        if math.prod(init.dims) <= _FOLD_MAX:
            g.initializer.append(init)
        elif init.name not in inputs:
            g.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    try:
        light = shape_inference.infer_shapes(light)
    except Exception:
        pass
    info: dict[str, tuple[int | None, int, tuple[int | None, ...] | None]] = {}
    graph = light.graph
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = value.type.tensor_type
        if t.HasField("shape"):
            dims = tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in t.shape.dim)
            info[value.name] = (len(dims), t.elem_type, dims)
        else:
            info[value.name] = (None, t.elem_type, None)
    for init in model.graph.initializer:
        info[init.name] = (len(init.dims), init.data_type, tuple(int(d) for d in init.dims))
    return info


def _reduce_mean_to_pool(model, ranks: dict, scopes: dict[str, tuple[str, str]]) -> None:
    """ReduceMean over axes {2, 3} of a 4-d tensor -> GlobalAveragePool (+ Flatten when keepdims=0)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes = []
    changed = False
    for node in graph.node:
        if node.op_type != "ReduceMean" or node.domain not in ("", "ai.onnx") or ranks.get(node.input[0], (None,))[0] != 4:
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1] in inits:
            axes = numpy_helper.to_array(inits[node.input[1]]).reshape(-1).tolist()
        if axes is None or sorted(int(a) % 4 for a in axes) != [2, 3]:
            nodes.append(node)
            continue
        changed = True
        out = node.output[0]
        if attrs.get("keepdims", 1):
            nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]], [out], name=node.name))
        else:
            pooled = f"{out}__pooled"
            if out in scopes:
                scopes[pooled] = scopes[out]
            nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]], [pooled], name=node.name))
            nodes.append(helper.make_node("Flatten", [pooled], [out], name=f"{node.name}__flatten", axis=1))
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)


# --- module names ------------------------------------------------------------------------------

def _scope(node) -> tuple[str, str]:
    """(module path, label) of an ONNX node, from the exporter's name scopes.

    The dynamo exporter records ``pkg.torch.onnx.name_scopes`` (``['', 'layer1', 'layer1.0',
    'layer1.0.relu', 'relu_1']``: the last module path, then the op); the legacy exporter names
    nodes ``/layer1/layer1.0/conv1/Conv`` (each scope a module name, prefixed by its parent's
    where torch's Sequential numbering does). Other producers' names are used as they are."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            if isinstance(scopes, list) and len(scopes) >= 2 and all(isinstance(s, str) for s in scopes):
                return _clean_path(scopes[-2]), _clean_part(scopes[-1])
            break
    name = node.name or ""
    parts = [p for p in name.split("/") if p]
    if len(parts) >= 2:
        return _clean_path(_collapse(parts[:-1])), _clean_part(parts[-1])
    return "", _clean_part(name or node.op_type)


def _collapse(parts: list[str]) -> str:
    """``['layer2', 'layer2.0', 'downsample', 'downsample.0']`` -> ``'layer2.0.downsample.0'``."""
    path, last = "", ""
    for part in parts:
        if last and part.startswith(last + "."):
            path = path[: len(path) - len(last)] + part
        elif path and part.startswith(path + "."):
            path = part
        else:
            path = f"{path}.{part}" if path else part
        last = part
    return path


#: Attribute names of the modules built here that a layer must not take (besides GraphModule's own).
_RESERVED = frozenset({"training", "meta", "calls", "input_size"})


def _clean_part(part: str) -> str:
    """One part of a module path: letters, digits, ``_`` and ``-`` (torchvision's ``block1-0``),
    never an attribute of the modules it goes into."""
    part = re.sub(r"[^\w-]", "_", part).strip("_") or "op"
    if hasattr(fx.GraphModule, part) or part in _RESERVED:
        part += "_"
    return part


def _clean_path(path: str) -> str:
    return ".".join(_clean_part(p) for p in path.split(".") if p)


def _plan_names(ops: list[tuple[str, str, str, bool]]) -> list[str | None]:
    """Module paths for ``ops`` = (scope, label, op type, is a module); None for functions.

    A scope whose only ops are one or more modules of one type, with nothing below it, names
    them itself (``layer1.0.relu``, then ``layer1.0.relu_1``: torch.fx's names for repeated calls);
    otherwise each module is ``<scope>.<label>``. Functions are run by their scope's module."""
    by_scope: dict[str, list[int]] = {}
    for i, (scope, *_rest) in enumerate(ops):
        by_scope.setdefault(scope, []).append(i)
    below = {".".join(s.split(".")[:k]) for s in by_scope if s for k in range(1, s.count(".") + 1)}
    leaf_scopes = {s for s, idx in by_scope.items()
                   if s and s not in below and all(ops[i][3] for i in idx) and len({ops[i][2] for i in idx}) == 1}
    taken = set(below) | {s for s in by_scope if s and s not in leaf_scopes}
    for s in leaf_scopes:
        taken |= {".".join(s.split(".")[:k]) for k in range(1, s.count(".") + 1)}
    names: list[str | None] = [None] * len(ops)

    def claim(base: str) -> str:
        name, k = base, 1
        while name in taken or any(t.startswith(name + ".") for t in taken):
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        return name

    for scope, idx in by_scope.items():
        for j, i in enumerate(idx):
            s, label, _, is_module = ops[i]
            if not is_module:
                continue
            if scope in leaf_scopes:
                names[i] = claim(scope if j == 0 else f"{scope}_{j}")
            else:  # exporters number ops (dynamo across the whole graph): number them in their scope instead
                label = re.sub(r"_\d+$", "", label).lower() or "op"
                names[i] = claim(f"{s}.{label}" if s else label)
    return names


# --- conversion and rebuilding -----------------------------------------------------------------

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


def _input_size(model) -> tuple[int, int, int] | None:
    """(C, H, W) of the model's one (N, C, H, W) input when the file fixes C, H and W."""
    inputs = _image_input(model)
    if len(inputs) != 1:
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[1:]):
        return None
    return tuple(int(d.dim_value) for d in dims[1:])  # type: ignore[return-value]


def _image_input(model):
    inits = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in inits]


def _check_io(model, path: Path) -> None:
    """One 4-d (N, C, H, W) input and one output, as every analysis here needs."""
    inputs = _image_input(model)
    if len(inputs) != 1:
        raise UserError(f"{path.name} has {len(inputs)} inputs: the workbench needs a model with one image input "
                        f"(N, C, H, W); export the model with a single input")
    if len(model.graph.output) != 1:
        raise UserError(f"{path.name} has {len(model.graph.output)} outputs: the workbench needs a model with one "
                        f"output; export the model with a single output")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise UserError(f"{path.name}: its input has {len(dims)} dimensions, the workbench needs images "
                        f"(N, C, H, W); export the model with a 4-d input")


def _smoke_test(module: nn.Module, model, path: Path) -> None:
    """One forward pass on zeros at the file's own input size: the converted module must run."""
    dims = _image_input(model)[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    if any(s is None for s in shape[1:]) or math.prod(s or 1 for s in shape) > _CHECK_NUMEL:
        return
    try:
        with torch.no_grad():
            module(torch.zeros(shape[0] or 1, *shape[1:]))
    except Exception as exc:
        raise UserError(f"{path.name}: the converted model does not run on its own input size "
                        f"{'x'.join(map(str, shape[1:]))} ({type(exc).__name__}: {_line(exc)}): {EXPORT_HINT}") from None


def _line(exc: BaseException, limit: int = 200) -> str:
    from workbench.models.graph import first_line

    return first_line(exc, limit)


# --- timm --------------------------------------------------------------------------------------

#: create_model keywords that would load weights from elsewhere than the local cache.
_TIMM_REFUSED = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir")


def timm_model(name: str, kwargs: dict) -> tuple[nn.Module, bool, str, str | None, tuple[int, int, int],
                                                  tuple[float, ...], tuple[float, ...]]:
    """``timm:NAME``: (module, trained, source, notice, input_size, mean, std).

    The architecture is ``timm.create_model(name, pretrained=False, **kwargs)`` initialized from
    ``zoo.INIT_SEED`` (global RNG untouched), in eval mode. Its pretrained weights are used only
    when already in the local Hugging Face cache (``$HF_HUB_CACHE``, ``$HUGGINGFACE_HUB_CACHE``,
    ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``, read at call time, as huggingface_hub does),
    from ``model.safetensors`` or, failing that, ``pytorch_model.bin`` read with ``weights_only=True``;
    nothing is downloaded. Found weights are handed to ``timm.create_model(..., pretrained=True,
    pretrained_cfg_overlay={"state_dict": ...})``, which loads a given state_dict before looking
    anywhere else and adapts it as it adapts its downloads (a head of another ``num_classes`` stays
    random: the notice says so; another ``in_chans`` sums or repeats the first conv's weights)."""
    from workbench.models import zoo

    name = str(name)
    spec = name if name.startswith("timm:") else f"timm:{name}"
    name = name[len("timm:"):] if name.startswith("timm:") else name
    try:
        import timm
        import timm.data
    except ImportError:
        raise UserError(f"{spec}: timm models need the optional extra: {TIMM_EXTRA}") from None
    if kwargs is not None and (not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs)):
        raise UserError(f"{spec}: the model's arguments must be a mapping of names to values, got {kwargs!r}")
    kwargs = dict(kwargs or {})
    refused = [k for k in kwargs if k in _TIMM_REFUSED]
    if refused:
        raise UserError(f"{spec}: the argument {refused[0]!r} is not accepted: pretrained weights are read only from "
                        f"the local Hugging Face cache; remove it")
    if ":" in name or not timm.is_model(name):
        close = difflib.get_close_matches(name, _timm_names(timm, name), n=3, cutoff=0.6)
        hint = f"did you mean {_or_list(close)}? " if close else ""
        raise UserError(f"unknown timm model '{name}': {hint}(see timm.list_models() for the names)")
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError as exc:  # a tag the architecture does not have
        tags = [m for m in timm.list_models(name.split(".")[0], pretrained=True)]
        raise UserError(f"{spec}: {_line(exc)}; its pretrained tags are {', '.join(tags[:6]) or 'none'}") from None
    cache = hub_cache_dir()
    found = _cached_weights(cfg, cache)
    overlay: dict[str, Any] = {}
    weights_path, state = None, None
    if found is not None:
        weights_path, state = found, _read_weights(found, spec)
        # timm loads a state_dict given in the cfg before any hub or URL (and adapts it as it does
        # downloads: the head of another num_classes, in_chans, its filter_fn); "source" "" keeps
        # it from resolving the hub first
        overlay = {"state_dict": state, "source": ""}
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(zoo.INIT_SEED)
            if overlay:
                model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
            else:
                model = timm.create_model(name, pretrained=False, **kwargs)
    except UserError:
        raise
    except TypeError as exc:
        raise UserError(f"{spec}: timm rejects the arguments {_show_kwargs(kwargs)} ({_line(exc)}): "
                        f"give only arguments timm.create_model('{name}') accepts") from None
    except Exception as exc:
        what = f"with the arguments {_show_kwargs(kwargs)} " if kwargs else ""
        hint = "fix the arguments" if kwargs else "try another model"
        if overlay:
            what += f"and the cached weights {weights_path} "
            hint += " or delete the cached file"
        raise UserError(f"{spec}: timm cannot build the model {what}({type(exc).__name__}: {_line(exc)}); {hint}") from None
    finally:
        overlay.clear()
    for attr in ("pretrained_cfg", "default_cfg"):
        value = getattr(model, attr, None)
        if isinstance(value, dict):
            value.pop("state_dict", None)
    model.eval()
    source_cfg = getattr(cfg, "source", None)
    for attr in ("pretrained_cfg", "default_cfg"):
        value = getattr(model, attr, None)
        if isinstance(value, dict) and "state_dict" in value:
            value.pop("state_dict", None)
            value["source"] = source_cfg
    data = timm.data.resolve_model_data_config(model) if hasattr(timm.data, "resolve_model_data_config") \
        else timm.data.resolve_data_config({}, model=model)
    size = tuple(int(v) for v in data["input_size"])
    if len(size) != 3:
        raise UserError(f"{spec}: timm gives the input size {size}, not (C, H, W): use an image model")
    channels = int(kwargs.get("in_chans", size[0]))  # timm's data config keeps the pretrained cfg's channels
    input_size = (channels, size[1], size[2])
    mean = tuple(float(v) for v in data["mean"])
    std = tuple(float(v) for v in data["std"])
    if len(mean) != channels:  # in_chans differs from the weights': the channels' average for each channel
        mean, std = (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels
    if weights_path is None:
        if _hub_id(cfg)[0] is None:
            notice = f"{spec}: timm knows no pretrained weights for this model; the model is UNTRAINED (random init)."
        else:
            notice = (f"{spec}: no pretrained weights in {cache} (looked for {_looked_for(cfg)}); the model is "
                      f"UNTRAINED (random init). Put the file there to use trained weights.")
        return model, False, f"untrained (random init, seed {zoo.INIT_SEED})", notice, input_size, mean, std
    notice = None
    if not _weights_loaded(model, state):
        raise UserError(f"{spec}: timm did not load the cached weights {weights_path}: they do not fit the "
                        f"model; delete the file or update timm")
    head = _untrained_head(model, state, cfg)
    if head:
        notice = f"{spec}: the classifier ({head}) is UNTRAINED (random init): its size differs from the pretrained weights'."
    return model, True, str(weights_path), notice, input_size, mean, std  # type: ignore[return-value]


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache as huggingface_hub resolves it, from the environment now."""
    home = os.path.expanduser(os.path.expandvars(os.environ.get(
        "HF_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
                                "huggingface"))))
    legacy = os.environ.get("HUGGINGFACE_HUB_CACHE", os.path.join(home, "hub"))
    return Path(os.path.expanduser(os.path.expandvars(os.environ.get("HF_HUB_CACHE", legacy))))


def _hub_id(cfg: Any) -> tuple[str | None, str | None, list[str]]:
    """(repo id, revision, file names to try) of a timm pretrained cfg; no repo when it has none."""
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None, None, []
    repo, _, revision = str(hub_id).partition("@")
    name = getattr(cfg, "hf_hub_filename", None)
    files = [name] if name else ["model.safetensors", "pytorch_model.bin"]
    return repo, revision or None, files


def _cached_weights(cfg: Any, cache: Path) -> Path | None:
    """The pretrained weights' file in the local cache, if there; never a network call."""
    repo, revision, files = _hub_id(cfg)
    if repo is None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in files:
        if not (filename.endswith(".safetensors") or filename.endswith(".bin") or filename.endswith(".pth")):
            continue
        try:
            found = try_to_load_from_cache(repo, filename, cache_dir=str(cache), revision=revision)
        except Exception:
            continue
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _looked_for(cfg: Any) -> str:
    """Where in the hub cache the weights would be, as the huggingface_hub client lays it out."""
    repo, revision, files = _hub_id(cfg)
    folder = "models--" + str(repo).replace("/", "--")
    return (f"{folder}/snapshots/<commit>/{' or '.join(files)}{f' at revision {revision}' if revision else ''}, "
            f"as `hf download {repo}` puts it")


def _read_weights(found: Path, spec: str) -> dict[str, torch.Tensor]:
    path = found
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            state = load_file(str(path))
        except Exception as exc:
            raise UserError(f"{spec}: the cached weights {path} are not a readable safetensors file ({_line(exc)}): "
                            f"delete the file or download it again") from None
    else:
        import pickle

        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
            raise UserError(f"{spec}: the cached weights {path} cannot be read as plain tensors ({_line(exc)}): "
                            f"delete the file or download model.safetensors instead") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{spec}: the cached weights {path} are not a state_dict: delete the file or download it again")
    return state


def _weights_loaded(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``model`` holds ``state``'s tensors (all that fit by name and shape, at least one)."""
    own = model.state_dict()
    common = [k for k, v in state.items() if k in own and own[k].shape == v.shape and v.dtype.is_floating_point]
    return bool(common) and sum(torch.equal(own[k].to(state[k].dtype), state[k]) for k in common) >= max(1, len(common) // 2)


def _untrained_head(model: nn.Module, state: dict[str, torch.Tensor], cfg: Any) -> str | None:
    """The classifier's name when the pretrained weights' head did not fit (another num_classes)."""
    classifier = getattr(cfg, "classifier", None)
    if classifier is None:
        return None
    names = [classifier] if isinstance(classifier, str) else list(classifier)
    own = model.state_dict()
    for name in names:
        key = f"{name}.weight"
        if key in own and (key not in state or state[key].shape != own[key].shape):
            return name
    return None


def _timm_names(timm: Any, name: str) -> list[str]:
    names = list(timm.list_models())
    if "." in name:
        names += list(timm.list_models(pretrained=True))
    return names


def _show_kwargs(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "(none)"


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" or {items[-1]}"


__all__ = ["read_onnx", "timm_model", "hub_cache_dir", "OnnxScope", "ONNX_EXTRA", "TIMM_EXTRA"]
