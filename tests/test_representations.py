"""CNN-HOG, CNN-HOGb and CNN-DSIFT (workbench.representations): against scikit-image's hog and a NumPy
port of VLFeat's vl_hog, every stage's derivative against finite differences, the layer table and
truncation, and one inversion of a photo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from workbench.data.images import SAMPLE_PHOTOS, load_sample, prepare_image
from workbench.errors import UserError
from workbench.representations import load, stages
from workbench.representations.networks import DSIFT, HOG, SkimageHOG


def grey255(photo: str, size=(96, 128)) -> np.ndarray:
    """A sample photo as the papers' experiments take it: grey, 0-255, float64."""
    return prepare_image(load_sample(photo)[0], 1, size)[:, :, 0].astype(np.float64) * 255.0


# --------------------------------------------------------------------------- references

def skimage_hog(image: np.ndarray, cell: int = 8) -> np.ndarray:
    from skimage.feature import hog

    blocks = hog(image, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), block_norm="L2-Hys",
                 feature_vector=False)
    return blocks.reshape(blocks.shape[0], blocks.shape[1], -1).transpose(2, 0, 1)  # (36, rows, cols)


def vl_hog(image: np.ndarray, cell: int = 8, bilinear: bool = False, no: int = 9) -> np.ndarray:
    """NumPy port of VLFeat's vl_hog_put_image + vl_hog_extract (vl/hog.c), UoCTTI variant, one channel:
    (3·no + 4, rows, cols), the 4 texture components last."""
    im = np.asarray(image, dtype=np.float64)
    H, W = im.shape
    hw, hh = (W + cell // 2) // cell, (H + cell // 2) // cell
    hist = np.zeros((2 * no, hh, hw))
    k = np.arange(no)
    ox, oy = np.cos(np.pi * k / no), np.sin(np.pi * k / no)
    ys, xs = np.mgrid[1:H - 1, 1:W - 1]                       # gradients of the interior pixels only
    gx = im[1:-1, 2:] - im[1:-1, :-2]
    gy = im[2:, 1:-1] - im[:-2, 1:-1]
    grad = np.sqrt(gx ** 2 + gy ** 2)
    score = (gx / np.maximum(grad, 1e-10))[..., None] * ox + (gy / np.maximum(grad, 1e-10))[..., None] * oy
    bins = np.where(score < 0, k + no, k)                      # directed bin of each undirected score
    order = np.argsort(-np.abs(score), axis=-1, kind="stable")  # best, second best (VLFeat's strict >)
    b0, b1 = (np.take_along_axis(bins, order[..., i:i + 1], -1)[..., 0] for i in (0, 1))
    s0 = np.take_along_axis(np.abs(score), order[..., :1], -1)[..., 0]
    if bilinear:
        w1 = np.arccos(np.minimum(s0, 1.0)) / (np.pi / no)
        votes = [(b0, 1.0 - w1), (b1, w1)]
    else:
        votes = [(b0, np.ones_like(s0))]
    hx, hy = (xs + 0.5) / cell - 0.5, (ys + 0.5) / cell - 0.5
    binx, biny = np.floor(hx).astype(int), np.floor(hy).astype(int)
    wx, wy = hx - binx, hy - biny
    for o, ow in votes:
        for dx, fx in ((0, 1 - wx), (1, wx)):
            for dy, fy in ((0, 1 - wy), (1, wy)):
                bx, by = binx + dx, biny + dy
                ok = (bx >= 0) & (bx < hw) & (by >= 0) & (by < hh)
                np.add.at(hist, (o[ok], by[ok], bx[ok]), (grad * ow * fx * fy)[ok])
    norm = ((hist[:no] + hist[no:]) ** 2).sum(0)
    out = np.zeros((3 * no + 4, hh, hw))
    for y in range(hh):
        for x in range(hw):
            xm, xp, ym, yp = max(x - 1, 0), min(x + 1, hw - 1), max(y - 1, 0), min(y + 1, hh - 1)
            factors = [1 / math.sqrt(norm[a, c] + norm[a, d] + norm[b, c] + norm[b, d] + 1e-4)
                       for (a, b), (c, d) in (((ym, y), (xm, x)), ((ym, y), (x, xp)), ((y, yp), (xm, x)), ((y, yp), (x, xp)))]
            ha, hb = hist[:no, y, x], hist[no:, y, x]
            for i, f in enumerate(factors):
                out[:no, y, x] += 0.5 * np.minimum(0.2, f * ha)
                out[no:2 * no, y, x] += 0.5 * np.minimum(0.2, f * hb)
                hc = np.minimum(0.2, f * (ha + hb))
                out[2 * no:3 * no, y, x] += 0.5 * hc
                out[3 * no + i, y, x] = hc.sum() / math.sqrt(18.0)
    return out


def _run(module: torch.nn.Module, image: np.ndarray, offset: float = 0.0) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(image - offset)[None, None]).numpy()[0]


# --------------------------------------------------------------------------- forward checks

#: Tolerances reached (docs/representations.md): skimage accumulates its cells in float32.
SKIMAGE_TOL = 5e-7
VLFEAT_TOL = 1e-7


@pytest.mark.parametrize("photo", SAMPLE_PHOTOS)
def test_hog_stages_match_skimage(photo):
    """The directional filters and hard binning of CNN-HOG, configured as scikit-image defines HOG (unsigned
    9 bins, box cells, 2×2 L2-Hys blocks), give skimage.feature.hog on the 8-bit photos, border included."""
    image = grey255(photo, (96, 132))
    ours = _run(SkimageHOG(8, dtype=torch.float64), image)
    ref = skimage_hog(image)
    assert ours.shape == ref.shape == (36, 11, 15)
    assert np.abs(ours - ref).max() < SKIMAGE_TOL


@pytest.mark.parametrize("bilinear", [False, True], ids=["hog", "hogb"])
@pytest.mark.parametrize("photo", ["astronaut", "camera", "coffee"])
def test_hog_matches_vlfeat_port(photo, bilinear):
    """CNN-HOG(b) against VLFeat's vl_hog (UoCTTI, texture components dropped) ported to NumPy, every cell.
    A 1e-6 dither breaks the ties of 8-bit images (vertical gradients lie exactly between two of the 18
    directions: VLFeat takes the first, argmax over the projections takes whichever rounding favours)."""
    image = grey255(photo) + np.random.default_rng(0).uniform(0.0, 1e-6, (96, 128))
    ours = _run(HOG(8, bilinear=bilinear, dtype=torch.float64), image, offset=127.5)
    ref = vl_hog(image, 8, bilinear)[:27]
    assert ours.shape == ref.shape == (27, 12, 16)
    assert np.abs(ours - ref).max() < VLFEAT_TOL
    assert ref.max() > 0.1


def test_hog_zero_border_is_hog_net():
    """border='zeros' (hog_net.m) agrees with VLFeat away from the border cells and not on them."""
    image = grey255("camera") + np.random.default_rng(1).uniform(0.0, 1e-6, (96, 128))
    ours = _run(HOG(8, border="zeros", dtype=torch.float64), image, offset=127.5)
    ref = vl_hog(image)[:27]
    assert np.abs(ours - ref)[:, 1:-1, 1:-1].max() < VLFEAT_TOL
    assert np.abs(ours - ref).max() > 0.01


def test_binning_puts_the_gradient_norm_in_the_bins():
    """Σ_k h_k = ‖g‖ for both gatings (hard: one bin; bilinear: two triangle weights summing to 1), ‖g‖ the
    authors' sqrt(Σ_k ⟨g,u_k⟩² / (K/2)); the hard bin is the direction nearest to g."""
    torch.manual_seed(0)
    image = torch.randn(1, 1, 12, 12, dtype=torch.float64) * 40
    for K in (18, 8):
        x = stages.directional_filters(K, dtype=torch.float64)(image)
        norm = torch.sqrt(x.pow(2).sum(1) / (K / 2))
        hard = stages.HardOrientationBinning(K, dtype=torch.float64)(x)
        soft = stages.BilinearOrientationBinning(K, dtype=torch.float64)(x)
        assert torch.allclose(hard.sum(1), norm) and torch.allclose(soft.sum(1), norm)
        assert ((hard > 0).sum(1) == 1).all() and ((soft > 0).sum(1) <= 2).all()
        theta = torch.atan2(image[0, 0, 2:, 1:-1] - image[0, 0, :-2, 1:-1], image[0, 0, 1:-1, 2:] - image[0, 0, 1:-1, :-2])
        nearest = torch.remainder(torch.round(theta / (2 * math.pi / K)), K).long()
        assert torch.equal(hard[0].argmax(0), nearest)


def test_dsift_cell_weights_are_vlfeats_fast_window():
    """The block filters weight each of the 4×4 cells by VLFeat's _vl_dsift_get_bin_window_mean (binSize 8,
    windowSize 2): symmetric, the inner cells heavier."""
    w = stages.sift_window_means(8)
    x = np.arange(-7, 8)
    expected = [np.exp(-0.5 * ((x - 8 * (t - 1.5)) / 16.0) ** 2).mean() for t in range(4)]
    assert np.allclose(w.numpy(), expected)
    assert w[1] > w[0] and torch.allclose(w, w.flip(0))


def test_dsift_descriptor_is_unit_then_clamped():
    """DSIFT before the clamp is l²-normalised per descriptor, after it no component exceeds 0.2."""
    loaded = load("dsift", input_size=(1, 64, 64))
    x = torch.from_numpy(grey255("chelsea", (64, 64)) - 127.5).float()[None, None]
    norm = loaded.truncate("norm")(x)
    assert torch.allclose(norm.pow(2).sum(1), torch.ones(1, 5, 5), atol=1e-5)
    out = loaded.module(x)
    assert out.max() <= 0.2 + 1e-7 and (out == 0.2).any()


# --------------------------------------------------------------------------- derivatives

def _check(f, *inputs):
    assert gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def _x(*shape, scale=1.0, positive=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * scale
    return (x.abs() + 0.1 if positive else x).requires_grad_(True)


D = torch.float64


@pytest.mark.parametrize("K", [18, 8])
def test_gradcheck_directional_filters_and_binning(K):
    _check(stages.directional_filters(K, dtype=D), _x(1, 1, 7, 7, scale=20))
    projections = stages.directional_filters(K, dtype=D)(_x(1, 1, 8, 8, scale=20, seed=1)).detach().requires_grad_(True)
    _check(stages.HardOrientationBinning(K, dtype=D), projections)
    _check(stages.BilinearOrientationBinning(K, dtype=D), projections)
    _check(stages.BilinearOrientationBinning(K, dtype=D), _x(1, K, 4, 4, seed=2))  # any K channels, not only projections


def test_gradcheck_pooling_blocks_norm_clamp_cells():
    _check(stages.cell_pooling(18, 4, dtype=D), _x(1, 18, 10, 10, positive=True))
    for border in ("vlfeat", "zeros"):
        _check(stages.hog_block_filters(9, border=border, dtype=D), _x(1, 18, 3, 3, positive=True))
        _check(stages.hog_cell_filters(9, border=border, dtype=D), _x(1, 108, 3, 3, positive=True))
    _check(stages.UoCTTIBlockNorm(), _x(1, 108, 2, 2, positive=True))
    _check(stages.Clamp(0.2), _x(1, 27, 3, 3, scale=0.2, seed=3))
    _check(stages.sift_block_filters(8, 4, 1, 2.0, 4, dtype=D), _x(1, 8, 5, 5, positive=True))
    _check(stages.l2_normalisation(128), _x(1, 128, 2, 2, positive=True))


@pytest.mark.parametrize("network", [HOG(4, dtype=D), HOG(4, bilinear=True, dtype=D), HOG(4, border="zeros", dtype=D),
                                     DSIFT(4, dtype=D)], ids=["hog", "hogb", "hog-zeros", "dsift"])
def test_gradcheck_whole_network(network):
    """The whole representation on a small grey image (4-pixel cells, 18×18: 4×4 cells)."""
    _check(network, _x(1, 1, 18, 18, scale=40, seed=4))


# --------------------------------------------------------------------------- the workbench's view

EXPECTED = {
    "hog": [("gradients", "Conv2d", (18, 222, 222), 3, 1), ("binning", "HardOrientationBinning", (18, 222, 222), 3, 1),
            ("pooling", "Conv2d", (18, 28, 28), 18, 8), ("blocks", "Conv2d", (108, 29, 29), 26, 8),
            ("norm", "UoCTTIBlockNorm", (108, 29, 29), 26, 8), ("clamp", "Clamp", (108, 29, 29), 26, 8),
            ("cells", "Conv2d", (27, 28, 28), 34, 8)],
    "dsift": [("gradients", "Conv2d", (8, 222, 222), 3, 1), ("binning", "BilinearOrientationBinning", (8, 222, 222), 3, 1),
              ("pooling", "Conv2d", (8, 28, 28), 18, 8), ("blocks", "Conv2d", (128, 25, 25), 42, 8),
              ("norm", "L2Normalisation", (128, 25, 25), 42, 8), ("clamp", "Clamp", (128, 25, 25), 42, 8)],
}


@pytest.mark.parametrize("name", ["hog", "hogb", "dsift"])
def test_layer_table_and_truncation(name):
    """Each stage is a layer with its shape, receptive field and stride (34 px for a HOG cell: the 3×3 cells
    its four blocks cover, 16-pixel triangles 8 apart, plus the 3×3 derivative), and truncates."""
    loaded = load(name)
    rows = [(l.name, l.kind, l.shape, l.rf_size, l.stride) for l in loaded.layers()]
    expected = EXPECTED["dsift" if name == "dsift" else "hog"]
    if name == "hogb":
        expected = [(n, "BilinearOrientationBinning" if n == "binning" else k, s, r, j) for n, k, s, r, j in expected]
    assert rows == expected
    x = torch.from_numpy(grey255("coffee", (224, 224)) - 127.5).float()[None, None]
    manual = x
    for layer, child in loaded.module.named_children():
        manual = child(manual)
        assert torch.allclose(loaded.truncate(layer)(x), manual)
    assert torch.equal(manual, loaded.module(x))


@pytest.mark.parametrize("network, cell, rf", [(HOG(8, dtype=D), 3, 34), (DSIFT(8, dtype=D), 2, 42)], ids=["hog", "dsift"])
def test_receptive_field_is_the_true_support(network, cell, rf):
    """The pixels one output position depends on span exactly the layer table's receptive field."""
    x = _x(1, 1, 64, 64, scale=40, seed=5)
    network(x)[0, :, cell, cell].sum().backward()
    for axis in (0, 1):
        support = torch.nonzero(x.grad[0, 0].abs().sum(1 - axis)).flatten()
        assert int(support.max() - support.min()) + 1 == rf


def test_load_names_sizes_and_errors():
    m = load("hog@4", input_size=(1, 32, 48))
    assert m.name == "hog@4" and m.module.cell_size == 4 and m.layer("cells").shape == (27, 8, 12)
    assert m.facts()["spec"]["model"] == "hog@4" and m.mean == (0.5,) and m.std == pytest.approx((1 / 255,))
    assert load("dsift", block_stride=3).layer("clamp").shape == (128, 9, 9)
    from workbench.preimage.presets import preset_C

    kinds = [l.kind for l in m.layers()]
    assert all(preset_C(kinds, l.index, m, l.name) == 100.0 for l in m.layers())  # IJCV sect. 5.1.1
    for bad, kwargs in (("sift", {}), ("hog@x", {}), ("hog", {"input_size": (3, 224, 224)}),
                        ("dsift", {"input_size": (1, 30, 30)}), ("hog", {"cell_size": 1})):
        with pytest.raises(UserError):
            load(bad, **kwargs)


def test_load_model_opens_representations_by_name():
    """The hook in workbench.models.load_model: --model hog / hogb / dsift@4 (with --input-size), as run.json
    records them, so a run folder reopens its representation."""
    from workbench.config.model import ModelSpec
    from workbench.models import load_model

    m = load_model(ModelSpec(model="dsift@4", input_size=(1, 64, 64)))
    assert m.name == "dsift@4" and m.layer("clamp").shape == (128, 13, 13)
    assert load_model(m.facts()["spec"]["model"]).input_size == (1, 224, 224)
    with pytest.raises(UserError, match="drop --weights"):
        load_model(ModelSpec(model="hog", weights="w.safetensors"))


# --------------------------------------------------------------------------- inversion

def test_inverting_hog_of_a_photo_reduces_the_error(tmp_path):
    """The pre-image engine inverts CNN-HOG of a photo (IJCV settings, C = 100, no jitter): the CVPR error
    ‖Φ(x*) − Φ(x0)‖ / N_Φ falls far below that of the noise it starts from (measured at 96²: from 91.7% to
    46.5% in 60 iterations)."""
    from workbench.config.preimage import PreimageConfig
    from workbench.jobs import Step, run_job
    from workbench.preimage.solve import preimage_job
    from workbench.studies.representations import _codes, _normaliser
    from workbench.runs import RunStore

    loaded = load("hog", input_size=(1, 96, 96))
    phi = loaded.truncate("cells")
    N = _normaliser(_codes(loaded, phi, ["astronaut", "coffee", "camera", "coins"], "cpu"))["N_phi"]
    ref_norm = float(torch.linalg.norm(_codes(loaded, phi, ["astronaut"], "cpu")[0]))
    config = PreimageConfig(model="hog", layer="cells", method="invert", image="astronaut", restarts=1, iters=60,
                            fine_tune_iters=0, C=100.0, jitter=1, device="cpu", snapshot_every=0, frame_every=0)
    losses = []
    result = run_job(preimage_job(config, runs=RunStore(tmp_path), out=tmp_path / "hog", model=loaded),
                     lambda event: losses.append(event.values["loss"]) if isinstance(event, Step) else None)
    initial = 100 * math.sqrt(losses[0]) * ref_norm / N
    final = 100 * math.sqrt(result.metrics["reconstruction_error"][0]) * ref_norm / N
    print(f"HOG astronaut 96x96: CVPR error {initial:.1f}% -> {final:.1f}%")
    assert initial > 80 and final < 0.6 * initial, (initial, final)
    assert result.images.shape == (1, 96, 96, 1)
