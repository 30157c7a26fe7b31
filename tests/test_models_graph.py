"""Layer tables: names, aliases, shapes, and receptive fields against the IJCV paper's Table 1."""

from __future__ import annotations

import copy

import pytest
import torch

from workbench.errors import UserError
from workbench.models import load_model
from workbench.models import architectures as A
from workbench.models.graph import layer_table

#: Mahendran & Vedaldi (IJCV 2016), Table 1: AlexNet column (name, receptive field size, stride).
ALEXNET_TABLE1 = [
    ("conv1", 11, 4), ("relu1", 11, 4), ("pool1", 19, 8), ("conv2", 51, 8), ("relu2", 51, 8), ("pool2", 67, 16),
    ("conv3", 99, 16), ("relu3", 99, 16), ("conv4", 131, 16), ("relu4", 131, 16), ("conv5", 163, 16),
    ("relu5", 163, 16), ("pool5", 195, 32), ("fc6", 355, 32), ("relu6", 355, 32), ("fc7", 355, 32),
    ("relu7", 355, 32), ("fc8", 355, 32),
]

#: Table 1, VGG-VD-16 column.
VGG16_TABLE1 = [
    ("conv1_1", 3, 1), ("relu1_1", 3, 1), ("conv1_2", 5, 1), ("relu1_2", 5, 1), ("pool1", 6, 2),
    ("conv2_1", 10, 2), ("relu2_1", 10, 2), ("conv2_2", 14, 2), ("relu2_2", 14, 2), ("pool2", 16, 4),
    ("conv3_1", 24, 4), ("relu3_1", 24, 4), ("conv3_2", 32, 4), ("relu3_2", 32, 4), ("conv3_3", 40, 4),
    ("relu3_3", 40, 4), ("pool3", 44, 8), ("conv4_1", 60, 8), ("relu4_1", 60, 8), ("conv4_2", 76, 8),
    ("relu4_2", 76, 8), ("conv4_3", 92, 8), ("relu4_3", 92, 8), ("pool4", 100, 16), ("conv5_1", 132, 16),
    ("relu5_1", 132, 16), ("conv5_2", 164, 16), ("relu5_2", 164, 16), ("conv5_3", 196, 16),
    ("relu5_3", 196, 16), ("pool5", 212, 32), ("fc6", 404, 32), ("relu6", 404, 32), ("fc7", 404, 32),
    ("relu7", 404, 32), ("fc8", 404, 32),
]


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def alexnet_layers():
    import torchvision

    with torch.random.fork_rng():
        return layer_table(torchvision.models.alexnet(), (3, 224, 224), aliases="alexnet")


@pytest.mark.parametrize("alias,rf,stride", ALEXNET_TABLE1)
def test_alexnet_matches_table1(alexnet_layers, alias, rf, stride):
    (info,) = [l for l in alexnet_layers if l.alias == alias]
    assert (info.rf_size, info.stride) == (rf, stride)


def test_alexnet_aliases_in_order_and_dropouts_unnamed(alexnet_layers):
    assert [l.alias for l in alexnet_layers if l.alias] == [a for a, _, _ in ALEXNET_TABLE1]
    assert all(l.alias is None for l in alexnet_layers if l.kind == "Dropout")
    by_alias = {l.alias: l for l in alexnet_layers}
    assert by_alias["conv1"].name == "features.0" and by_alias["conv1"].shape == (64, 55, 55)
    assert by_alias["pool5"].shape == (256, 6, 6)
    assert by_alias["fc8"].name == "classifier.6" and by_alias["fc8"].shape == (1000,)


def test_vgg16_matches_table1(empty_hub):
    model = load_model("vgg16")
    assert [l.alias for l in model.layers() if l.alias] == [a for a, _, _ in VGG16_TABLE1]
    for alias, rf, stride in VGG16_TABLE1:
        info = model.layer(alias)
        assert (alias, info.rf_size, info.stride) == (alias, rf, stride)
    assert model.layer("conv5_3").shape == (512, 14, 14)
    assert model.layer("fc6").name == "classifier.0"
    assert [l.index for l in model.layers()] == list(range(len(model.layers())))


def test_resnet18_branches_and_merges(empty_hub):
    model = load_model("resnet18")
    names = [l.name for l in model.layers()]
    for name in ("conv1", "layer1.0.add", "layer1.0.relu_1", "layer2.1.relu_1", "layer3.0.add",
                 "layer3.0.downsample.0", "avgpool", "flatten", "fc"):
        assert name in names
    add = model.layer("layer2.0.add")
    main, shortcut = model.layer("layer2.0.bn2"), model.layer("layer2.0.downsample.1")
    assert add.kind == "add" and add.shape == (128, 28, 28)
    assert main.rf_size > shortcut.rf_size
    assert (add.rf_size, add.stride) == (max(main.rf_size, shortcut.rf_size), max(main.stride, shortcut.stride))
    # conv1 7/2, maxpool 11/4, each 3x3 conv of layer1 adds 2*4 = 8
    assert (model.layer("maxpool").rf_size, model.layer("maxpool").stride) == (11, 4)
    assert model.layer("layer1.1.relu_1").rf_size == 11 + 4 * 8
    assert model.layer("fc").shape == (1000,)
    assert names.index("layer1.0.add") < names.index("layer1.0.relu_1") < names.index("layer1.1.conv1")


def test_lenet5_table():
    model = load_model("digits-lenet5")
    rows = [(l.name, l.kind, l.shape, l.rf_size, l.stride) for l in model.layers()]
    assert rows[:9] == [
        ("c1", "Conv2d", (6, 28, 28), 5, 1), ("tanh1", "Tanh", (6, 28, 28), 5, 1),
        ("s2", "Subsampling", (6, 14, 14), 6, 2), ("tanh2", "Tanh", (6, 14, 14), 6, 2),
        ("c3", "PartialConv2d", (16, 10, 10), 14, 2), ("tanh3", "Tanh", (16, 10, 10), 14, 2),
        ("s4", "Subsampling", (16, 5, 5), 16, 4), ("tanh4", "Tanh", (16, 5, 5), 16, 4),
        ("c5", "Conv2d", (120, 1, 1), 32, 4),
    ]
    assert rows[-1] == ("output", "Linear", (10,), 32, 4)
    assert all(l.alias is None for l in model.layers())


def test_digits_vgg_table_and_global_layers():
    model = load_model("digits-vgg")
    assert [l.name for l in model.layers()][:4] == ["conv1", "bn1", "relu1", "conv2"]
    assert (model.layer("pool5").shape, model.layer("pool5").rf_size, model.layer("pool5").stride) == ((128, 4, 4), 28, 8)
    # flatten sees the whole 4x4 map: 28 + 3 * 8
    assert model.layer("flatten").rf_size == 52 and model.layer("fc").shape == (10,)


def test_adaptive_pool_to_one_sees_whole_input():
    rows = {l.name: l for l in layer_table(A.cifar_vgg("maxpool"), (1, 32, 32))}
    assert (rows["down4"].shape, rows["down4"].rf_size, rows["down4"].stride) == ((256, 2, 2), 76, 16)
    assert (rows["gap"].shape, rows["gap"].rf_size, rows["gap"].stride) == ((256, 1, 1), 76 + 16, 16)


def _gradient_extent(module, layer, size):
    """Extent (rows, cols) of the input pixels that reach the centre unit of ``layer``.

    All weights made positive and the input positive, so every unit is active and every path counts.
    """
    from workbench.models.truncate import truncate

    net = copy.deepcopy(module).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_().add_(1e-3)
    phi = truncate(net, layer)
    x = torch.rand(1, module_in(net), size, size, generator=torch.Generator().manual_seed(0)) + 0.5
    x.requires_grad_(True)
    y = phi(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    nz = (x.grad[0].abs().sum(0) > 0).nonzero()
    return int(nz[:, 0].max() - nz[:, 0].min() + 1), int(nz[:, 1].max() - nz[:, 1].min() + 1)


def module_in(net):
    return next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d)).in_channels


@pytest.mark.parametrize("arch,size,layers", [
    ("avgpool", 64, ["relu1_2", "down1", "relu2_2", "down3"]),
    ("strided", 64, ["down1", "down2", "relu3_1"]),
])
def test_receptive_field_equals_gradient_support(arch, size, layers):
    module = A.cifar_vgg(arch)
    table = {l.name: l for l in layer_table(module, (1, size, size))}
    for layer in layers:
        assert _gradient_extent(module, layer, size) == (table[layer].rf_size,) * 2, layer


def test_lenet5_receptive_field_equals_gradient_support():
    module = A.lenet5()
    table = {l.name: l for l in layer_table(module, (1, 32, 32))}
    for layer in ("c1", "s2", "c3", "s4", "c5"):
        assert _gradient_extent(module, layer, 64) == (table[layer].rf_size,) * 2, layer


def test_unknown_layer_suggests_close_names():
    model = load_model("digits-vgg")
    with pytest.raises(UserError) as err:
        model.layer("relu9")
    message = str(err.value)
    assert "unknown layer 'relu9' in digits-vgg" in message and "relu5" in message
    assert "workbench layers --model digits-vgg" in message and "\n" not in message


def test_layer_by_alias_and_name_are_the_same(alexnet_layers, empty_hub):
    model = load_model("alexnet")
    assert model.layer("relu3") == model.layer("features.7")
    assert model.layers() is model.layers()


def test_torchvision_leaf_blocks_compose_their_convolutions(empty_hub):
    # Conv2dNormActivation is a torchvision.ops leaf: its conv's kernel and stride still count
    model = load_model("mobilenet_v2")
    first = model.layer("features.0")
    assert (first.kind, first.shape, first.rf_size, first.stride) == ("Conv2dNormActivation", (32, 112, 112), 3, 2)
    # features.1: depthwise 3x3 (7/2); features.2: depthwise 3x3 stride 2 (11/4); features.3: depthwise 3x3 (19/4)
    assert (model.layer("features.3.add").rf_size, model.layer("features.3.add").stride) == (19, 4)


# --- receptive fields through reshapes (issue 13) ------------------------------------------------

def _features48():
    """48 px in, 128x3x3 out at stride 8 with receptive field 33."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3), torch.nn.ReLU(),
        torch.nn.MaxPool2d(3, 2), torch.nn.Conv2d(64, 128, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2))


class _Flatten48(torch.nn.Module):
    def __init__(self, flatten):
        super().__init__()
        self.features, self.fc, self.flatten = _features48(), torch.nn.Linear(128 * 3 * 3, 10), flatten

    def forward(self, x):
        return self.fc(self.flatten(self.features(x)))


def _permuted_then_sized(x):
    y = x.permute(0, 2, 3, 1)
    return y.reshape(y.size(0), -1)


#: Each way of flattening the 128x3x3 map, with the fc RF the table gave before issue 13 (for the record).
FLATTENS_48 = [
    ("view(x.size(0), -1)", lambda x: x.view(x.size(0), -1), 65),
    ("reshape(n, -1)", lambda x: x.reshape(x.shape[0], -1), 65),
    ("torch.flatten(x, 1)", lambda x: torch.flatten(x, 1), 49),
    ("x.flatten(1)", lambda x: x.flatten(1), 49),
    ("permute(0, 2, 3, 1).reshape(n, -1)", lambda x: x.permute(0, 2, 3, 1).reshape(x.size(0), -1), 1065),
    ("permute.contiguous.view", lambda x: x.permute(0, 2, 3, 1).contiguous().view(x.size(0), -1), 1065),
    ("permute, then reshape(y.size(0), -1)", _permuted_then_sized, 2065),
    ("transpose(1, 3).flatten(1)", lambda x: x.transpose(1, 3).flatten(1), 1049),
    ("movedim(1, -1).reshape.squeeze", lambda x: x.movedim(1, -1).reshape(x.size(0), 1, -1).squeeze(1), None),
]


@pytest.mark.parametrize("label,flatten,before", FLATTENS_48, ids=[f[0] for f in FLATTENS_48])
def test_flatten_of_a_permuted_map_sees_it_whole_once(label, flatten, before):
    from workbench.preimage.presets import maximize_C

    net = _Flatten48(flatten)
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    assert net(x).shape == (2, 10)
    rows = {l.name: l for l in layer_table(net, (3, 48, 48))}
    last = rows["features.10"]
    assert (last.shape, last.rf_size, last.stride) == ((128, 3, 3), 33, 8)
    # the flatten rule of Table 1: 33 + (3 - 1) * 8, whatever the order of the dims
    assert (rows["fc"].shape, rows["fc"].rf_size, rows["fc"].stride) == ((10,), 49, 8)
    assert maximize_C(rows["fc"].rf_size) == 49 ** 2  # before: up to 2065² (1,776x more)


class _ChannelsLast(torch.nn.Module):
    """conv, then a ConvNeXt-style Linear over channels in NHWC, back to NCHW, and a strided conv."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3)
        self.mix = torch.nn.Linear(4, 4)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, stride=2)
        self.conv3 = torch.nn.Conv2d(4, 4, 3)

    def forward(self, x):
        x = self.conv1(x).permute(0, 2, 3, 1)
        x = self.mix(x).transpose(1, 3).transpose(2, 3)  # NHWC -> NWHC... -> NCHW
        return self.conv3(self.conv2(x))


def test_permutes_and_a_linear_over_channels_change_no_receptive_field():
    rows = {l.name: l for l in layer_table(_ChannelsLast(), (1, 32, 32))}
    assert (rows["conv1"].rf_size, rows["mix"].rf_size, rows["mix"].shape) == (3, 3, (30, 30, 4))
    assert (rows["conv2"].rf_size, rows["conv2"].stride) == (5, 2)
    assert (rows["conv3"].rf_size, rows["conv3"].stride) == (9, 2)


def test_permuted_receptive_field_equals_gradient_support():
    net = _ChannelsLast().eval()
    table = {l.name: l for l in layer_table(net, (1, 32, 32))}
    with torch.no_grad():
        for p in net.parameters():
            p.abs_().add_(1e-3)
    x = (torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)) + 0.5).requires_grad_(True)
    y = net(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    nz = (x.grad[0, 0] > 0).nonzero()
    extent = (int(nz[:, 0].max() - nz[:, 0].min() + 1), int(nz[:, 1].max() - nz[:, 1].min() + 1))
    assert extent == (table["conv3"].rf_size,) * 2 == (9, 9)


def test_a_linear_over_the_width_of_an_nchw_map_sees_the_width_whole():
    class WidthMix(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3, stride=2)
            self.mix = torch.nn.Linear(7, 7)

        def forward(self, x):
            return self.mix(self.conv(x))  # (N, 2, 7, 7): mixes the 7 columns

    rows = {l.name: l for l in layer_table(WidthMix(), (1, 16, 16))}
    assert (rows["conv"].shape, rows["conv"].rf_size, rows["conv"].stride) == ((2, 7, 7), 3, 2)
    assert (rows["mix"].shape, rows["mix"].rf_size, rows["mix"].stride) == ((2, 7, 7), 3 + 6 * 2, 2)


def test_a_kernel_larger_than_its_map_sees_the_map_whole_and_no_more():
    class Wide(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = _features48()
            self.wide = torch.nn.Conv2d(128, 8, 9, padding=4)  # 9x9 on a 3x3 map: 6 taps of padding

        def forward(self, x):
            return self.wide(self.features(x))

    rows = {l.name: l for l in layer_table(Wide(), (3, 48, 48))}
    # the window covers the 3 samples there are: 33 + 2 * 8 = 49 (before: 33 + 8 * 8 = 97)
    assert (rows["wide"].shape, rows["wide"].rf_size, rows["wide"].stride) == ((8, 3, 3), 49, 8)


def test_receptive_fields_never_exceed_what_the_input_map_sees_as_a_whole():
    import torchvision

    for module in (torchvision.models.vgg11(), A.cifar_vgg("strided"), _Flatten48(_permuted_then_sized)):
        size = {torchvision.models.VGG: 224}.get(type(module), 48 if isinstance(module, _Flatten48) else 32)
        rows = layer_table(module, (module_in(module), size, size))
        previous = None
        for row in rows:
            if previous is not None and len(previous.shape) == 3:
                assert row.rf_size <= previous.rf_size + (previous.shape[1] - 1) * previous.stride, row.name
            previous = row


def test_torchvision_resnet18_and_vgg11_receptive_fields():
    import torchvision

    with torch.random.fork_rng():
        resnet = {l.name: l for l in layer_table(torchvision.models.resnet18(), (3, 224, 224))}
        vgg11 = {l.name: l for l in layer_table(torchvision.models.vgg11(), (3, 224, 224))}
    # resnet18 layer4: 435 px at stride 32 (each 3x3 conv adds 2 j: 11 + 32 + 56 + 112 + 224)
    assert (resnet["layer4.1.relu_1"].shape, resnet["layer4.1.relu_1"].rf_size, resnet["layer4.1.relu_1"].stride) == (
        (512, 7, 7), 435, 32)
    assert (resnet["avgpool"].rf_size, resnet["flatten"].rf_size, resnet["fc"].rf_size) == (627, 627, 627)
    # vgg11 (configuration A): conv5_2 134/16, pool5 150/32, fc6 (after torch.flatten) 150 + 6 * 32
    assert (vgg11["features.18"].rf_size, vgg11["features.18"].stride) == (134, 16)
    assert (vgg11["features.20"].shape, vgg11["features.20"].rf_size, vgg11["features.20"].stride) == ((512, 7, 7), 150, 32)
    assert (vgg11["classifier.0"].rf_size, vgg11["classifier.0"].stride) == (342, 32)


def test_channel_shuffle_views_keep_the_spatial_axes():
    import torchvision

    with torch.random.fork_rng():
        rows = {l.name: l for l in layer_table(torchvision.models.shufflenet_v2_x0_5(), (3, 224, 224))}
    # conv1 3x3/2 (3, 2), maxpool 3/2 (7, 4), stage2.0 depthwise 3x3/2 (15, 8); the channel shuffle
    # (view, transpose, view) and chunk between the blocks change nothing (before: 663)
    assert (rows["stage2.0.branch2.5"].rf_size, rows["stage2.0.branch2.5"].stride) == (15, 8)
    assert (rows["stage2.1.branch2.0"].rf_size, rows["stage2.1.branch2.0"].stride) == (15, 8)
    assert (rows["stage2.1.branch2.3"].rf_size, rows["stage2.1.branch2.3"].stride) == (31, 8)


def test_vision_transformer_tokens_see_the_whole_image_once():
    import torchvision

    with torch.random.fork_rng():
        vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2,
                                                   hidden_dim=16, mlp_dim=16, num_classes=3)
    rows = {l.name: l for l in layer_table(vit, (3, 32, 32))}
    assert (rows["conv_proj"].shape, rows["conv_proj"].rf_size, rows["conv_proj"].stride) == ((16, 4, 4), 8, 8)
    # reshape (n, 16, 4 * 4) merges the 4x4 patches: 8 + 3 * 8 = 32, the image (before: 56)
    assert rows["encoder.layers.encoder_layer_0.ln_1"].rf_size == 32
    assert (rows["heads.head"].shape, rows["heads.head"].rf_size, rows["heads.head"].stride) == ((3,), 32, 8)


def test_functional_pools_and_convolutions_count():
    import torch.nn.functional as F

    class Functional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(4, 1, 5, 5))
            self.conv = torch.nn.Conv2d(4, 4, 3)

        def forward(self, x):
            x = F.conv2d(x, self.weight, stride=1, dilation=2)  # 9 px
            x = F.max_pool2d(x, 3, 2)  # 9 + 2 = 11, j 2
            x = F.avg_pool2d(x, kernel_size=2)  # 11 + 2 = 13, j 4
            return self.conv(x)  # 13 + 8 = 21

    rows = {l.name: l for l in layer_table(Functional(), (1, 64, 64))}
    assert (rows["conv"].rf_size, rows["conv"].stride) == (21, 4)


# --- TorchScript: a scripted chain of modules has the layers of its source --------------------------

def _small_cnn():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, stride=2, dilation=2), torch.nn.ReLU()),
            torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()


def _scripted(module, tmp_path=None):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(module)
        if tmp_path is None:
            return scripted
        path = tmp_path / "net.pt"
        scripted.save(str(path))
        return torch.jit.load(str(path))


def test_scripted_sequential_has_the_layers_of_its_source(tmp_path):
    source = _small_cnn()
    expected = [(l.name, l.kind, l.shape, l.rf_size, l.stride) for l in layer_table(source, (3, 32, 32))]
    assert expected == [
        ("0", "Conv2d", (8, 32, 32), 3, 1), ("1", "BatchNorm2d", (8, 32, 32), 3, 1), ("2", "ReLU", (8, 32, 32), 3, 1),
        ("3", "MaxPool2d", (8, 16, 16), 4, 2), ("4.0", "Conv2d", (16, 6, 6), 12, 4), ("4.1", "ReLU", (16, 6, 6), 12, 4),
        ("5", "AdaptiveAvgPool2d", (16, 2, 2), 20, 12), ("6", "Flatten", (64,), 32, 12), ("7", "Linear", (10,), 32, 12),
    ]
    for scripted in (_scripted(source), _scripted(source, tmp_path)):  # in memory, and saved and loaded
        assert isinstance(scripted, torch.jit.ScriptModule)
        rows = [(l.name, l.kind, l.shape, l.rf_size, l.stride) for l in layer_table(scripted, (3, 32, 32))]
        assert rows == expected


def test_scripted_module_calling_its_children_in_turn_names_repeated_calls_like_fx():
    class Reuse(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c2 = torch.nn.Conv2d(4, 4, 3, stride=2)  # registered first, called second
            self.c1 = torch.nn.Conv2d(3, 4, 5)
            self.relu = torch.nn.ReLU()

        def forward(self, x):
            return self.relu(self.c2(self.relu(self.c1(x))))

    source = Reuse().eval()
    expected = [(l.name, l.kind, l.shape, l.rf_size, l.stride) for l in layer_table(source, (3, 16, 16))]
    assert expected == [("c1", "Conv2d", (4, 12, 12), 5, 1), ("relu", "ReLU", (4, 12, 12), 5, 1),
                        ("c2", "Conv2d", (4, 5, 5), 7, 2), ("relu_1", "ReLU", (4, 5, 5), 7, 2)]
    rows = [(l.name, l.kind, l.shape, l.rf_size, l.stride) for l in layer_table(_scripted(source), (3, 16, 16))]
    assert rows == expected


def test_scripted_module_that_is_no_chain_cannot_be_listed():
    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))  # a function between the children

    with pytest.raises(UserError, match=r"Pooled is TorchScript: its layers cannot be listed, as its forward is not a chain"):
        layer_table(_scripted(Pooled().eval()), (3, 16, 16))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        frozen = torch.jit.freeze(_scripted(_small_cnn()))  # submodules inlined: no graph of children
        traced = torch.jit.trace(_small_cnn(), torch.zeros(1, 3, 32, 32))
    with pytest.raises(UserError, match="TorchScript: its layers cannot be listed, as its forward is not a chain"):
        layer_table(frozen, (3, 32, 32))
    with pytest.raises(UserError, match=r"cannot be listed, as its submodule 0 \(Conv2d\) cannot be run on its own"):
        layer_table(traced, (3, 32, 32))


def test_scripted_chain_is_checked_against_the_whole_module():
    from workbench.models.graph import check_script_chain, script_steps

    scripted = _scripted(_small_cnn())
    steps = script_steps(scripted)
    assert [name for name, _, _ in steps] == ["0", "1", "2", "3", "4.0", "4.1", "5", "6", "7"]
    check_script_chain(scripted, steps, (3, 32, 32))  # runs one after another: the same output
    without_relu = [s for s in steps if s[0] != "2"]
    with pytest.raises(UserError, match="cannot be listed, as its submodules run one after another do not give its output"):
        check_script_chain(scripted, without_relu, (3, 32, 32))
