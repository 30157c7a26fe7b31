"""Opening a model from a :class:`~workbench.config.model.ModelSpec`: the names code written
against this module imports. The sources live in :mod:`workbench.models.sources` (one module per
way of naming a model, behind one :func:`load_model`)."""

from workbench.models.sources import (
    IMAGENET_RULE, IN_MEMORY, LoadedModel, NeedsTrust, Prediction, from_module, load_model)
from workbench.models.sources.describe import imagenet_rule

__all__ = ["IMAGENET_RULE", "IN_MEMORY", "LoadedModel", "NeedsTrust", "Prediction", "from_module", "imagenet_rule",
           "load_model"]
