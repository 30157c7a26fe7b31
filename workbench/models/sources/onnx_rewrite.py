"""Rewriting an ONNX graph before onnx2torch converts it (:func:`_prepare`): operators it would
fail on or convert to modules the layer table cannot read, constants folded (small ones only),
and the torch module names the exporter recorded (:func:`_plan_names`)."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any

import torch.fx as fx

from workbench.errors import UserError


def _line(exc: BaseException, limit: int = 200) -> str:
    from workbench.models.graph import first_line

    return first_line(exc, limit)


def _onnx2torch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"onnx2torch {version('onnx2torch')}"
    except PackageNotFoundError:
        return "onnx2torch"


def _image_input(model):
    inits = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in inits]


#: The newest opset the installed onnx2torch (1.5.x) converts fully; newer models are converted
#: down to it with onnx's version converter when one of their operators is missing at their opset.
ONNX_FALLBACK_OPSET = 17


#: What to do about a model onnx2torch cannot convert: torch's legacy exporter at opset 17 writes
#: only operators it converts.
EXPORT_HINT = "export the model again with torch.onnx.export(..., dynamo=False, opset_version=17)"


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
    _fold_small(model, path)
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
#: The most values a node of constant inputs may make (16 Mi: 128 MiB of int64). A tiny file can
#: ask for far more — Range(0, 10**9), ConstantOfShape([10**9]), Tile by 10**9 — which folding, or
#: the forward pass that checks the converted module, would allocate: such a graph is refused from
#: the node's inputs alone, before anything is computed.
MAX_CONSTANT_VALUES = 1 << 24
#: Element-wise operators of _FOLDABLE: their result has the broadcast shape of their inputs.
_BROADCAST = {"Add", "Sub", "Mul", "Div", "Min", "Max", "Equal", "Where"}


def _fold_small(model, path: Path) -> None:
    """Replace nodes of :data:`_FOLDABLE` whose inputs are all initializers of at most 4096 values
    by initializers holding their results (evaluated with onnx's reference implementation), when
    :func:`_folded_size` says the result has at most 4096 values; a result over
    :data:`MAX_CONSTANT_VALUES` is a :class:`UserError` before anything is evaluated."""
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
        except Exception:
            kept.append(node)
            continue
        size = _folded_size(node, [values[i] for i in ins])
        if size is not None and size > MAX_CONSTANT_VALUES:
            raise UserError(f"{path.name}: node '{node.name or node.op_type}' ({node.op_type}) would make a tensor "
                            f"of {size:,} values from constants, over the limit of {MAX_CONSTANT_VALUES:,}: "
                            f"refused (a graph that grows its own constants)")
        if size is None or size > _FOLD_MAX:  # left to the converted module (bounded above)
            kept.append(node)
            continue
        try:
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


def _folded_size(node, inputs: list) -> int | None:
    """How many values ``node`` makes from the constant arrays ``inputs``, computed from their values
    and shapes without running it; None when it cannot be told (the node is then not folded)."""
    import numpy as np

    op = node.op_type
    try:
        if op == "Range":
            start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in inputs[:3])
            return max(math.ceil((limit - start) / delta), 0) if delta != 0 else None
        if op == "ConstantOfShape":
            dims = [int(d) for d in np.asarray(inputs[0]).reshape(-1)]
            return math.prod(dims) if all(d >= 0 for d in dims) else None
        if op == "Tile":
            repeats = [int(r) for r in np.asarray(inputs[1]).reshape(-1)]
            return inputs[0].size * math.prod(repeats) if all(r >= 0 for r in repeats) else None
        if op == "Expand":
            shape = tuple(int(d) for d in np.asarray(inputs[1]).reshape(-1))
            if any(d < 0 for d in shape):
                return None
            return math.prod(np.broadcast_shapes(inputs[0].shape, shape))
        if op in _BROADCAST:
            return math.prod(np.broadcast_shapes(*(np.asarray(v).shape for v in inputs)))
        if op == "Concat":
            return sum(np.asarray(v).size for v in inputs)
        if op == "Gather":
            return np.asarray(inputs[0]).size * max(np.asarray(inputs[1]).size, 1)
        return max(np.asarray(v).size for v in inputs)  # element-wise on one input, reshapes, slices, casts
    except (ValueError, TypeError, OverflowError, IndexError, ZeroDivisionError):
        return None


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
