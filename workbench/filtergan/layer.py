"""Cutting a frozen sequential CNN around its conv layer ℓ (filter-GAN, sect. 3).

    CNN = suffix ∘ rest ∘ conv_ℓ ∘ prefix

``prefix`` computes CNN_{ℓ−1}(I); ``conv`` is layer ℓ's convolution, whose filters G
replaces; ``rest`` is the remainder of layer ℓ (its batch-norm with the frozen statistics,
its nonlinearity and its pooling, up to the next layer with weights); ``suffix`` is the rest
of the network. The activation the discriminator sees is ``rest(conv(prefix(I)))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from workbench.errors import UserError

#: Modules that belong to "the rest of layer ℓ" after its convolution.
REST_KINDS = (nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.MaxPool2d, nn.AvgPool2d, nn.Dropout, nn.Identity)


@dataclass
class LayerSplit:
    name: str
    prefix: nn.Sequential
    conv: nn.Conv2d
    rest: nn.Sequential
    suffix: nn.Sequential
    rest_names: list[str]
    kinds: list[str]       # class names of the whole network, in order
    output_index: int      # index in ``kinds`` of the last module of layer ℓ

    def activation(self, features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """rest(Conv(features, (weight, bias))) with one filter set per image, or one for all."""
        from workbench.filtergan.networks import conv_per_sample

        if weight.dim() == 4:
            weight, bias = weight.unsqueeze(0), bias.unsqueeze(0)
        return self.rest(conv_per_sample(features, weight, bias, self.conv))

    def real_activation(self, features: torch.Tensor) -> torch.Tensor:
        return self.rest(self.conv(features))


def sequential_of(model) -> nn.Sequential:
    module = getattr(model, "module", model)
    if not isinstance(module, nn.Sequential):
        raise UserError("the filter-GAN needs a sequential network with named layers, such as the bundled "
                        "digits-vgg: pick one of the bundled models")
    return module


def split_at(model, layer: str) -> LayerSplit:
    """Split ``model`` (a LoadedModel or an nn.Sequential) at its conv layer ``layer``."""
    seq = sequential_of(model)
    names = [n for n, _ in seq.named_children()]
    modules = [m for _, m in seq.named_children()]
    if layer not in names:
        convs = [n for n, m in zip(names, modules) if isinstance(m, nn.Conv2d)]
        raise UserError(f"layer '{layer}' is not in the network: use one of its conv layers ({', '.join(convs)})")
    i = names.index(layer)
    conv = modules[i]
    if type(conv) is not nn.Conv2d:
        convs = [n for n, m in zip(names, modules) if type(m) is nn.Conv2d]
        raise UserError(f"layer '{layer}' is a {type(conv).__name__}, not a convolution: use one of {', '.join(convs)}")
    if conv.groups != 1:
        raise UserError(f"layer '{layer}' is a grouped convolution, which the filter-GAN does not support")
    j = i + 1
    while j < len(modules) and isinstance(modules[j], REST_KINDS):
        j += 1
    for m in modules:
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
    return LayerSplit(name=layer, prefix=nn.Sequential(*modules[:i]), conv=conv,
                      rest=nn.Sequential(*modules[i + 1:j]), suffix=nn.Sequential(*modules[j:]),
                      rest_names=names[i + 1:j], kinds=[type(m).__name__ for m in modules], output_index=j - 1)


def resolve_model(spec, device: torch.device, trust: bool = False):
    """The model a run folder names (a spec string, or its recorded ModelSpec). A file that is code
    or a Python callable it names opens only with ``trust``, the user's consent for this call."""
    from workbench.models import load_model

    return load_model(spec, device=device, trust=trust, imports=False)


def normalize(images: torch.Tensor, model) -> torch.Tensor:
    """Pixels in [0, 1] → the model's input, (p − mean) / std."""
    mean = torch.tensor(model.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(model.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean) / std


def digits_of(model, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled digits split the model was trained on; other data sets are not bundled."""
    from workbench.data.digits import load_digits32

    if getattr(model, "dataset", None) not in (None, "digits"):
        raise UserError(f"the filter-GAN trains on the bundled digits, but {model.name} was trained on "
                        f"{model.dataset}: use a digits model such as digits-vgg")
    c, h, w = model.input_size
    if c != 1:
        raise UserError(f"{model.name} takes {c}-channel input; the bundled digits are grey: use a digits model")
    return load_digits32(split, size=h)


@torch.no_grad()
def batched(fn, x: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)])
