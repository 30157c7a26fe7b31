"""Models from outside the workbench's zoo, under the names code written against this module
imports: ONNX files (:mod:`workbench.models.sources.onnx`, through onnx2torch) and timm
architectures (:mod:`workbench.models.sources.timm`)."""

from workbench.models.sources.onnx import ONNX_EXTRA, read_onnx
from workbench.models.sources.onnx_rebuild import OnnxScope
from workbench.models.sources.timm import TIMM_EXTRA, hub_cache_dir, timm_model

__all__ = ["read_onnx", "timm_model", "hub_cache_dir", "OnnxScope", "ONNX_EXTRA", "TIMM_EXTRA"]
