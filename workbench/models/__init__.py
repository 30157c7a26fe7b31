"""Models: the zoo, loading files, the layer table (shapes, receptive fields) and truncation Φ_ℓ.

``load_model(spec)`` gives a :class:`LoadedModel` for a :class:`~workbench.config.model.ModelSpec`
(or its ``model`` string): a zoo name, a file, ``package.module:callable`` or ``timm:NAME``;
``from_module(module, input_size=...)`` wraps a module already in memory. Its ``layers()`` list
every addressable layer and ``truncate(name)`` computes the network up to one of them.
"""

from workbench.config.model import ModelSpec
from workbench.models.graph import LayerInfo
from workbench.models.sources import LoadedModel, NeedsTrust, from_module, load_model
from workbench.models.zoo import ZooEntry, zoo_entries

__all__ = ["LayerInfo", "LoadedModel", "ModelSpec", "NeedsTrust", "ZooEntry", "from_module", "load_model",
           "zoo_entries"]
