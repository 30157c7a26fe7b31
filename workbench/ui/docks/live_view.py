"""Live view (the central widget): the reference beside the current pre-images of all restarts.

Updated from the session's throttled ``job_progressed`` (10 per second at most); each
update is one ``setImage`` of a mosaic (see :class:`~workbench.ui.widgets.image_grid.ImageGridWidget`).
The wheel zooms, a drag pans, a double-click (or Fit) shows everything again; the pointer's
pixel is read out under the view. Once a job ends (or Runs → Reopen brings a run back) each
restart is captioned with its reconstruction error (or activation) and its predicted class.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from workbench.export.figures import quality_caption
from workbench.ui.widgets.elided_label import ElidedLabel
from workbench.ui.widgets.fixed_label import FixedLabel
from workbench.ui.widgets.image_grid import ImageGridWidget
from workbench.ui.worker import LatestJobSlot

TITLES = {"invert": "Inversion", "maximize": "Activation maximization", "caricature": "Caricature"}


class LiveView(QWidget):
    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("LiveView")
        self.session = session
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        self.header = ElidedLabel("")  # a long model name or layer elides: the window never widens
        self.header.setObjectName("LiveHeader")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.stage = FixedLabel("iteration 00000 / 00000 · fine-tuning")
        self.stage.setStyleSheet("color: gray")
        row = QHBoxLayout()
        row.addWidget(self.header, 1)
        row.addWidget(self.stage)
        layout.addLayout(row)
        self.grid = ImageGridWidget()
        layout.addWidget(self.grid, 1)
        bottom = QHBoxLayout()
        self.readout = QLabel("")  # the pixel under the pointer
        self.readout.setStyleSheet("color: gray")
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("show every image again (or double-click); the wheel zooms, a drag pans")
        self.fit_button.clicked.connect(self.fit)
        bottom.addWidget(self.readout, 1)
        bottom.addWidget(self.fit_button)
        layout.addLayout(bottom)
        self.grid.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.grid.view.sigRangeChanged.connect(self._wrap_captions)
        self.grid.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self.tiles: list[np.ndarray] = []      # what the grid shows, in order
        self.tile_labels: list[str] = []
        self.captions: list[str] = []          # under each tile (metrics of a finished run), or none
        self._caption_items: list[pg.TextItem] = []
        self._caption_key: tuple | None = None
        self._with_reference = False
        session.model_changed.connect(self._on_model_for_captions)
        self._metrics: dict | None = None      # the shown result's metrics
        self.frames_received = 0
        self.reference: np.ndarray | None = None
        self.images: np.ndarray | None = None
        self._config = dict(session.config)
        self._progress = ""
        self._at = ""  # the last iteration reported, for "cancelled at ..."
        self._reference_slot = LatestJobSlot(self)
        self._reference_slot.finished.connect(self._on_reference_ready)
        self._reference_slot.failed.connect(lambda m: session.log(m, "error"))
        session.model_changed.connect(lambda _m: self._request_reference())
        session.reference_changed.connect(lambda _s: self._request_reference())
        session.layer_changed.connect(lambda _l: self._on_config_changed(session.config))
        session.config_changed.connect(self._on_config_changed)
        session.job_started.connect(self._on_job_started)
        session.job_progressed.connect(self._on_job_progressed)
        session.job_finished.connect(self._on_job_finished)
        session.job_cancelled.connect(lambda: self._on_job_ended("cancelled"))
        session.job_failed.connect(lambda _m: self._on_job_ended("failed"))
        reopened = getattr(session, "run_reopened", None)
        if reopened is not None:
            reopened.connect(self._on_run_reopened)
        self._refresh_header()

    def _request_reference(self) -> None:
        model, spec = self.session.model, self.session.reference
        if model is None or not spec:
            return
        from workbench.preview.compute import reference_job

        self._reference_slot.request(lambda cancel: reference_job(spec, model, cancel))

    def _on_reference_ready(self, image) -> None:
        self.session.reference_image = image
        self.reference = image
        if self.images is None or self.session.config["method"] == "maximize":
            self._show(self.images)

    def _on_config_changed(self, config: dict) -> None:
        """The header describes what is shown: with no result shown it follows the settings;
        with one, it keeps describing that result and the stage says the settings differ."""
        if self.session.busy:
            return
        if self.images is None:
            self._config, self._progress = dict(config), ""
            self._refresh_header()
            self._show(None)
        else:
            keys = ("model", "layer", "method", "restarts") + (
                ("channel", "neuron") if config.get("method") == "maximize" else ("image",))
            changed = any(config.get(k) != self._config.get(k) for k in keys)
            self._refresh_header(dict(config) if changed else None)

    def _on_job_ended(self, how: str) -> None:
        self._progress = f"{how} at {self._at}" if self._at else how  # not the last iteration's text
        self.stage.setText(self._progress)

    def _on_job_started(self, config: dict) -> None:
        self._config = dict(config)
        self.images = None
        self._metrics = None
        self._progress, self._at = "starting…", ""
        self._refresh_header()
        self._show(None)

    def _on_job_progressed(self, progress) -> None:
        text = f"iteration {progress.iteration} / {progress.total}"
        if progress.stage:
            text += f" · {progress.stage}"
        self._progress, self._at = text, f"iteration {progress.iteration} / {progress.total}"
        self.stage.setText(text)
        if progress.images is not None:
            self.frames_received += 1
            self._show(progress.images)

    def _on_job_finished(self, result) -> None:
        self._progress = "done"
        self._config["C"] = result.metrics.get("C", self._config.get("C"))
        self._metrics = result.metrics
        self._refresh_header()
        self._show(result.images)

    def _on_run_reopened(self, reopened) -> None:
        """Runs → Reopen: the run's own images, reference and metrics, under its configuration."""
        result = reopened.result
        if result is None or self.session.busy:
            return
        self._config = {**self.session.config, **reopened.config}
        self._config["C"] = result.metrics.get("C", self._config.get("C"))
        self._metrics = result.metrics
        if result.reference is not None:
            self.reference = result.reference
        self._progress = f"reopened · {reopened.status}"
        self._refresh_header()
        self._show(result.images)

    def _show(self, images: np.ndarray | None) -> None:
        self.images = images
        with_reference = self._config.get("method") != "maximize" and self.reference is not None
        tiles = ([self.reference] if with_reference else []) + (list(images) if images is not None else [])
        labels = (["reference"] if with_reference else []) + [f"restart {k + 1}" for k in range(0 if images is None else len(images))]
        if tiles:
            if any(t.shape[:2] != tiles[0].shape[:2] for t in tiles):
                tiles, labels = tiles[-len(images):], labels[-len(images):]
            layout = self.grid._layout
            self.grid.set_tiles(tiles, labels, background=self.palette().window().color().valueF())
            refit = self.grid._layout != layout  # new tiles: as large as the view allows
        else:
            self.grid.clear_tiles()
        self.tiles, self.tile_labels = tiles, labels
        self._with_reference = with_reference and len(tiles) == 1 + (0 if images is None else len(images))
        self._caption(self._with_reference)
        if tiles and refit:
            self.fit()

    # --- captions, zoom and the pixel readout --------------------------------------------------
    def restart_captions(self, with_reference: bool) -> list[str]:
        """Each tile's caption from the shown result's metrics: the reference's predicted class,
        each restart's reconstruction error (or activation) and predicted class with probability."""
        m, n = self._metrics, len(self.tiles)
        if not m or n == 0:
            return []
        k = n - (1 if with_reference else 0)
        names = self._class_names(m) or _names_in_metrics(m)

        def cls(index, prob) -> str:
            if not isinstance(index, int):
                return ""
            name = names[index] if names and 0 <= index < len(names) else f"class {index}"
            return f"→ {name}" + (f" ({100 * prob:.0f} %)" if isinstance(prob, (int, float)) else "")

        def at(key, i):
            values = m.get(key)
            return values[i] if isinstance(values, list) and i < len(values) else None

        out = [cls(m.get("reference_prediction"), m.get("reference_probability"))] if with_reference else []
        for i in range(k):
            lines = []
            error, activation = at("reconstruction_error", i), at("activation", i)
            if isinstance(error, (int, float)):
                lines.append(f"error {error:.3g}")
            elif isinstance(activation, (int, float)):
                ratio = at("activation_over_M", i)
                ratio = ratio if ratio is not None else at("activation_over_reference", i)
                # "3.90 × M": the paper's normaliser M, not millions ("3.90 M" read as 3.9 million)
                unit = " × M" if at("activation_over_M", i) is not None else " × ref"
                lines.append(f"activation {activation:.3g}" + (f" (= {ratio:.2f}{unit})" if isinstance(ratio, (int, float)) else ""))
            label = cls(at("predictions", i), at("probabilities", i))
            if label:
                lines.append(label)
            quality = quality_caption(m, i)   # issue 19: blurred, half-res, judge, slope — as in the exported grid
            if quality:
                lines.append(quality.strip())
            others = runners_up(at("top5", i))
            if others:
                lines.append(others)
            out.append("\n".join(lines))
        return out

    def _on_model_for_captions(self, _model) -> None:
        """A reopened run's classes get their names once its model is loaded."""
        if self._metrics:
            self._caption_key = None
            self._caption(self._with_reference)

    def _class_names(self, metrics: dict):
        model = self.session.model
        if model is None or not getattr(model, "class_names", None):
            return None
        from workbench.ui.docks.model_dock import display_name

        named = metrics.get("model")
        return model.class_names if not named or display_name(str(named)) == display_name(model.name) else None

    def _caption(self, with_reference: bool) -> None:
        """Text under each tile (a finished or reopened run), kept in view."""
        captions = self.restart_captions(with_reference)
        view = self.grid.view
        key = (tuple(captions), self.grid._layout)  # the grid re-ranged itself when its layout changed
        if key == self._caption_key:
            return
        self._caption_key = key
        for item in self._caption_items:
            view.removeItem(item)
        self._caption_items, self.captions = [], captions
        if not captions:
            return
        h, w, columns, pad = self.grid._geometry
        font = QFont()
        font.setPointSizeF(max(8.0, font.pointSizeF() * 0.95))
        color = self.palette().windowText().color()
        for i, text in enumerate(captions):
            r, c = divmod(i, columns)
            item = pg.TextItem(text, color=color, anchor=(0.5, 0.0))
            item.setFont(font)
            item.setPos(c * (w + pad) + w / 2, r * (h + pad) + h)
            view.addItem(item)
            self._caption_items.append(item)
        self.fit()
        self._wrap_captions()

    def _wrap_captions(self, *_args) -> None:
        """Each caption wrapped to its tile's width on screen: the runners-up of one tile never
        run into the next tile's caption."""
        if not getattr(self, "_caption_items", None):
            return
        h, w, columns, pad = self.grid._geometry
        px = self.grid.view.viewPixelSize()[0]
        if not px > 0:
            return
        width = max(48.0, (w + 0.8 * pad) / px)
        for item in self._caption_items:
            if abs(item.textItem.textWidth() - width) > 1:
                item.setTextWidth(width)

    #: the view's own margin around the range it is given (pyqtgraph's ``padding``)
    FIT_PADDING = 0.02

    def fit(self) -> None:
        """Show every tile with its label and caption (undoes zooming and panning), as large as the
        view allows: the room the labels above and the captions below take is their height on
        screen in pixels, not a share of the tile (a share kept 224-px tiles at ~360 px on a
        1920 × 1080 screen in presentation mode, half the height below them empty)."""
        if not self.tiles:
            return
        for _ in range(2):  # captions wrap to the tiles' new width, and may need fewer lines then
            self._fit_once()

    def _fit_once(self) -> None:
        h, w, columns, pad = self.grid._geometry
        rows = math.ceil(len(self.tiles) / columns)
        width, height = columns * (w + pad) - pad, rows * (h + pad) - pad
        view = self.grid.view
        room_w, room_h = view.width() * (1 - 2 * self.FIT_PADDING), view.height() * (1 - 2 * self.FIT_PADDING)
        label_px = (max(l.textItem.boundingRect().height() for l in self.grid._labels) + 2
                    if self.tile_labels and self.grid._labels else 0.0)
        caption_px = (max(i.textItem.boundingRect().height() for i in self._caption_items) + 2
                      if self.captions and self._caption_items else 0.0)
        if room_w <= 0 or room_h - label_px - caption_px <= 0:  # not laid out yet: a share of the tile
            top = -0.35 * h if self.tile_labels else 0.0
            bottom = height + (0.45 * h if self.captions else 0.0)
            view.setRange(xRange=(0, width), yRange=(top, bottom), padding=self.FIT_PADDING)
            return
        scale = min(room_w / width, (room_h - label_px - caption_px) / height)  # screen px per image px
        top, bottom = -label_px / scale, height + caption_px / scale
        view.setRange(xRange=(0, width), yRange=(top, bottom), padding=self.FIT_PADDING)

    def pixel_at(self, x: float, y: float) -> str:
        """The readout for view coordinates (x, y): which tile, which pixel, its value."""
        index = self.grid.tile_at(x, y) if self.tiles else None
        if index is None or index >= len(self.tiles):
            return ""
        h, w, columns, pad = self.grid._geometry
        r, c = divmod(index, columns)
        px, py = int(x - c * (w + pad)), int(y - r * (h + pad))
        tile = self.tiles[index]
        if not (0 <= px < tile.shape[1] and 0 <= py < tile.shape[0]):
            return ""
        value = np.asarray(tile[py, px], dtype=np.float64).reshape(-1)
        shown = f"{value[0]:.3f}" if value.size == 1 else "(" + ", ".join(f"{v:.3f}" for v in value[:3]) + ")"
        label = self.tile_labels[index] if index < len(self.tile_labels) else f"tile {index + 1}"
        return f"{label} · x {px}, y {py} · {shown}"

    def _on_mouse_moved(self, pos) -> None:
        point = self.grid.view.mapSceneToView(pos)
        self.readout.setText(self.pixel_at(point.x(), point.y()))

    def _on_mouse_clicked(self, event) -> None:
        if event.double():
            self.fit()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            for item in self._caption_items:
                item.setColor(self.palette().windowText().color())

    def _describe(self, c: dict) -> tuple[str, str]:
        """The method (with the channel of a maximisation) and "model · layer · C · restarts" of ``c``."""
        model = self.session.model
        what = TITLES.get(c.get("method"), c.get("method"))
        from workbench.ui.docks.model_dock import display_name

        named = ""  # the class of a classifier output's channel (on the second line: the first stays short)
        if c.get("method") == "maximize":
            channel = c.get("channel") or 0
            what += f" · channel {channel}"
            same = model is not None and display_name(str(c.get("model") or model.name)) == display_name(model.name)
            if same:  # a class of the classifier's output is named: "channel 285 (Egyptian cat)"
                from workbench.preview.compute import layer_class_names

                try:
                    names = layer_class_names(model, c.get("layer") or self.session.layer)
                except Exception:  # a layer table that cannot be read names nothing
                    names = None
                if names and 0 <= channel < len(names) and names[channel] != str(channel):  # not "class 3 · 3"
                    named = f" · {names[channel]}"

        name = display_name(c.get("model") or (model.name if model is not None else ""))
        C = c.get("C")
        from workbench.export.figures import human_number

        params = f"C = {human_number(C)}" if C else "C = preset"
        return what, f"{name} · {c.get('layer') or self.session.layer}{named} · {params} · {c.get('restarts')} restart(s)"

    def _refresh_header(self, selected: dict | None = None) -> None:
        """The header names what the Method dock has selected. While the images shown are another
        run's (``selected`` differs from the shown result), the line under it says so: not run yet,
        and the shown result's method and settings (issue 20)."""
        what, details = self._describe(selected if selected is not None else self._config)
        text = (f"<span style='font-size:x-large;font-weight:600'>{what}</span>"
                f"<br><span style='font-size:large;color:gray'>{details}</span>")
        if selected is not None:
            shown, shown_details = self._describe(self._config)
            # each line short enough to stay whole: the header elides, and a cut first line hides the second
            text = (f"<span style='font-size:x-large;font-weight:600'>{what}</span>"
                    f"<br><span style='font-size:large;color:gray'>not run yet (Ctrl+R) · shown: {shown} · "
                    f"{shown_details}</span>")
            self.stage.setText("settings changed · Run (Ctrl+R)")
        else:
            self.stage.setText(self._progress)
        self.header.setText(text)
        self.selected_differs = selected is not None

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        return self._reference_slot.shutdown(timeout_ms)


def _names_in_metrics(metrics: dict) -> list[str] | None:
    """Class names from a run's named top-5 predictions (a reopened run before its model loads): a list
    as long as the largest class seen, "class k" where the run names no class k."""
    names: dict[int, str] = {}
    for entries in [metrics.get("reference_top5")] + list(metrics.get("top5") or []):
        for e in entries if isinstance(entries, list) else []:
            if isinstance(e, dict) and isinstance(e.get("class"), int) and e["class"] >= 0 and e.get("name"):
                names[e["class"]] = str(e["name"])
    return [names.get(k, f"class {k}") for k in range(max(names) + 1)] if names else None


def runners_up(entries, least: float = 0.01) -> str:
    """The 2nd to 5th of a restart's top-5 predictions that hold at least ``least``, as one caption line."""
    if not isinstance(entries, list):
        return ""
    # "name (p %)" as the top class is written: a digit's "0 3 %" read as one number
    parts = [f"{e.get('name') or 'class ' + str(e.get('class'))} ({100 * float(e['probability']):.0f} %)"
             for e in entries[1:5] if isinstance(e, dict) and float(e.get("probability", 0.0)) >= least]
    return " · ".join(parts)
