"""The Filter-GAN dock's three tabs (ICLR 2018 submission), laid out and drawn here; the dock
runs their jobs. Train: the settings, the live losses and the generated filters (Fig. 2). MDS:
the sect. 5.2 accuracy table beside its controls, the MDS scatter of real and generated filters
(Fig. 3; hover or click a point) and the filter behind a point. Traversal: the settings of a latent
traversal and its grid (Fig. 4)."""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from workbench.config.filtergan import FilterGanConfig, TraversalConfig
from workbench.ui.widgets.number_box import double_spin_box, spin_box

LOSS_COLORS = {"loss_D": "#1f77b4", "loss_G": "#d62728", "loss_Q": "#2ca02c"}

#: Rows of the evaluation table: metrics key (re-trained), key (frozen), label.
EVAL_ROWS = (("accuracy_real_retrained", "accuracy_real", "real filters"),
             ("accuracy_generated", "accuracy_generated_frozen", "generated (sect. 5.2)"),
             ("accuracy_noise", "accuracy_noise_frozen", "control: real + noise of equal norm"),
             ("accuracy_permuted", "accuracy_permuted_frozen", "control: entries permuted"))


def evaluation_text(m: dict) -> str:
    """Sect. 5.2 (i) as a small rich-text table: test accuracy with the following layers re-trained
    (the paper's metric) and frozen, for the real filters, the generated ones and each control,
    then how far the generated filters lead or trail each control, and the MDS numbers."""

    def cell(key: str) -> str:
        v = m.get(key)
        return f"{v:.4f}" if isinstance(v, (int, float)) else "–"

    rows = "".join(f"<tr><td>{html.escape(label)}</td><td align='right'>{cell(rt)}</td>"
                   f"<td align='right'>{cell(fz)}</td></tr>" for rt, fz, label in EVAL_ROWS)
    text = (f"<table cellspacing='0' cellpadding='4'><tr><th align='left'>test accuracy</th><th>re-trained</th>"
            f"<th>frozen</th></tr>{rows}</table>")
    margins = m.get("margins")
    if isinstance(margins, dict) and margins:
        one = 100.0 / m["test_images"] if m.get("test_images") else None
        parts = [f"{kind} {v['retrained_points']:+.2f} re-trained, {v['frozen_points']:+.2f} frozen"
                 for kind, v in margins.items() if isinstance(v, dict)]
        text += ("<p>generated minus control, points: " + html.escape("; ".join(parts))
                 + (f" (one test image = {one:.2f})" if one else "") + "</p>")
    else:
        text += "<p>no controls in this evaluation: press Evaluate to compute them</p>"
    if isinstance(m.get("spread_relative"), (int, float)) and isinstance(m.get("nearest_real_fraction"), (int, float)):
        text += (f"<p>spread {m['spread_relative']:.3f} of the filter norm; "
                 f"{100 * m['nearest_real_fraction']:.0f} % nearest to their own real filter</p>")
    return text


class ImageView(pg.GraphicsLayoutWidget):
    """One float image in [0, 1] (H, W[, 3]), aspect locked, levels fixed; ``image`` is what it shows."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.view = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.item)
        self.image: np.ndarray | None = None

    def show_image(self, image: np.ndarray) -> None:
        arr = np.asarray(image)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        self.image = arr.copy()
        self.item.setImage(self.image, autoLevels=False, levels=(0.0, 1.0))
        self.view.autoRange(padding=0.02)


class TrainView(QWidget):
    """FilterGanConfig's settings, Train/Cancel, the losses as training reports them and the
    generated filters of the latest sample."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        form = QFormLayout()
        self.layer_edit = QLineEdit(FilterGanConfig.layer)
        self.steps = spin_box(1, 100_000, FilterGanConfig.steps)
        self.latent = spin_box(2, 256, FilterGanConfig.latent_dim)
        self.seed = spin_box(0, 2**31 - 1)
        form.addRow("conv layer", self.layer_edit)
        form.addRow("steps", self.steps)
        form.addRow("latent dim", self.latent)
        form.addRow("seed", self.seed)
        left = QVBoxLayout()
        left.addLayout(form)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        left.addLayout(buttons)
        exports = QHBoxLayout()
        self.export_losses = QPushButton("Export losses…")
        self.export_filters = QPushButton("Export filters…")
        exports.addWidget(self.export_losses)
        exports.addWidget(self.export_filters)
        left.addLayout(exports)
        left.addStretch(1)
        row.addLayout(left, 0)
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.addLegend(offset=(10, 10))
        self.loss_curves = {k: self.loss_plot.plot([], [], pen=pg.mkPen(c, width=2), name=k.replace("_", " "))
                            for k, c in LOSS_COLORS.items()}
        row.addWidget(self.loss_plot, 1)
        self.filter_view = ImageView()
        self.filter_view.setToolTip("generated filters of the first 16 output channels for 4 fixed z "
                                    "(input channels summed in thirds as RGB, as in the paper's Fig. 2)")
        row.addWidget(self.filter_view, 1)

    def fields(self) -> dict:
        """FilterGanConfig's fields as set here."""
        return dict(layer=self.layer_edit.text().strip(), steps=self.steps.value(), latent_dim=self.latent.value(),
                    seed=self.seed.value())

    def show_losses(self, history: dict[str, list[float]]) -> None:
        """Each loss of ``history`` (``step`` and one list per :data:`LOSS_COLORS` key) as its curve."""
        for k, curve in self.loss_curves.items():
            curve.setData(history["step"], history[k])


class MdsView(QWidget):
    """Evaluate/Cancel, the evaluation table (or a message in its place), the MDS scatter (real
    filters large and ringed, generated ones small, coloured by their real filter) and the filter
    behind the point hovered or clicked: ``point_requested(index)`` asks for it."""

    point_requested = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        left = QVBoxLayout()
        self.eval_button = QPushButton("Evaluate (sect. 5.2)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.export_button = QPushButton("Export MDS…")
        self.eval_label = QLabel("accuracy and MDS appear here after evaluation")
        self.eval_label.setWordWrap(True)
        for w in (self.eval_button, self.cancel_button, self.export_button, self.eval_label):
            left.addWidget(w)
        self.point_view = ImageView()
        self.point_view.setMinimumSize(120, 120)
        self.point_label = QLabel("hover or click a point")
        self.point_label.setWordWrap(True)
        left.addWidget(self.point_view, 1)
        left.addWidget(self.point_label)
        row.addLayout(left, 0)
        self.plot = pg.PlotWidget()
        self.plot.setAspectLocked(True)
        # the wheel scrolls the dock, not the scatter (which zoomed under a passing wheel): the
        # view fits its points, and they are hovered and clicked
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setLabel("bottom", "MDS 1")
        self.plot.setLabel("left", "MDS 2")
        self.scatter = pg.ScatterPlotItem(hoverable=True, hoverSize=12, tip=None)
        self.plot.addItem(self.scatter)
        self.scatter.sigHovered.connect(self._on_points_picked)
        self.scatter.sigClicked.connect(self._on_points_picked)
        row.addWidget(self.plot, 1)

    def show_table(self, metrics: dict) -> None:
        """Sect. 5.2 (i) beside its controls, re-trained and frozen (see :func:`evaluation_text`)."""
        self.eval_label.setTextFormat(Qt.TextFormat.RichText)
        self.eval_label.setText(evaluation_text(metrics))

    def say(self, message: str) -> None:
        """A plain message in place of the evaluation table."""
        self.eval_label.setTextFormat(Qt.TextFormat.PlainText)
        self.eval_label.setText(message)

    def clear(self) -> None:
        """No points, and no filter shown."""
        self.scatter.setData([])
        self.point_view.item.clear()
        self.point_label.setText("hover or click a point")

    def show_points(self, data: dict, colours) -> None:
        """The MDS table ``data`` (coords, real_index, is_real): each point in its real filter's colour."""
        brushes = [pg.mkBrush(*colours[j]) for j in data["real_index"]]
        sizes = np.where(data["is_real"], 13, 6)
        pens = [pg.mkPen("k", width=1.5) if r else pg.mkPen(None) for r in data["is_real"]]
        self.scatter.setData(pos=data["coords"], brush=brushes, size=sizes, pen=pens, data=np.arange(len(sizes)))

    def show_filter(self, image: np.ndarray, text: str) -> None:
        self.point_view.show_image(image)
        self.point_label.setText(text)

    def _on_points_picked(self, _item, points, _ev=None) -> None:
        """A point hovered or clicked: its filter is asked for."""
        if len(points):
            self.point_requested.emit(int(points[0].data()))


class TraversalView(QWidget):
    """TraversalConfig's settings, Compute, and the grid of filters along two latent dimensions."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        form = QFormLayout()
        self.sample_edit = QLineEdit(TraversalConfig.sample)
        self.dim_i, self.dim_j = spin_box(0, 255, 0), spin_box(0, 255, 1)
        self.xi = double_spin_box(0.1, 20.0, TraversalConfig.xi, step=0.5)
        self.grid_k = spin_box(3, 15, TraversalConfig.grid, step=2)
        self.iters = spin_box(1, 5000, TraversalConfig.iters)
        form.addRow("sample", self.sample_edit)
        form.addRow("dimension i", self.dim_i)
        form.addRow("dimension j", self.dim_j)
        form.addRow("ξ", self.xi)
        form.addRow("grid k", self.grid_k)
        form.addRow("iterations", self.iters)
        left = QVBoxLayout()
        left.addLayout(form)
        self.traverse_button = QPushButton("Compute traversal")
        self.export_button = QPushButton("Export grid…")
        self.label = QLabel("")
        self.label.setWordWrap(True)
        for w in (self.traverse_button, self.export_button, self.label):
            left.addWidget(w)
        left.addStretch(1)
        row.addLayout(left, 0)
        self.grid_view = ImageView()
        self.grid_view.setToolTip("rows move z_i, columns z_j over ±ξ; the centre is the sample")
        row.addWidget(self.grid_view, 1)

    def fields(self) -> dict:
        """TraversalConfig's fields as set here (the grid odd, so that it has a centre)."""
        return dict(sample=self.sample_edit.text().strip() or "digits:0", dims=(self.dim_i.value(), self.dim_j.value()),
                    xi=self.xi.value(), grid=self.grid_k.value() | 1, iters=self.iters.value())

    def show_result(self, result) -> None:
        """A traversal's grid and how smooth it is (the traverse job's metrics)."""
        from workbench.filtergan.traverse import grid_image

        m = result.metrics
        self.grid_view.show_image(grid_image(result.images, tuple(m["dims"]), m["xi"]))
        self.label.setText(f"centre error {m['centre_error']:.4f}; neighbour change {m['neighbour_rms']:.4f} "
                           f"vs {m['all_pairs_rms']:.4f} between all cells")
