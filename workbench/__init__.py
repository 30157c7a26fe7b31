"""CNN Workbench: look inside convolutional networks.

The core (everything outside :mod:`workbench.ui`) is plain Python and torch; it never
imports Qt. Analyses are *jobs* (:mod:`workbench.jobs`) that yield progress events and
write their results to run folders (:mod:`workbench.runs`).

The Python API (:mod:`workbench.api`) is imported on first use, so ``import workbench``
stays cheap::

    import workbench
    workbench.invert(net, "layer3", "photo.png", input_size=(3, 64, 64))
    workbench.show(net, input_size=(3, 64, 64))
"""

from workbench.version import __version__

#: The API's names, each looked up in workbench.api on first use.
API = ("open_model", "invert", "maximize", "caricature", "deformation_sensitivity", "smoothness", "show")

__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name in API:
        from workbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(API))
