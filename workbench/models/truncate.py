"""Φ_ℓ: the network computed only up to layer ℓ (IJCV paper, sect. 3: the representation Φ).

The network is traced with FX (:func:`workbench.models.graph.trace`, the names of the layer
table), layer ℓ's node becomes the graph's output and every node it does not depend on is
removed, so nothing past ℓ runs — what torchvision's ``create_feature_extractor`` does, with one
trace in eval mode instead of three, and a tracer that leaves other threads alone. Our own leaf
modules (:func:`workbench.models.sources.leaf_modules`) are kept whole.

The tensors of a forward's tuple, list or dict result are layers too (``output.0``, ``output.<key>``,
see :mod:`workbench.models.graph`): the graph then returns that part of the result. A TorchScript
module whose forward is a chain of its children (:func:`workbench.models.graph.script_steps`) is
cut by running its layers one after another up to ℓ.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn

from workbench.models.graph import output_paths, output_prefix, pick, script_steps, trace


class Truncated(nn.Module):
    """Maps a normalized input batch (N, C, H, W) to the output of one layer; frozen, eval."""

    def __init__(self, extractor: nn.Module, layer: str) -> None:
        super().__init__()
        self.extractor = extractor
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)[self.layer]

    def train(self, mode: bool = True) -> "Truncated":
        return super().train(False)


class ScriptChain(nn.Module):
    """The layers of a chain-shaped TorchScript module run one after another, up to the last of
    ``layers``: maps a batch to {name: output}."""

    def __init__(self, steps: list[tuple[str, nn.Module, str]], layers: list[str]) -> None:
        super().__init__()
        names = [name for name, _, _ in steps]
        missing = [layer for layer in layers if layer not in names]
        if missing:
            raise KeyError(missing[0])
        last = max(names.index(layer) for layer in layers) + 1
        self.names = names[:last]
        self.steps = nn.ModuleList([step for _, step, _ in steps[:last]])
        self.layers = list(layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        found: dict[str, torch.Tensor] = {}
        for name, step in zip(self.names, self.steps):
            x = step(x)
            found[name] = x
        return {layer: found[layer] for layer in self.layers}


def _output_node(graph: fx.Graph, output: fx.Node, prefix: str, name: str) -> fx.Node:
    """The node giving the part ``name`` (``<prefix>.<path>``) of the forward's result; parts of a
    node's value (a tuple a submodule returns) are picked out by new nodes. KeyError if none."""
    if not name.startswith(prefix + "."):
        raise KeyError(name)
    parts = tuple(name[len(prefix) + 1:].split("."))
    if "" in parts:
        raise KeyError(name)
    for path, leaf in output_paths(output.args[0]):
        if isinstance(leaf, fx.Node) and parts[:len(path)] == path:
            node = leaf
            with graph.inserting_before(output):
                for part in parts[len(path):]:
                    node = graph.call_function(pick, (node, part))
            return node
    raise KeyError(name)


def _cut(module: nn.Module, outputs: dict[str, str]) -> fx.GraphModule:
    """``module``'s graph returning {key: output of layer outputs[key]} (names of the layer table),
    every node none of them depends on removed."""
    gm, names, _ = trace(module)
    nodes = {name: node for node, name in names.items()}
    graph = gm.graph
    (output,) = [n for n in graph.nodes if n.op == "output"]
    prefix = output_prefix(names.values())
    for name in set(outputs.values()) - set(nodes):
        nodes[name] = _output_node(graph, output, prefix, name)
    graph.erase_node(output)
    with graph.inserting_after(list(graph.nodes)[-1]):
        graph.output({key: nodes[name] for key, name in outputs.items()})
    graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _extractor(module: nn.Module, layers: list[str]) -> nn.Module:
    if isinstance(module, torch.jit.ScriptModule):
        return ScriptChain(script_steps(module), layers)
    return _cut(module, {name: name for name in layers})


def truncate(module: nn.Module, layer: str) -> Truncated:
    """Φ_ℓ for the layer name ``layer`` (see :func:`workbench.models.graph.layer_table`)."""
    from workbench.errors import UserError

    try:
        extractor = _extractor(module, [layer])
    except KeyError:
        raise UserError(f"unknown layer '{layer}': see `workbench layers` for the names") from None
    phi = Truncated(extractor, layer).eval()
    phi.requires_grad_(False)
    return phi


def feature_extractor(module: nn.Module, layers: list[str]) -> nn.Module:
    """Several layers in one pass: maps a batch to {name: output} for layer-table names (a
    module's path for its first call, ``_1``, ``_2`` ... for later ones), computing nothing past
    the last of them. Unlike torchvision's ``create_feature_extractor`` it takes module paths as
    they are (torchvision renames ``relu1_2`` to ``relu1_1``) and leaves other threads alone."""
    from workbench.errors import UserError

    was_training = module.training
    try:
        return _extractor(module, list(layers))
    except KeyError as exc:
        raise UserError(f"unknown layer '{exc.args[0]}': see `workbench layers` for the names") from None
    finally:
        module.train(was_training)
