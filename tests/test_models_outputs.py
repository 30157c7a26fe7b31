"""Forwards that return tuples, lists or dicts: every tensor of the result is a layer (issue 13)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from workbench.errors import UserError
from workbench.models.graph import layer_table
from workbench.models.truncate import feature_extractor, truncate


def _seeded(cls, *args):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return cls(*args).eval()


def _x(size=16, n=2):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


class TwoHeads(nn.Module):
    """A shared body and two heads: logits_a from the pooled map, logits_b from a conv on it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head_a = nn.Linear(8 * 8 * 8, 5)
        self.head_b = nn.Sequential(nn.Conv2d(8, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))

    def forward(self, x):
        f = self.body(x)
        return self.head_a(f.flatten(1)), self.head_b(f)


class DictHeads(nn.Module):
    """A detector-like result: class scores, a list of maps, and a constant that is no layer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.scores = nn.Linear(4 * 14 * 14, 5)
        self.boxes = nn.Conv2d(4, 2, 3, stride=2)

    def forward(self, x):
        f = torch.relu(self.conv(x))
        return {"scores": self.scores(f.flatten(1)), "maps": [self.boxes(f), f], "count": None}


class Attention(nn.Module):
    """The result is one node whose value is a tuple: a leaf module's (output, weights)."""

    def __init__(self):
        super().__init__()
        self.patches = nn.Conv2d(3, 8, 4, stride=4)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        t = self.patches(x).flatten(2).transpose(1, 2)
        return self.attn(t, t, t)


def _rows(module, size=16):
    return [(l.name, l.kind, l.shape, l.rf_size, l.stride) for l in layer_table(module, (3, size, size))]


def test_two_heads_list_both_heads_and_each_output():
    rows = _rows(_seeded(TwoHeads))
    assert rows == [
        ("body.0", "Conv2d", (8, 16, 16), 3, 1), ("body.1", "ReLU", (8, 16, 16), 3, 1),
        ("body.2", "MaxPool2d", (8, 8, 8), 4, 2), ("flatten", "flatten", (512,), 4 + 7 * 2, 2),
        ("head_a", "Linear", (5,), 18, 2),
        ("head_b.0", "Conv2d", (4, 6, 6), 8, 2), ("head_b.1", "Flatten", (144,), 8 + 5 * 2, 2),
        ("head_b.2", "Linear", (3,), 18, 2),
        # shape, RF and stride of the node that produces each
        ("output.0", "output", (5,), 18, 2), ("output.1", "output", (3,), 18, 2),
    ]


def test_two_heads_truncate_to_each_output():
    model, x = _seeded(TwoHeads), _x()
    logits_a, logits_b = model(x)
    torch.testing.assert_close(truncate(model, "output.1")(x), logits_b, rtol=0, atol=0)
    torch.testing.assert_close(truncate(model, "output.0")(x), logits_a, rtol=0, atol=0)
    phi = truncate(model, "output.0")
    assert not any(name.startswith("head_b") for name, _ in phi.named_modules())  # nothing of head b runs
    both = feature_extractor(model, ["output.1", "body.2", "output.0"])(x)
    assert list(both) == ["output.1", "body.2", "output.0"]
    torch.testing.assert_close(both["output.1"], logits_b, rtol=0, atol=0)
    torch.testing.assert_close(both["body.2"], model.body(x), rtol=0, atol=0)


def test_dict_result_names_keys_and_nested_items():
    model, x = _seeded(DictHeads), _x()
    rows = _rows(model)
    assert [r for r in rows if r[1] == "output"] == [
        ("output.scores", "output", (5,), 3 + 13, 1),
        ("output.maps.0", "output", (2, 6, 6), 5, 2),
        ("output.maps.1", "output", (4, 14, 14), 3, 1),
    ]
    assert [r[0] for r in rows if r[1] != "output"] == ["conv", "flatten", "scores", "boxes"]
    full = model(x)
    torch.testing.assert_close(truncate(model, "output.scores")(x), full["scores"], rtol=0, atol=0)
    torch.testing.assert_close(truncate(model, "output.maps.0")(x), full["maps"][0], rtol=0, atol=0)
    torch.testing.assert_close(truncate(model, "output.maps.1")(x), full["maps"][1], rtol=0, atol=0)
    for missing in ("output.count", "output.maps.2", "output.labels", "output", "output.", "output.maps"):
        with pytest.raises(UserError, match="unknown layer"):
            truncate(model, missing)(x)


def test_a_tuple_returned_by_a_leaf_module_is_picked_apart():
    model, x = _seeded(Attention), _x()
    rows = _rows(model)
    # patches 4/4; flatten(2) merges the 4x4 patch grid: 4 + 3 * 4 = 16, the whole image
    assert rows == [("patches", "Conv2d", (8, 4, 4), 4, 4), ("flatten", "flatten", (8, 16), 16, 4),
                    ("output.0", "output", (16, 8), 16, 4), ("output.1", "output", (16, 16), 16, 4)]
    out, weights = model(x)
    torch.testing.assert_close(truncate(model, "output.0")(x), out, rtol=0, atol=0)
    torch.testing.assert_close(truncate(model, "output.1")(x), weights, rtol=0, atol=0)


def test_one_tensor_result_has_no_output_rows():
    from workbench.models import architectures as A

    rows = [l.name for l in layer_table(A.lenet5(), (1, 32, 32))]
    assert rows[-1] == "output" and not any(name.startswith("output.") for name in rows)  # lenet5's own layer
    body = _seeded(TwoHeads).body
    assert [l.kind for l in layer_table(body, (3, 16, 16))] == ["Conv2d", "ReLU", "MaxPool2d"]


def test_output_prefix_steps_aside_for_a_module_named_output():
    class Named(nn.Module):
        def __init__(self):
            super().__init__()
            self.output = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())

        def forward(self, x):
            y = self.output(x)
            return y, y.sum()

    model, x = _seeded(Named), _x()
    rows = _rows(model)
    assert rows == [("output.0", "Conv2d", (2, 14, 14), 3, 1), ("output.1", "ReLU", (2, 14, 14), 3, 1),
                    ("output_1.0", "output", (2, 14, 14), 3, 1), ("output_1.1", "output", (), 3 + 13, 1)]
    full = model(x)
    torch.testing.assert_close(truncate(model, "output_1.1")(x), full[1], rtol=0, atol=0)
    torch.testing.assert_close(truncate(model, "output.0")(x), model.output[0](x), rtol=0, atol=0)
