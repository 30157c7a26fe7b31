"""The Atlas dock (issue 11): a layer's atlas — every selected channel maximized through the
sweep machinery (:mod:`workbench.sweep.atlas`) — as a grid of tiles that fills in while it is
computed (wheel to zoom, Fit to see it all); clicking a tile opens its run.

Atlases are cached per model and layer in the workspace, ``<workspace>/atlases/<model>-<layer>``
(the atlas folder of ``workbench atlas``: index.json, atlas.png, cells/): choosing a layer shows
its cached atlas, and computing one again reuses its finished channels (the sweep's resume).
The channel chosen elsewhere (the feature maps' click: ``config["channel"]`` of this layer) is
outlined on its tile.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QGraphicsRectItem, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QSizePolicy, QVBoxLayout, QWidget)

from workbench.config import parse_ints
from workbench.errors import UserError
from workbench.preview.grids import (AtlasGrid, AtlasTile, atlas_folder, atlas_sweep_job, cached_atlas_job, channel_state,
                                     executors)
from workbench.ui.docks import BaseDock
from workbench.ui.docks.sweeps_dock import SWEEP_ONLY, parse_list
from workbench.ui.widgets.image_grid import ImageGridWidget
from workbench.ui.widgets.number_box import spin_box
from workbench.ui.worker import JobRunner

HIGHLIGHT = "#ff7f0e"
#: Colours of the tiles drawn for channels without a result.
MARK_COLOR = {"dead": (0.18, 0.18, 0.2), "failed": (0.55, 0.12, 0.1)}


def marked_tile(shape: tuple, state: str) -> np.ndarray:
    """The tile drawn for a dead or failed channel: a flat colour crossed by a diagonal, so it
    never reads as a result."""
    h, w = shape[:2]
    tile = np.empty((h, w, 3), np.float32)
    tile[:] = MARK_COLOR.get(state, (0.5, 0.5, 0.5))
    r = np.arange(h)
    c = np.clip((r * (w - 1)) // max(h - 1, 1), 0, w - 1)
    for d in (-1, 0, 1):
        tile[r, np.clip(c + d, 0, w - 1)] = (0.85, 0.85, 0.85)
        tile[r, np.clip(w - 1 - c + d, 0, w - 1)] = (0.85, 0.85, 0.85)
    return tile


class AtlasDock(BaseDock):
    title = "Atlas"
    area = Qt.DockWidgetArea.RightDockWidgetArea

    grid_expanded = Signal(object, object, object)  # channels, configs, {index: (tile, activation, folder)}
    tile_finished = Signal(int, object, object, str, str)    # index, tile, activation, folder, state (GUI thread)

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        self.runner = JobRunner(self, rate=5.0)
        self.loader = JobRunner(self, rate=0)
        self.channels: list[int] = []
        self.tiles: list[np.ndarray | None] = []
        self.activations: list[Any] = []
        self.folders: list[str] = []
        self.configs: list[dict | None] = []
        self.states: list[str] = []          # per channel: done, dead, failed or pending (channel_state)
        self.folder: Path | None = None      # the atlas shown
        self._columns = 1
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        self.layer = QComboBox()
        self.layer.setMinimumContentsLength(6)
        self.layer.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer.currentTextChanged.connect(self._on_layer_chosen)
        self.channels_edit = QLineEdit("0-15")
        self.channels_edit.setToolTip("channels to maximize, e.g. 0-15,20 (empty: every channel)")
        self.channels_edit.setMinimumWidth(40)
        self.iters = spin_box(1, 100_000, int(session.config.get("iters") or 300), tip="iterations per channel")
        for w in (self.layer, QLabel("ch"), self.channels_edit):
            top.addWidget(w)
        self.executor = QComboBox()
        self.executor.addItems(executors())
        mid = QHBoxLayout()
        for w in (QLabel("iters"), self.iters, self.executor):
            mid.addWidget(w)
        row2 = QHBoxLayout()
        self.compute_button = QPushButton("Compute")
        self.compute_button.setToolTip("maximize every selected channel of the layer (finished ones are reused)")
        self.compute_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.runner.bind_buttons(self.compute_button, self.cancel_button)
        fit = QPushButton("Fit")
        fit.setToolTip("show the whole atlas (the wheel zooms)")
        fit.clicked.connect(self.fit)
        for w in (self.compute_button, self.cancel_button, fit):
            row2.addWidget(w)
        self.grid = ImageGridWidget()
        self.grid.setMinimumSize(120, 100)
        self.grid.tile_clicked.connect(self.open_tile)
        self._highlight = QGraphicsRectItem()
        self._highlight.setPen(pg.mkPen(HIGHLIGHT, width=2, cosmetic=True))
        self._highlight.setZValue(10)
        self._highlight.hide()
        self.grid.view.addItem(self._highlight)
        self.status = QLabel("")
        self.status.setStyleSheet("color: gray")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.status.setMinimumHeight(self.status.fontMetrics().height() + 2)
        layout.addLayout(top)
        layout.addLayout(mid)
        layout.addLayout(row2)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.status)
        self.setWidget(body)
        self.grid_expanded.connect(self._on_grid_expanded)
        self.tile_finished.connect(self._on_tile_finished)
        self.runner.event_yielded.connect(self._on_grid_event)
        self.runner.progressed.connect(lambda p: self._set_status(f"{p.iteration} / {p.total} channels"))
        self.runner.logged.connect(lambda level, message: session.log(message, level))
        self.runner.finished.connect(lambda _r: self._set_status(
            f"atlas of {len(self.channels)} channel(s){self._marked_summary()} in {self.folder}"))
        self.runner.cancelled.connect(lambda: self._set_status("cancelled: the finished channels are kept"))
        self.runner.failed.connect(self._on_failed)
        self.loader.finished.connect(self._on_cached)
        session.model_changed.connect(self._on_model_changed)
        session.config_changed.connect(lambda _c: self._place_highlight())
        session.collection_reopened.connect(self._on_collection_reopened)
        if session.model is not None:
            self._on_model_changed(session.model)

    # --- layer and cache ---------------------------------------------------------------------
    def _on_model_changed(self, model) -> None:
        with QSignalBlocker(self.layer):
            self.layer.clear()
            if model is not None:
                self.layer.addItems([info.name for info in model.layers() if len(info.shape) == 3])
                current = self.session.config.get("layer")
                if current and self.layer.findText(current) >= 0:
                    self.layer.setCurrentText(current)
        self._on_layer_chosen(self.layer.currentText())

    def current_folder(self) -> Path | None:
        from workbench.config.sweep import options_of

        layer = self.layer.currentText()
        try:
            spec = self.session.model_to_reopen()[0]
        except UserError:
            return None  # a model in memory: no atlas (start says why)
        return atlas_folder(self.session.store.root, spec.model, layer, options_of(spec)) if layer else None

    def _on_layer_chosen(self, _layer: str) -> None:
        self._clear()
        folder = self.current_folder()
        if folder is None or self.runner.running or self.loader.running:
            return
        self.folder = folder
        self.loader.start(lambda cancel: cached_atlas_job(folder, cancel))

    def _on_cached(self, cached) -> None:
        if not cached or self.runner.running:
            return
        self.channels = sorted(cached)
        self.tiles = [cached[k][0] for k in self.channels]
        self.activations = [cached[k][1] for k in self.channels]
        self.folders = [cached[k][2] for k in self.channels]
        self.configs = [cached[k][3] for k in self.channels]
        self.states = [cached[k][4] for k in self.channels]
        self._show(fit=True)
        self._set_status(f"cached atlas: {len(self.channels)} channel(s){self._marked_summary()}")

    def _on_collection_reopened(self, kind: str, path: str) -> None:
        if kind == "atlas":
            self.open_atlas(path)

    def open_atlas(self, path: str | Path) -> bool:
        """Show the atlas in the folder ``path`` (Runs → Reopen), whichever model is loaded."""
        if self.runner.running or self.loader.running:
            self._set_status("the atlas is busy: reopen it when it is done")
            return False
        self._clear()
        folder = self.folder = Path(path)
        self.loader.start(lambda cancel: cached_atlas_job(folder, cancel))
        self.show()
        self.raise_()
        return True

    # --- computing ---------------------------------------------------------------------------
    def atlas_config(self):
        from workbench.config.sweep import AtlasConfig, options_of

        cfg, layer = self.session.config, self.layer.currentText()
        if not layer:
            raise UserError("open a model with a layer of feature maps first")
        spec = self.session.model_to_reopen()[0]  # the loaded model's whole spec, not its bare name
        folder = self.current_folder()
        config = AtlasConfig(model=spec.model, model_options=options_of(spec), layer=layer,
                             channels=parse_list(self.channels_edit.text(), parse_ints, "channels"),
                             channel_mean=bool(cfg.get("channel_mean")), seed=int(cfg.get("seed") or 0),
                             iters=self.iters.value(), device=str(cfg.get("device") or "auto"),
                             executor=self.executor.currentText(), resume=True, out=str(folder))
        config.sweep().validate()
        return config

    def start(self) -> bool:
        if self.runner.running or self.loader.running:
            return False
        try:
            config = self.atlas_config()
        except UserError as exc:
            self._set_status(str(exc))
            return False
        self.folder = Path(config.out)
        self._clear()
        self._set_status("expanding the channels…")
        consent = self.session.model_to_reopen()[1]  # what the window's model was opened with, no more
        return self.runner.start(lambda cancel: atlas_sweep_job(config, cancel, **consent))

    def _on_grid_event(self, event) -> None:
        """The atlas job's grid events become the dock's signals (on the GUI thread)."""
        if isinstance(event, AtlasGrid):
            self.grid_expanded.emit(event.channels, event.configs, event.done)
        elif isinstance(event, AtlasTile):
            self.tile_finished.emit(event.index, event.tile, event.activation, event.folder, event.state)

    def _on_grid_expanded(self, channels, configs, done) -> None:
        self.channels = list(channels)
        self.configs = list(configs)
        self.tiles = [None] * len(channels)
        self.activations = [None] * len(channels)
        self.folders = [""] * len(channels)
        self.states = ["pending"] * len(channels)
        for i, (tile, activation, folder) in done.items():
            self.tiles[i], self.activations[i], self.folders[i] = tile, activation, folder
            self.states[i] = channel_state("done", activation)
        self._show(fit=True)
        self._set_status(f"{len(channels)} channel(s), {len(done)} cached")

    def _on_tile_finished(self, index: int, tile, activation, folder: str, state: str = "done") -> None:
        if 0 <= index < len(self.tiles):
            self.tiles[index], self.activations[index], self.folders[index] = tile, activation, folder
            self.states[index] = state
            self._show()

    def marked(self, state: str) -> list[int]:
        """The channels in ``state`` (``dead`` or ``failed``)."""
        return [k for k, s in zip(self.channels, self.states) if s == state]

    def _marked_summary(self) -> str:
        parts = [f"{len(self.marked(s))} {s} ({', '.join(map(str, self.marked(s)[:8]))}"
                 f"{'…' if len(self.marked(s)) > 8 else ''})" for s in ("dead", "failed") if self.marked(s)]
        return f"; {'; '.join(parts)}" if parts else ""

    def _on_failed(self, message: str) -> None:
        self._set_status(message)
        self.session.log(f"atlas: {message}", "error")

    # --- the grid ------------------------------------------------------------------------------
    def filled(self) -> int:
        return sum(t is not None for t in self.tiles)

    def _clear(self) -> None:
        self.channels, self.tiles, self.activations, self.folders, self.configs = [], [], [], [], []
        self.states = []
        self.grid.clear_tiles()
        self._highlight.hide()

    def _show(self, fit: bool = False) -> None:
        known = next((t for t in self.tiles if t is not None), None)
        marked = any(s in ("dead", "failed") for s in self.states)
        if known is None and not marked:
            self.grid.clear_tiles()
            return
        shape = known.shape if known is not None else (64, 64, 3)
        blank = np.full(shape, 0.5, np.float32)
        states = self.states if len(self.states) == len(self.tiles) else ["done"] * len(self.tiles)
        tiles = [marked_tile(shape, s) if s in ("dead", "failed")
                 else t if t is not None and t.shape == shape else blank for t, s in zip(self.tiles, states)]
        labels = [f"{k} {s}" if s in ("dead", "failed") else str(k) for k, s in zip(self.channels, states)]
        self._columns = max(1, math.ceil(math.sqrt(len(tiles))))
        if fit:
            self.grid._layout = None  # a new atlas: frame it whole
        self.grid.set_tiles(tiles, labels=labels, columns=self._columns)
        self._place_highlight()

    def fit(self) -> None:
        self.grid._layout = None
        self._show()

    def _place_highlight(self) -> None:
        cfg = self.session.config
        k = cfg.get("channel")
        if (k is None or cfg.get("layer") != self.layer.currentText() or k not in self.channels
                or self.filled() == 0):
            self._highlight.hide()
            return
        h, w, columns, pad = self.grid._geometry
        r, c = divmod(self.channels.index(k), columns)
        self._highlight.setRect(c * (w + pad) - 0.5, r * (h + pad) - 0.5, w + 1, h + 1)
        self._highlight.show()

    def open_tile(self, index: int) -> bool:
        """Open tile ``index``'s channel as a run (its configuration and its results)."""
        if 0 <= index < len(self.states) and self.states[index] in ("dead", "failed"):
            self._set_status(f"channel {self.channels[index]} is {self.states[index]}: "
                             + ("its maximization reached activation 0 (no input makes it fire)"
                                if self.states[index] == "dead" else "its maximization did not finish"))
            return False
        if not 0 <= index < len(self.folders) or not self.folders[index] or not self.configs[index]:
            self._set_status("that channel is not computed yet")
            return False
        config = {k: v for k, v in self.configs[index].items() if k not in SWEEP_ONLY}
        self.session.apply_config(config, run=self.folders[index])
        return True

    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setToolTip(text)

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        return self.runner.shutdown(timeout_ms) & self.loader.shutdown(timeout_ms)
