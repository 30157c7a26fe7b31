"""One rule for "this layer is the class scores" (workbench.preimage.quality.is_class_output), used by the
pre-image job's class-logit metrics and by the quality checks alike: the last layer with one unit per
class name, whether a linear classifier gives it as C or a convolutional one as C × 1 × 1."""

from types import SimpleNamespace

import torch

from workbench.preimage.quality import is_class_output, probabilities


def _model(last_shape, names=("cat", "dog", "fox")):
    rows = [SimpleNamespace(index=0, shape=(8, 4, 4)), SimpleNamespace(index=1, shape=last_shape)]
    return SimpleNamespace(class_names=list(names) if names else None, layers=lambda: rows), rows


def test_the_last_layer_with_one_unit_per_class_is_the_class_scores():
    for shape in [(3,), (3, 1, 1)]:
        model, rows = _model(shape)
        assert is_class_output(model, rows[1])
        assert not is_class_output(model, rows[0])
    model, rows = _model((3, 2, 2))            # a map of 12 values is not 3 class scores
    assert not is_class_output(model, rows[1])
    model, rows = _model((3,), names=None)     # no class names: no class
    assert not is_class_output(model, rows[1])


def test_probabilities_of_a_convolutional_classifier_are_per_image():
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    flat = probabilities(lambda p: scores, None, 2)
    conv = probabilities(lambda p: scores.view(2, 3, 1, 1), None, 2)
    assert conv.shape == (2,)
    torch.testing.assert_close(conv, flat)
    torch.testing.assert_close(flat, torch.tensor([torch.e**3 / (torch.e + torch.e**2 + torch.e**3), 1 / 3]))
