"""torch.fx tracing that leaves other threads alone, and keeps every layer that computes whole.

While it traces, torch.fx replaces ``nn.Module.__call__`` and ``nn.Module.__getattr__`` for the
whole process and puts them back afterwards. Two consequences, both seen on this code base:

- a forward pass in another thread during a trace is routed into the trace ("module is not
  installed as a submodule") — :class:`ThreadTracer` hands calls from other threads straight
  to the original methods, so forward passes need no lock;
- two traces at once restore each other's patches in the wrong order and leave every module in
  the process patched — so traces take turns (:attr:`ThreadTracer.turn`).

``turn`` is the one lock here that is not owned by a model: what it guards, the patched
``nn.Module`` class, belongs to the whole process. It is held for one trace only (no forward
pass, no I/O, no waiting on anything else), so it cannot deadlock.

Which modules are layers (leaves of the trace, one row each in the layer table):

- torch.fx's own rule: modules defined in ``torch.nn`` (except ``nn.Sequential``);
- the leaf types the caller names (``leaf_modules``: the model sources' own, torchvision's ops);
- **subclasses of a torch.nn layer defined anywhere else** (:func:`torch_layer`): the
  EfficientNet-Lite package's ``Conv2dStaticSamePadding`` and timm's ``Conv2dSame`` subclass
  ``nn.Conv2d`` and compute ``F.conv2d`` in their own forward. Traced through, the convolution is a
  function call (no row) and the padding module inside it (a ``ZeroPad2d``, the padded *input*)
  stands in for it: 0 of EfficientNet-Lite0's 49 convolutions were rows. Kept whole, the conv is a
  row with its own output shape, receptive field and stride, and its padding helper is no row;
- **a module the tracer cannot see through** (data-dependent control flow, iteration over a
  tensor ...): its failed trace is rolled back and it is kept whole, so one such block costs one
  row instead of the whole table.
"""

from __future__ import annotations

import threading
from typing import Any

import torch.nn as nn
from torchvision.models.feature_extraction import NodePathTracer

#: torch.nn classes that only hold other modules: subclassing one makes no layer.
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)


def torch_layer(cls: type) -> type | None:
    """The torch.nn layer class ``cls`` subclasses when ``cls`` is defined outside torch.nn
    (a conv, linear, norm, pool, activation ... but not ``nn.Module`` or a container), else None."""
    if not isinstance(cls, type) or _in_torch_nn(cls):
        return None
    for base in cls.__mro__[1:]:
        if base is nn.Module or not issubclass(base, nn.Module):
            continue
        if _in_torch_nn(base) and not issubclass(base, CONTAINERS):
            return base
    return None


def _in_torch_nn(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    return module.startswith(("torch.nn.", "torch.ao.nn.")) or module in ("torch.nn", "torch.ao.nn")


class ThreadTracer(NodePathTracer):
    """torchvision's NodePathTracer (layer names as ``create_feature_extractor`` gives them),
    tracing only the calls made by the thread that traces, with the leaf rules of the module
    docstring."""

    turn = threading.RLock()

    def trace(self, root: Any, concrete_args: dict[str, Any] | None = None):
        with ThreadTracer.turn:
            self._owner = threading.get_ident()
            self._proxy_cache: dict[str, Any] | None = None
            try:
                return super().trace(root, concrete_args)
            finally:
                self._owner = None
                self._proxy_cache = None

    def _foreign(self) -> bool:
        return threading.get_ident() != getattr(self, "_owner", None)

    def is_leaf_module(self, m: nn.Module, module_qualname: str) -> bool:
        if super().is_leaf_module(m, module_qualname):
            return True
        return torch_layer(type(m)) is not None

    def call_module(self, m: nn.Module, forward, args, kwargs):
        if self._foreign():
            return forward(*args, **kwargs)
        if self.is_leaf_module(m, self.path_of_module(m)):
            return super().call_module(m, forward, args, kwargs)
        mark = next(reversed(self.graph.nodes), None)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:  # noqa: BLE001 - any failure to trace through: keep the module whole
            self._roll_back(mark)
            qualname = self.path_of_module(m)
            old = self.current_module_qualname
            self.current_module_qualname = qualname
            try:
                return self.create_proxy("call_module", qualname, args, kwargs)
            finally:
                self.current_module_qualname = old

    def _roll_back(self, mark: Any) -> None:
        """Erase every node created after ``mark``, newest first (a node uses only older ones), and
        forget them (names, cached parameter proxies)."""
        erased = set()
        for node in list(reversed(self.graph.nodes)):
            if node is mark:
                break
            self.graph.erase_node(node)
            erased.add(node)
            self.node_to_qualname.pop(node, None)
        if self._proxy_cache:
            for key in [k for k, proxy in self._proxy_cache.items() if getattr(proxy, "node", None) in erased]:
                del self._proxy_cache[key]

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]):
        if self._foreign():
            return attr_val
        self._proxy_cache = parameter_proxy_cache
        return super().getattr(attr, attr_val, parameter_proxy_cache)
