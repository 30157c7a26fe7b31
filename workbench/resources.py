"""Files shipped with the workbench: the repository's ``resources/``, installed as the package
``workbench_resources`` (bundled model weights, the trained filter-GAN run), and the user's data
folder, where ``workbench zoo train`` writes.

Paths are looked up when asked for, never at import time.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

PACKAGE = "workbench_resources"


def resources_root() -> Path:
    """The folder of the shipped resources (``resources/`` in a checkout, inside site-packages in a wheel).

    An editable install made before ``workbench_resources`` existed does not know the package;
    then the checkout's ``resources/`` beside ``workbench/`` is used.
    """
    try:
        root = importlib.resources.files(PACKAGE)
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "resources"
    return Path(str(root))


def resource_path(*parts: str) -> Path:
    """``resources/<parts...>``; it may not exist (a stripped install), so callers check."""
    return resources_root().joinpath(*parts)


def shipped_filtergan_run() -> Path:
    """The trained filter-GAN run that ships with the workbench (digits-vgg, conv4)."""
    return resource_path("filtergan", "digits-vgg-conv4")


def user_data_dir() -> Path:
    """The user's data folder for the workbench (platformdirs), where trained weights go."""
    import platformdirs

    return Path(platformdirs.user_data_dir("workbench", appauthor=False))


def user_models_dir() -> Path:
    """Where ``workbench zoo train`` writes by default; the zoo looks here before the bundled weights."""
    return user_data_dir() / "models"


def display_path(path: Path) -> str:
    """``path`` as ``resources/...`` when it is a shipped resource, else as it is."""
    try:
        return str(Path("resources") / Path(path).resolve().relative_to(resources_root().resolve()))
    except ValueError:
        return str(path)
