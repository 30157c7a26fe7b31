"""HOGgle, the paired-dictionary inverse of HOG (workbench.representations.hoggle), on tiny dictionaries:
what the dictionary codes, where the inverse puts its patches, that it beats a grey image, seeded
learning, the cache, and the representations study's HOGgle column."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.errors import UserError
from workbench.jobs import Log, Step, run_job
from workbench.representations.hoggle import (HoggleSpec, PairedDictionary, PairedDictionaryCache, _normalise,
                                              hog_map, hog_network, learn, training_images, training_windows)

TINY = HoggleSpec(atoms=16, window=3, sides=(96,), max_windows=400, batch=64, photos=("rocket", "china"))


@pytest.fixture(scope="module")
def tiny():
    return run_job(learn(TINY))


def _grey(name: str, side: int = 96) -> np.ndarray:
    from workbench.data.images import load_reference

    return load_reference(name, (1, side, side))[0][:, :, 0]


def _relative(pd: PairedDictionary, V: np.ndarray, y: np.ndarray) -> float:
    alpha = PairedDictionary(U=pd.U, V=V, spec=pd.spec).encode(y)
    return float(np.linalg.norm(alpha @ V - y) / np.linalg.norm(y))


def test_paired_dictionary_codes_its_training_windows_better_than_a_random_one(tiny):
    _, hog = training_windows(TINY, training_images(TINY))
    assert tiny.U.shape == (16, (3 + 2) ** 2 * 64) and tiny.V.shape == (16, 3 * 3 * 27)
    rng = np.random.default_rng(1)
    random = rng.standard_normal(tiny.V.shape)
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    learned, chance = _relative(tiny, tiny.V, hog[:100]), _relative(tiny, random, hog[:100])
    assert learned < 0.8 < chance  # a random dictionary leaves nearly all of a window; the learned one does not


def test_inverse_puts_each_window_where_its_cells_are():
    """Known answer: with every window of an image as its own atom (their code's 'pickrandom' with all
    windows), each window codes to itself and the blended patches give the image back."""
    spec = HoggleSpec(atoms=2, window=3, cell_size=8, lam=0.001)
    image = _grey("astronaut")
    grey, hog = training_windows(spec, [("astronaut", image)])
    pd = PairedDictionary(U=grey, V=hog, spec=spec)
    x = pd.invert(hog_map(hog_network(8), image))
    inner = (slice(16, -16), slice(16, -16))
    assert x.shape == image.shape and 0.0 <= x.min() and x.max() <= 1.0
    assert np.corrcoef(x[inner].ravel(), image[inner].ravel())[0, 1] > 0.9
    shifted = np.roll(image, 8, axis=1)  # one cell off: the alignment matters
    assert np.corrcoef(x[inner].ravel(), shifted[inner].ravel())[0, 1] < 0.8


def test_inverse_of_a_photos_hog_is_closer_to_it_than_grey_or_another_photos_inverse(tiny):
    network = hog_network(8)
    y = hog_map(network, _grey("astronaut"))
    mine = np.linalg.norm(hog_map(network, tiny.invert(y)) - y)
    grey = np.linalg.norm(hog_map(network, np.full((96, 96), 0.5, np.float32)) - y)  # HOG of a flat image is 0
    other = np.linalg.norm(hog_map(network, tiny.invert(hog_map(network, _grey("coffee")))) - y)
    assert grey == pytest.approx(np.linalg.norm(y))
    assert mine < 0.9 * grey and mine < other


def test_learning_is_seeded_and_cached(tmp_path, tiny):
    cache = PairedDictionaryCache(tmp_path / "cache")
    events: list = []
    first = run_job(cache.get(TINY), events.append)
    assert any(isinstance(e, Step) for e in events)       # learned
    np.testing.assert_array_equal(first.U, tiny.U)         # same seed, same atoms
    np.testing.assert_array_equal(first.V, tiny.V)
    events.clear()
    again = run_job(cache.get(TINY), events.append)
    assert not any(isinstance(e, Step) for e in events) and any(isinstance(e, Log) and "from" in e.message
                                                                for e in events)
    np.testing.assert_array_equal(again.U, first.U)
    (path,) = (tmp_path / "cache").glob("pd-*.npz")
    path.write_bytes(b"not a dictionary")                  # a damaged file is learned again, not trusted
    relearned = run_job(cache.get(TINY))
    np.testing.assert_array_equal(relearned.V, first.V)
    other = run_job(learn(HoggleSpec(**{**TINY.__dict__, "seed": 1})))
    assert not np.array_equal(other.V, first.V)


@pytest.mark.parametrize("bad", [dict(atoms=0), dict(lam=-1.0), dict(sides=()), dict(sides=(16,)),
                                 dict(photos=("nosuchphoto",)), dict(atoms=4000)])
def test_bad_specs_are_refused(bad):
    with pytest.raises(UserError):
        run_job(learn(HoggleSpec(**{**TINY.__dict__, **bad})))


def test_invert_refuses_a_map_of_another_size(tiny):
    with pytest.raises(UserError):
        tiny.invert(np.zeros((31, 8, 8)))


def test_study_has_a_hoggle_column_learned_on_photos_it_does_not_invert(tmp_path):
    from workbench.studies.representations import representations_study

    out = tmp_path / "study"
    metrics = run_job(representations_study(photos=("astronaut",), size=96, iters=2, representations=("hoggle",),
                                            normaliser_photos=("astronaut", "coffee"), out=out, hoggle=TINY,
                                            hoggle_cache=PairedDictionaryCache(tmp_path / "cache")))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["complete"] and saved["config"]["hoggle"]["photos"] == ["rocket", "china"]
    (row,) = saved["representations"]["hoggle"]["photos"]
    assert row["photo"] == "astronaut" and 0 < row["error_percent"][0] and row["initial_error_percent"] is None
    assert (out / row["run"]).is_file() and (out / "images" / "representations.png").is_file()
    assert "| HOGgle | " in (out / "table.md").read_text() and "(not run here)" not in (out / "table.md").read_text()
    assert metrics["representations"]["hoggle"]["error_mean"] == pytest.approx(row["error_percent"][0])


def test_study_learns_on_the_photos_not_inverted_by_default():
    from workbench.studies.representations import _hoggle_spec

    spec = _hoggle_spec(None, ["astronaut", "coffee", "chelsea", "camera"], None)
    assert spec.photos == ("rocket", "motorcycle_left", "china", "flower", "grace_hopper")
    assert _normalise(np.ones((1, 4))).tolist() == [[0.0, 0.0, 0.0, 0.0]]


def test_study_cancelled_while_learning_the_dictionary_keeps_a_marked_folder(tmp_path):
    from workbench.jobs import CancelToken
    from workbench.studies.representations import representations_study

    cancel = CancelToken()

    def on_event(event):
        if isinstance(event, Step) and event.stage.startswith("HOGgle dictionary"):
            cancel.cancel()

    out = tmp_path / "study"
    metrics = run_job(representations_study(photos=("astronaut",), size=96, iters=2, representations=("hoggle", "hog"),
                                            normaliser_photos=("astronaut", "coffee"), out=out, hoggle=TINY,
                                            hoggle_cache=PairedDictionaryCache(tmp_path / "cache"), cancel=cancel),
                      on_event)
    assert not metrics["complete"] and metrics["representations"] == {}
    assert json.loads((out / "run.json").read_text())["status"] == "cancelled"
    assert not list((tmp_path / "cache").glob("pd-*.npz"))  # nothing half-learned is cached
