"""Filters & feature maps (the lecture): the first layer's filters, and the selected layer's
feature maps for the reference image, one tile per channel; clicking a tile maximizes
that channel (eq. 4 with Φ0 = the channel's indicator)."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QTabWidget, QVBoxLayout, QWidget

from workbench.ui.docks import BaseDock
from workbench.ui.widgets.image_grid import ImageGridWidget
from workbench.ui.worker import LatestJobSlot


class FiltersDock(BaseDock):
    title = "Feature maps and filters"
    area = Qt.DockWidgetArea.RightDockWidgetArea

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        self.tabs = QTabWidget()
        self.maps_caption, self.maps = self._page("Feature maps", "click a channel to maximize it")
        self.filters_caption, self.filters = self._page("First-layer filters", "")
        self.maps.tile_clicked.connect(self._on_tile_clicked)
        self.setWidget(self.tabs)
        self.channels = 0
        self._filter_slot = LatestJobSlot(self)
        self._filter_slot.finished.connect(self._on_filters_ready)
        self._maps_slot = LatestJobSlot(self)
        self._maps_slot.finished.connect(self._on_maps_ready)
        self._maps_slot.failed.connect(lambda m: session.log(m, "error"))
        session.model_changed.connect(self._on_model_changed)
        session.layer_changed.connect(lambda _l: self._request_maps())
        session.reference_changed.connect(lambda _s: self._request_maps())

    def _page(self, title: str, hint: str):
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(2, 2, 2, 2)
        caption = QLabel(hint)
        caption.setStyleSheet("color: gray")
        grid = ImageGridWidget(pad_fraction=0.12)
        layout.addWidget(caption)
        layout.addWidget(grid, 1)
        self.tabs.addTab(page, title)
        return caption, grid

    def _on_model_changed(self, model) -> None:
        from workbench.ui.compute import filters_job

        self._filter_slot.request(lambda cancel: filters_job(model, cancel))
        self._request_maps()

    def request_maps(self) -> None:
        self._request_maps()

    def _request_maps(self) -> None:
        from workbench.ui.compute import feature_maps_job, reference_job

        model, layer, spec = self.session.model, self.session.layer, self.session.reference
        if model is None or not spec:
            return

        def job(cancel):
            reference = yield from reference_job(spec, model, cancel)
            maps = yield from feature_maps_job(model, layer, reference, cancel)
            return layer, maps

        self._maps_slot.request(job)

    def _on_filters_ready(self, result) -> None:
        if result is None:
            self.filters_caption.setText("this model has no convolution")
            self.filters.clear_tiles()
            return
        name, tiles = result
        k = tiles.shape[1]
        self.filters_caption.setText(f"{name}: {len(tiles)} filters of {k}×{k} (grey = 0)")
        self.filters.set_tiles(list(tiles), columns=math.ceil(math.sqrt(len(tiles))))

    def _on_maps_ready(self, result) -> None:
        layer, maps = result
        if maps is None:
            self.channels = 0
            self.maps_caption.setText(f"{layer} has no spatial maps; pick a convolutional layer")
            self.maps.clear_tiles()
            return
        self.channels = len(maps)
        self.maps_caption.setText(f"{layer}: {len(maps)} channels, each scaled to its own range — click one to maximize it")
        self.maps.set_tiles(list(maps), columns=math.ceil(math.sqrt(len(maps))), background=0.35)

    def _on_tile_clicked(self, index: int) -> None:
        self.maximize(index)

    def maximize(self, channel: int) -> None:
        self.session.update_config(method="maximize", channel=int(channel))
        self.session.start_job()

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        return self._filter_slot.shutdown(timeout_ms) & self._maps_slot.shutdown(timeout_ms)
