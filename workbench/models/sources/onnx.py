"""The ONNX model source: ``.onnx`` files through onnx2torch (extra ``[onnx]``, imported only when used).

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
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn as nn

from workbench.config.model import ModelSpec
from workbench.errors import UserError
from workbench.models.sources.describe import MAX_CHANNELS, MAX_SIDE, _describe_input, _finish
from workbench.models.sources.loaded import LoadedModel, _first_line
from workbench.models.sources.onnx_rebuild import _convert, _rebuild
from workbench.models.sources.onnx_rewrite import EXPORT_HINT, _image_input, _line, _prepare


ONNX_EXTRA = "pip install 'cnn-workbench[onnx]'"


#: Memory one conversion may need, as a multiple of the model's bytes: the protobuf, onnx2torch's
#: tensors, and the torch module built from them are alive at once.
ONNX_MEMORY_FACTOR = 3


#: A forward pass on zeros checks the converted module when its input has at most this many values.
_CHECK_NUMEL = 1 << 24


_PROTOBUF_LIMIT = 2**31 - 1


def _load_onnx(path: Path, spec: ModelSpec, sidecar: dict | None, device: torch.device) -> LoadedModel:
    if spec.arch is not None:
        raise UserError(f"--arch applies to weight files; {path.name} is an ONNX graph, its own architecture: drop --arch")
    module = read_onnx(path)
    static, shown = _onnx_input_shape(path)
    if static is None and spec.input_size is None and not (sidecar and "input_size" in sidecar):
        raise UserError(f"{path.name}: the ONNX graph's input shape {shown} is not fixed: "
                        f"pass --input-size CxHxW (e.g. 3x224x224)")
    side = path.with_suffix(".json").name
    io = _describe_input(str(path), spec, module, known=None, sidecar=sidecar, side=side, graph_size=static,
                         guess_hint=None if sidecar else f"no sidecar {side}")
    meta = dict(sidecar or {})
    return _finish(str(path), spec, module, io, trained=True, source=f"{path} (ONNX)", notices=[],
                   dataset=meta.get("dataset"), meta=meta, device=device, aliases=None)


def _onnx_input_shape(path: Path) -> tuple[tuple[int, int, int] | None, str]:
    """The graph input's (C, H, W) when fixed (the batch may be dynamic), else None; and the shape as text."""
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except ImportError:
        raise UserError(f"{path.name}: reading ONNX files needs the onnx package: pip install 'cnn-workbench[onnx]'") from None
    except Exception as exc:
        raise UserError(f"{path.name} is not a readable ONNX file ({_first_line(exc)})") from None
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UserError(f"{path.name}: the ONNX graph takes {len(inputs)} inputs "
                        f"({', '.join(i.name for i in inputs[:4]) or 'none'}); the workbench feeds it one image batch")
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in inputs[0].type.tensor_type.shape.dim]
    shown = "x".join(str(d) for d in dims) or "(unknown)"
    if len(dims) == 4 and all(isinstance(d, int) and d > 0 for d in dims[1:]):
        c, h, w = dims[1:]
        if 1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE:
            return (c, h, w), shown
    if len(dims) != 4:
        raise UserError(f"{path.name}: the ONNX graph's input has shape {shown}, not an image batch N x C x H x W")
    return None, shown


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
        where = f"{path.name}: tensor '{tensor.name}' is stored in external data {location!r:.80}"
        if not location or any(ord(c) < 32 for c in location) or Path(location).is_absolute() or Path(location).drive or ".." in Path(location).parts:
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


def _input_size(model) -> tuple[int, int, int] | None:
    """(C, H, W) of the model's one (N, C, H, W) input when the file fixes C, H and W."""
    inputs = _image_input(model)
    if len(inputs) != 1:
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[1:]):
        return None
    return tuple(int(d.dim_value) for d in dims[1:])  # type: ignore[return-value]


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
