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
