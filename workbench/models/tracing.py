"""torch.fx tracing that leaves other threads alone.

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
"""

from __future__ import annotations

import threading
from typing import Any

import torch.nn as nn
from torchvision.models.feature_extraction import NodePathTracer


class ThreadTracer(NodePathTracer):
    """torchvision's NodePathTracer (layer names as ``create_feature_extractor`` gives them),
    tracing only the calls made by the thread that traces."""

    turn = threading.RLock()

    def trace(self, root: Any, concrete_args: dict[str, Any] | None = None):
        with ThreadTracer.turn:
            self._owner = threading.get_ident()
            try:
                return super().trace(root, concrete_args)
            finally:
                self._owner = None

    def _foreign(self) -> bool:
        return threading.get_ident() != getattr(self, "_owner", None)

    def call_module(self, m: nn.Module, forward, args, kwargs):
        if self._foreign():
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]):
        if self._foreign():
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)
