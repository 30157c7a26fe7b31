"""Every figure made from an untrained model says so (issue 13): the pre-image job records it,
the exported figure's text carries it, and a trained model's figures do not."""

from __future__ import annotations

from workbench.export.figures import UNTRAINED_MARK, model_caption, result_figure, save_figure


def test_caption_marks_only_untrained_models():
    assert model_caption("digits-vgg", True) == "digits-vgg"
    assert model_caption("digits-vgg", None) == "digits-vgg"
    assert model_caption("resnet18", False) == f"resnet18 · {UNTRAINED_MARK}"


def test_an_untrained_models_preimage_and_its_exported_figure_say_so(tmp_path):
    from workbench import api

    for name, trained in (("digits-vgg", True), ("cifar-vgg-maxpool", False)):
        model = api.open_model(name)
        assert model.trained is trained
        layer = next(info.name for info in model.layers() if info.kind == "ReLU")
        result = api.invert(model, layer, "digits:2", out=tmp_path / f"run{trained}", iters=2, restarts=1,
                            fine_tune_iters=0, device="cpu")
        assert result.metrics["trained"] is trained
        m = result.metrics
        figure = result_figure(result.images, result.reference, layer=m["layer"], C=m["C"],
                               title=f"{model_caption(m['model'], m['trained'])} · {m['layer']}")
        svg = save_figure(figure, tmp_path / f"fig{trained}.svg")
        assert (UNTRAINED_MARK in svg.read_text()) is (not trained)
