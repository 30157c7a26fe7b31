"""Models: the zoo, loading files, the layer table (shapes, receptive fields) and truncation Φ_ℓ.

``load_model(spec)`` gives a :class:`LoadedModel` for a zoo name or a file; its ``layers()``
list every addressable layer and ``truncate(name)`` computes the network up to one of them.
"""

from workbench.models.graph import LayerInfo
from workbench.models.loading import LoadedModel, NeedsTrust, load_model
from workbench.models.zoo import ZooEntry, zoo_entries

__all__ = ["LayerInfo", "LoadedModel", "NeedsTrust", "ZooEntry", "load_model", "zoo_entries"]
