"""Sect. 5.2 (i) with controls: does the shipped generator beat filters it did not make?

Re-training the following layers repairs almost anything, so the evaluation also scores
(a) the real filters plus noise of the generated filters' distance from them and (b) the
generated filters with each filter's entries permuted, each re-trained and frozen. These
tests hold the shipped run (resources/filtergan/digits-vgg-conv4) to the numbers measured
for docs/filtergan.md, with one short re-training (256 digits, two epochs) to stay fast.
"""

from __future__ import annotations

import json

import pytest
import torch

from workbench.filtergan import FilterGanEvalConfig, evaluation_job, load_filter_gan
from workbench.filtergan.evaluate import (CONTROLS, averaged_activation, control_filters, frozen_accuracy,
                                          real_filters)
from workbench.jobs import run_job
from workbench.resources import shipped_filtergan_run
from workbench.runs import RunStore

KINDS = ("generated", *CONTROLS)


@pytest.fixture(scope="module")
def model(digits_vgg):
    return digits_vgg   # tests/conftest.py


@pytest.fixture(scope="module")
def shipped(model):
    return load_filter_gan(shipped_filtergan_run(), device="cpu", model=model)


@pytest.fixture(scope="module")
def generated(shipped):
    z = torch.randn(10, shipped.config.latent_dim, generator=torch.Generator().manual_seed(0))
    return shipped.filters(z)


@pytest.fixture(scope="module")
def evaluation(shipped, model, tmp_path_factory):
    """The evaluation of the shipped run with its default 10 filter sets, re-trained briefly."""
    store = RunStore(tmp_path_factory.mktemp("controls"))
    config = FilterGanEvalConfig(retrain_epochs=2, train_images=256, mds_samples=2, mds_iter=10, device="cpu")
    return run_job(evaluation_job(shipped, config, runs=store))


@pytest.fixture(scope="module")
def test_features(shipped, model):
    from workbench.filtergan.layer import batched, digits_of, normalize

    x, y = digits_of(model, "test")
    return batched(lambda b: shipped.split.prefix(normalize(b, model)), x, shipped.device), y


def test_controls_are_what_they_say(shipped, generated):
    weights, biases = generated
    real_w, real_b = real_filters(shipped.split)
    distance = (weights - real_w).flatten(2).norm(dim=2)                      # (sets, channels)
    assert float((distance / real_w.flatten(1).norm(dim=1)).mean()) > 0.2     # G moves the filters a lot

    noise_w, noise_b = control_filters(real_w, real_b, weights, biases, "noise", seed=0)
    torch.testing.assert_close((noise_w - real_w).flatten(2).norm(dim=2), distance)  # equal norm, per set and channel
    torch.testing.assert_close((noise_b - real_b).abs(), (biases - real_b).abs())
    offsets_gen, offsets_noise = (weights - real_w).flatten(2), (noise_w - real_w).flatten(2)
    cosine = (offsets_gen * offsets_noise).sum(2) / (distance * distance)
    assert float(cosine.abs().max()) < 0.3  # another direction than G's, not G's offset again

    perm_w, perm_b = control_filters(real_w, real_b, weights, biases, "permuted", seed=0)
    torch.testing.assert_close(perm_w.flatten(2).sort(dim=2).values, weights.flatten(2).sort(dim=2).values)
    torch.testing.assert_close(perm_b, biases)
    moved = (perm_w - weights).flatten(2).norm(dim=2) / weights.flatten(2).norm(dim=2)
    assert float(moved.min()) > 1.0  # every filter shuffled, none left in place

    for kind in CONTROLS:  # seeded: the same seed gives the same sets, another seed others
        again = control_filters(real_w, real_b, weights, biases, kind, seed=0)[0]
        other = control_filters(real_w, real_b, weights, biases, kind, seed=1)[0]
        w = noise_w if kind == "noise" else perm_w
        assert torch.equal(again, w) and not torch.allclose(other, w)
    with pytest.raises(ValueError, match="unknown control"):
        control_filters(real_w, real_b, weights, biases, "channels", seed=0)


def test_frozen_accuracy_of_the_real_filters_is_the_cnn(shipped, model, test_features):
    """The frozen path scores the real layer as the CNN itself does, and a 'control' that is the
    real layer would sit far above the permuted control's frozen accuracy: test_the_shipped_... then fails."""
    features, y = test_features
    real_w, real_b = real_filters(shipped.split)
    sets = real_w.expand(3, *real_w.shape), real_b.expand(3, -1)
    accuracy = frozen_accuracy(shipped.split.suffix, averaged_activation(shipped.split, features, *sets, "cpu"), y)
    assert accuracy == pytest.approx(model.metadata["test_accuracy"], abs=6e-4)


def test_the_evaluation_reports_every_control_retrained_and_frozen(evaluation):
    m = evaluation
    for kind in KINDS:
        for key in (f"accuracy_{kind}", f"accuracy_{kind}_frozen"):
            assert 0.0 <= m[key] <= 1.0, key
        assert 0.0 <= m["accuracy_frozen_single_set"][kind] <= 1.0
        assert m["activation_change_relative"][kind] > 0.05, kind  # no replacement is the real layer
    for kind in CONTROLS:
        assert m["margins"][kind]["frozen_points"] == pytest.approx(
            100 * (m["accuracy_generated_frozen"] - m[f"accuracy_{kind}_frozen"]), abs=1e-3)
        assert m["margins"][kind]["retrained_points"] == pytest.approx(
            100 * (m["accuracy_generated"] - m[f"accuracy_{kind}"]), abs=1e-3)
        assert kind in m["controls"]
    assert m["test_images"] == 450 and m["perturbation_relative"] == pytest.approx(0.387, abs=0.005)
    stored = json.loads(open(f"{m['run']}/metrics.json").read())
    assert all(stored[f"accuracy_{kind}_frozen"] == m[f"accuracy_{kind}_frozen"] for kind in KINDS)
    assert stored["margins"] == m["margins"] and "history" in stored  # added to the copy's training metrics


def test_the_shipped_generator_against_its_controls_frozen(evaluation):
    """What docs/filtergan.md reports (seed 0; seeds 1 and 2 agree): with the following layers
    frozen the generated filters keep 0.98 where permuted ones fall to chance, but random
    perturbations of the same norm keep more (0.993 = the CNN's own accuracy): the shipped G
    does not beat the noise control. If G improves, this test fails and the docs must change."""
    m = evaluation
    assert m["accuracy_generated_frozen"] == pytest.approx(0.9822, abs=1e-3)
    assert m["accuracy_generated_frozen"] - m["accuracy_permuted_frozen"] > 0.8   # well above: 0.98 vs 0.10
    assert m["accuracy_permuted_frozen"] < 0.2
    assert m["accuracy_noise_frozen"] - m["accuracy_generated_frozen"] > 0.005    # 0.993 vs 0.982: 5 test images
    assert m["accuracy_noise_frozen"] == pytest.approx(m["accuracy_real"], abs=2.5e-3)
    single = m["accuracy_frozen_single_set"]                                      # not an artefact of averaging
    assert single["noise"] > single["generated"] > single["permuted"] + 0.8
    # G's filters move the signal layer ℓ+1 sees twice as far as the noise does
    assert m["activation_change_relative"]["generated"] > 1.5 * m["activation_change_relative"]["noise"]


def test_retraining_repairs_the_permuted_control(evaluation):
    """The reason for the controls: eight Adam steps already lift the permuted filters from
    chance to about half the digits (three epochs on all digits: 0.987, docs/filtergan.md)."""
    m = evaluation
    assert m["accuracy_permuted"] > m["accuracy_permuted_frozen"] + 0.2
    assert m["accuracy_generated"] > 0.97 and m["accuracy_noise"] > 0.97
