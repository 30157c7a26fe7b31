"""HOGgles: inverting HOG with a paired dictionary (Vondrick, Khosla, Malisiewicz & Torralba, ICCV 2013),
the baseline of CVPR 2015 Table 1 and IJCV 2016 Table 2 and the second row of IJCV Fig. 15.

Paired dictionary learning (their sect. 3.3, "paired dictionaries"): a window of ``ny × nx`` HOG cells
y = φ(x) and the grey patch x under it (the window and one cell around it, ``(ny + 2)·b × (nx + 2)·b``
pixels, as their ``learnpairdict.m``) share one sparse code α,

    min_{U, V, α}  Σ_i ‖x_i − U α_i‖² + ‖φ(x_i) − V α_i‖² + λ ‖α_i‖₁,   α ≥ 0,  ‖[U; V]_k‖ ≤ 1,

which is ordinary dictionary learning on the stacked vectors [x_i; φ(x_i)], each half made zero-mean and
unit-norm first. A HOG window y is inverted by coding it over V alone and decoding with U:

    α* = argmin_{α ≥ 0} ½‖y − V α‖² + λ‖α‖₁,      φ⁻¹(y) = U α*.

A whole HOG map is inverted window by window (every position, the map zero-padded by ``ny − 1`` cells),
and the overlapping patches are blended with a Gaussian weight (σ = 9 px, their ``invertHOG.m``), then
stretched to [0, 1]. The dictionary is learned with scikit-learn (``MiniBatchDictionaryLearning``,
coordinate descent, positive codes) and codes come from ``sparse_encode``; φ is the workbench's own
CNN-HOG (:class:`workbench.representations.networks.HOG`), so the inverse belongs to the representation
the study measures it on.

Deviations from the authors' code, all for the size of this machine: a dictionary of 256 atoms learned in
one pass over ~12,000 windows of the photos the installed packages ship (theirs: 1,024 atoms, 10⁶
windows of PASCAL VOC, 1,000 iterations of SPAMS); 27 components per cell (the workbench's HOG, DPM's
first 27; theirs adds 4 texture components and a truncation flag); overlapping patches are averaged with
their Gaussian weights (Σ w·patch / Σ w; theirs divides the weighted sum by the number of windows).

The learned dictionary is cached (:class:`PairedDictionaryCache`, the platformdirs cache folder), keyed
by its settings and the training images' pixels, so the same settings learn once and give the same
dictionary every time (a fixed seed: the initial atoms and the batch order).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Generator, Sequence

import numpy as np

from workbench.errors import UserError
from workbench.jobs import CancelToken, Event, Log, Step

#: Bump when the learning or the file layout changes: older cache files are then not read.
FORMAT = 1
#: HOG's input scale in the workbench: 255 · (grey − 0.5) (see :mod:`workbench.representations`).
_SCALE = 255.0


@dataclass(frozen=True)
class HoggleSpec:
    """How a paired dictionary is learned (Vondrick et al. sect. 3.3; the defaults fit a 2-core CPU)."""
    atoms: int = 256                 # K (theirs: 1024)
    window: int = 5                  # ny = nx, HOG cells per window side (theirs: 5)
    lam: float = 0.02                # λ of the lasso (their learnpairdict.m: 0.02)
    epochs: int = 1                  # passes over the windows
    batch: int = 256                 # windows per mini-batch
    max_windows: int = 12_000        # training windows, drawn at random from all positions and sides
    sides: tuple[int, ...] = (224, 320)   # each photo resized to these shorter sides (pixels)
    cell_size: int = 8               # b
    seed: int = 0
    photos: tuple[str, ...] = ()     # training photos (names of workbench.data.photos or files); () = all shipped

    def check(self) -> None:
        from workbench import limits

        limits.integer("atoms", self.atoms, 2, 4096)
        limits.integer("window", self.window, 1, 16)
        limits.real("lam", self.lam, high=10.0, positive=True)
        limits.integer("epochs", self.epochs, 1, 100)
        limits.integer("batch", self.batch, 1, 100_000)
        limits.integer("max_windows", self.max_windows, 2, 10_000_000)
        limits.integer("cell_size", self.cell_size, 2, 64)
        limits.seed("seed", self.seed)
        if not self.sides:
            raise UserError("HOGgle needs at least one training size (sides)")
        for side in self.sides:
            limits.integer("sides", side, (self.window + 2) * self.cell_size + 2, 4096)


@dataclass
class PairedDictionary:
    """U (grey atoms, K × P with P = ((ny + 2) b)²) and V (HOG atoms, K × ny·nx·27) of one spec."""
    U: np.ndarray
    V: np.ndarray
    spec: HoggleSpec
    info: dict = field(default_factory=dict)     # training photos, windows, seconds, objective

    @property
    def patch_side(self) -> int:
        return (self.spec.window + 2) * self.spec.cell_size

    def encode(self, windows: np.ndarray) -> np.ndarray:
        """α* ≥ 0 of each row of ``windows`` (N × D, HOG windows made zero-mean and unit-norm) over V."""
        import warnings

        from sklearn.decomposition import sparse_encode
        from sklearn.exceptions import ConvergenceWarning

        if len(windows) == 0:
            return np.zeros((0, len(self.V)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return sparse_encode(np.asarray(windows, dtype=np.float64), self.V, algorithm="lasso_cd",
                                 alpha=self.spec.lam, positive=True, max_iter=1000)

    def invert(self, hog: np.ndarray) -> np.ndarray:
        """φ⁻¹ of a HOG map (C × rows × cols, the workbench HOG's ``cells`` output): an image of
        (rows · b) × (cols · b) pixels in [0, 1] (every window coded over V, decoded with U, blended)."""
        hog = np.asarray(hog, dtype=np.float64)
        n, b = self.spec.window, self.spec.cell_size
        if hog.ndim != 3 or hog.shape[0] * n * n != self.V.shape[1]:
            raise UserError(f"HOGgle: a HOG map of {self.V.shape[1] // (n * n)} components per cell is needed, "
                            f"not shape {tuple(hog.shape)}")
        c, rows, cols = hog.shape
        pad = n - 1
        padded = np.zeros((c, rows + 2 * pad, cols + 2 * pad))
        padded[:, pad:pad + rows, pad:pad + cols] = hog
        positions = [(i, j) for i in range(rows + pad) for j in range(cols + pad)]
        windows = _normalise(np.stack([padded[:, i:i + n, j:j + n].ravel() for i, j in positions]))
        patches = self.encode(windows) @ self.U
        side = self.patch_side
        weight = _gaussian(side, 9.0)
        # canvas pixel (y, x) ↔ image pixel (y − off, x − off): padded cell i starts at image row (i − pad) b
        off = (pad + 1) * b
        canvas = np.zeros((rows * b + 2 * off, cols * b + 2 * off))
        total = np.zeros_like(canvas)
        for (i, j), patch in zip(positions, patches):
            y, x = i * b, j * b
            canvas[y:y + side, x:x + side] += weight * patch.reshape(side, side)
            total[y:y + side, x:x + side] += weight
        image = (canvas / np.maximum(total, 1e-12))[off:off + rows * b, off:off + cols * b]
        low, high = float(image.min()), float(image.max())
        return ((image - low) / (high - low) if high > low else np.full_like(image, 0.5)).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"U": self.U, "V": self.V}


def _normalise(a: np.ndarray) -> np.ndarray:
    """Each row zero-mean and unit-norm (their learnpairdict.m and invertHOG.m; a flat row stays 0)."""
    a = a - a.mean(axis=1, keepdims=True)
    return a / np.sqrt((a * a).sum(axis=1, keepdims=True) + 1e-12)


def _gaussian(side: int, sigma: float) -> np.ndarray:
    t = np.arange(side) - (side - 1) / 2.0
    g = np.exp(-t * t / (2.0 * sigma * sigma))
    return np.outer(g, g)


def hog_network(cell_size: int = 8):
    """The workbench's CNN-HOG (UoCTTI, 27 components per cell), in evaluation mode."""
    from workbench.representations import build

    return build("hog", cell_size).eval()


def hog_map(network, grey: np.ndarray) -> np.ndarray:
    """The HOG ``cells`` map (27 × H/b × W/b) of a grey image (H × W in [0, 1]) on the workbench's scale."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(_SCALE * (np.asarray(grey, dtype=np.float32) - 0.5))[None, None]
        return network(x)[0].double().numpy()


def training_images(spec: HoggleSpec) -> list[tuple[str, np.ndarray]]:
    """(name@side, grey image) of each training photo at each side of ``spec.sides`` (sides rounded down
    to whole cells): the photos of :mod:`workbench.data.photos` named in ``spec.photos`` (all of them
    when it is empty), or image files."""
    from workbench.data.images import load_image, load_source, prepare_image
    from workbench.data.photos import photo_paths

    shipped = dict(photo_paths())
    names = list(spec.photos) or list(shipped)
    if not names:
        raise UserError("HOGgle: no training photos are installed (scikit-image, scikit-learn and matplotlib "
                        "ship them); give image files as photos")
    out = []
    for name in names:
        image = load_image(shipped[name]) if name in shipped else load_source(name)[0]
        h, w = image.shape[:2]
        for side in spec.sides:
            scale = side / min(h, w)
            b = spec.cell_size
            size = (int(h * scale) // b * b, int(w * scale) // b * b)
            out.append((f"{name}@{side}", prepare_image(image, 1, size)[:, :, 0]))
    return out


def training_windows(spec: HoggleSpec, images: Sequence[tuple[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(grey patches N × P, HOG windows N × D) at every window position whose patch lies inside its image
    (their getdata: the window's cells and one cell around), each half zero-mean and unit-norm; at most
    ``spec.max_windows``, drawn with ``spec.seed``."""
    network = hog_network(spec.cell_size)
    n, b = spec.window, spec.cell_size
    grey, hog = [], []
    for _, image in images:
        f = hog_map(network, image)
        rows, cols = f.shape[1:]
        for i in range(1, rows - n):
            for j in range(1, cols - n):
                hog.append(f[:, i:i + n, j:j + n].ravel())
                grey.append(image[(i - 1) * b:(i + n + 1) * b, (j - 1) * b:(j + n + 1) * b].ravel())
    if len(grey) < 2:
        raise UserError(f"HOGgle: the training photos give {len(grey)} windows of {n}x{n} cells; use larger sides")
    rng = np.random.default_rng(spec.seed)
    keep = np.sort(rng.permutation(len(grey))[:spec.max_windows])
    return _normalise(np.asarray(grey, dtype=np.float64)[keep]), _normalise(np.asarray(hog, dtype=np.float64)[keep])


def learn(spec: HoggleSpec, images: Sequence[tuple[str, np.ndarray]] | None = None, *,
          cancel: CancelToken | None = None) -> Generator[Event, None, PairedDictionary]:
    """Learn the paired dictionary of ``spec`` (a job: yields a Step per mini-batch, returns it).

    scikit-learn's ``MiniBatchDictionaryLearning.partial_fit`` on the stacked, normalised [grey; HOG]
    windows: atoms initialised from ``atoms`` random windows, the batches in a seeded order."""
    import warnings

    from sklearn.decomposition import MiniBatchDictionaryLearning
    from sklearn.exceptions import ConvergenceWarning

    spec.check()
    cancel = cancel or CancelToken()
    started = time.monotonic()
    images = training_images(spec) if images is None else list(images)
    grey, hog = training_windows(spec, images)
    X = np.hstack([grey, hog])
    if spec.atoms > len(X):
        raise UserError(f"HOGgle: {spec.atoms} atoms need at least as many training windows (have {len(X)})")
    rng = np.random.default_rng(spec.seed)
    init = X[rng.choice(len(X), spec.atoms, replace=False)]
    init = init / np.linalg.norm(init, axis=1, keepdims=True)
    model = MiniBatchDictionaryLearning(n_components=spec.atoms, alpha=spec.lam, batch_size=spec.batch,
                                        fit_algorithm="cd", transform_algorithm="lasso_cd", positive_code=True,
                                        dict_init=init, random_state=spec.seed)
    order = [rng.permutation(len(X)) for _ in range(spec.epochs)]
    batches = [o[k:k + spec.batch] for o in order for k in range(0, len(o), spec.batch)]
    yield Log(f"HOGgle: learning {spec.atoms} paired atoms on {len(X)} windows of {len(images)} images")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for step, rows in enumerate(batches, 1):
            cancel.check()
            model.partial_fit(X[rows])
            yield Step(step, len(batches), {}, stage="HOGgle dictionary")
    D = model.components_
    P = grey.shape[1]
    info = {"training_images": [name for name, _ in images], "windows": int(len(X)),
            "seconds": round(time.monotonic() - started, 1)}
    return PairedDictionary(U=np.ascontiguousarray(D[:, :P]), V=np.ascontiguousarray(D[:, P:]), spec=spec, info=info)


def default_cache_folder() -> Path:
    """``<user cache>/workbench/hoggle`` (platformdirs)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("workbench", appauthor=False)) / "hoggle"


class PairedDictionaryCache:
    """Learned paired dictionaries on disk, one ``.npz`` per spec and training pixels (no pickles)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_folder()

    def key(self, spec: HoggleSpec, images: Sequence[tuple[str, np.ndarray]]) -> str:
        import sklearn

        h = hashlib.sha256(json.dumps({"format": FORMAT, "sklearn": sklearn.__version__, **asdict(spec)},
                                      sort_keys=True).encode())
        for name, image in images:
            h.update(name.encode())
            h.update(np.ascontiguousarray(image, dtype=np.float32).tobytes())
        return h.hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.folder / f"pd-{key}.npz"

    def read(self, key: str, spec: HoggleSpec) -> PairedDictionary | None:
        """The cached dictionary, or None where there is none or the file is not a well-formed one."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                U, V, info = np.array(data["U"]), np.array(data["V"]), json.loads(str(data["info"]))
        except (OSError, ValueError, KeyError):
            return None
        side = (spec.window + 2) * spec.cell_size
        if U.shape != (spec.atoms, side * side) or V.shape[0] != spec.atoms or not (
                np.isfinite(U).all() and np.isfinite(V).all()):
            return None
        return PairedDictionary(U=U, V=V, spec=spec, info={**info, "cache": str(path)})

    def write(self, key: str, pd: PairedDictionary) -> Path:
        from workbench.runs import atomic_path

        path = self.path(key)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, U=pd.U, V=pd.V, info=np.array(json.dumps(pd.info)))
        return path

    def get(self, spec: HoggleSpec, *, cancel: CancelToken | None = None
            ) -> Generator[Event, None, PairedDictionary]:
        """The dictionary of ``spec``: read from the cache, or learned (a job) and written there."""
        spec.check()
        images = training_images(spec)
        key = self.key(spec, images)
        cached = self.read(key, spec)
        if cached is not None:
            yield Log(f"HOGgle: paired dictionary from {self.path(key)}")
            return cached
        pd = yield from learn(spec, images, cancel=cancel)
        pd.info["cache"] = str(self.write(key, pd))
        return pd


def paired_dictionary(spec: HoggleSpec | None = None, *, cache: PairedDictionaryCache | None = None,
                      cancel: CancelToken | None = None) -> PairedDictionary:
    """The paired dictionary of ``spec`` (default settings), from the cache or learned now (blocking)."""
    from workbench.jobs import run_job

    return run_job((cache or PairedDictionaryCache()).get(spec or HoggleSpec(), cancel=cancel))
