"""Filters & feature maps (the lecture): the first layer's filters, and the selected layer's
feature maps for the reference image, one tile per channel — every channel, however many;
clicking a tile maximizes that channel (eq. 4 with Φ0 = the channel's indicator).

The pointer's channel is read out (its number, its largest activation, the value under the
pointer); the clicked channel is outlined; channel numbers label the tiles when they are large
enough to carry one (zoom in with the wheel), else the first tile of each row. A layer whose
output is a vector (a classifier's logits) is a table of its neurons — named by class when the
model has class names — sortable by activation; double-clicking a neuron maximizes it.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QGraphicsRectItem, QHeaderView, QLabel, QSizePolicy, QStackedWidget, QTabWidget,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from workbench.preview.compute import layer_code_job
from workbench.ui.docks import BaseDock
from workbench.ui.widgets.image_grid import ImageGridWidget
from workbench.ui.worker import LatestJobSlot

#: A tile this many screen pixels wide carries its channel number; smaller, only a row's first.
LABELLED_TILE_PX = 30
HIGHLIGHT = "#ff7f0e"



class _NeuronItem(QTreeWidgetItem):
    """A row of the neuron table; sorts numbers as numbers."""

    def __lt__(self, other) -> bool:
        column = self.treeWidget().sortColumn() if self.treeWidget() else 0
        a, b = self.data(column, Qt.ItemDataRole.UserRole), other.data(column, Qt.ItemDataRole.UserRole)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return self.text(column) < other.text(column)


#: Layers with more channels than this open zoomed on their first ZOOMED_SIDE² maps (480, 1152
#: maps in one view are specks; the wheel zooms out to all of them).
ZOOMED_OVER = 256
ZOOMED_SIDE = 8


class FiltersDock(BaseDock):
    title = "Feature maps and filters"
    area = Qt.DockWidgetArea.RightDockWidgetArea

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        self.tabs = QTabWidget()
        self.maps_caption, self.maps = self._page("Feature maps", "click a channel to maximize it")
        self.filters_caption, self.filters = self._page("First-layer filters", "")
        self.deeper_caption, self.deeper = self._page("Deeper filters", "")
        self.maps.tile_clicked.connect(self._on_tile_clicked)
        # the maps page holds the grid (map layers) or the neuron table (vector layers)
        page = self.tabs.widget(0).layout()
        self.readout = QLabel("")
        self.readout.setStyleSheet("color: gray")
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.readout.setMinimumHeight(self.readout.fontMetrics().height() + 2)
        self.neurons = QTreeWidget()
        self.neurons.setRootIsDecorated(False)
        self.neurons.setHeaderLabels(["neuron", "class", "activation"])
        self.neurons.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.neurons.header().setStretchLastSection(True)
        self.neurons.setSortingEnabled(True)
        self.neurons.itemActivated.connect(lambda item, _c: self.maximize(int(item.data(0, Qt.ItemDataRole.UserRole))))
        self.stack = QStackedWidget()
        page.removeWidget(self.maps)
        self.stack.addWidget(self.maps)
        self.stack.addWidget(self.neurons)
        page.addWidget(self.stack, 1)
        page.addWidget(self.readout)
        self.setWidget(self.tabs)
        self.channels = 0
        self.layer: str | None = None          # the layer whose maps (or neurons) are shown
        self.code: dict | None = None          # what layer_code returned for it
        self.class_names: list[str] | None = None
        self.selected: int | None = None       # the outlined channel
        self._columns = 1
        self._numbers: dict[int, pg.TextItem] = {}
        self._highlight = QGraphicsRectItem()
        self._highlight.setPen(pg.mkPen(HIGHLIGHT, width=2, cosmetic=True))
        self._highlight.setZValue(10)
        self._highlight.hide()
        self.maps.view.addItem(self._highlight)
        self.maps.view.sigRangeChanged.connect(lambda *_a: self._place_numbers())
        self.maps.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._filter_slot = LatestJobSlot(self)
        self._filter_slot.finished.connect(self._on_filters_ready)
        self._deeper_slot = LatestJobSlot(self)
        self._deeper_slot.finished.connect(self._on_deeper_ready)
        self._deeper_slot.failed.connect(lambda m: session.log(m, "error"))
        self._maps_slot = LatestJobSlot(self)
        self._maps_slot.finished.connect(self._on_maps_ready)
        self._maps_slot.failed.connect(lambda m: session.log(m, "error"))
        session.model_changed.connect(self._on_model_changed)
        session.layer_changed.connect(lambda _l: self._request_maps())
        session.layer_changed.connect(lambda _l: self._request_deeper())
        session.reference_changed.connect(lambda _s: self._request_maps())
        session.config_changed.connect(self._on_config_changed)

    def _page(self, title: str, hint: str):
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(2, 2, 2, 2)
        caption = QLabel(hint)
        caption.setStyleSheet("color: gray")
        caption.setWordWrap(True)  # a long layer name must not widen the dock (and the window)
        grid = ImageGridWidget(pad_fraction=0.12)
        layout.addWidget(caption)
        layout.addWidget(grid, 1)
        self.tabs.addTab(page, title)
        return caption, grid

    def _on_model_changed(self, model) -> None:
        from workbench.preview.compute import filters_job

        self._filter_slot.request(lambda cancel: filters_job(model, cancel))
        self._request_maps()
        self._request_deeper(model)

    def _request_deeper(self, model=None) -> None:
        """The Deeper filters tab: the selected layer's filters as combinations of the first layer's
        (Lee et al., the lecture's Fig. 3), computed on a worker by workbench.filters.composite."""
        from workbench.filters.composite import composite_job

        model, layer = model or self.session.model, self.session.layer
        if model is not None:
            self._deeper_slot.request(lambda cancel: composite_job(model, layer, cancel))

    def _on_deeper_ready(self, result) -> None:
        if result is None:
            self.deeper_caption.setText("this model has no second convolution fed by the first")
            self.deeper.clear_tiles()
            return
        _name, tiles, caption = result
        self.deeper_caption.setText(caption)
        self.deeper.set_tiles(list(tiles), columns=math.ceil(math.sqrt(len(tiles))))

    def request_maps(self) -> None:
        self._request_maps()

    def _request_maps(self) -> None:
        from workbench.preview.compute import reference_job

        model, layer, spec = self.session.model, self.session.layer, self.session.reference
        if model is None or not spec:
            return

        def job(cancel):
            reference = reference_job(spec, model, cancel)
            return layer, layer_code_job(model, layer, reference, cancel)

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

    # --- the maps (or neurons) of the selected layer ---------------------------------------------
    def _on_maps_ready(self, result) -> None:
        layer, code = result
        if layer != self.layer:
            self.selected = self._config_channel(layer)
        self.layer, self.code = layer, code
        self._clear_numbers()
        self.readout.setText("")
        if code is None:
            self.channels = 0
            self.class_names = None
            self.maps_caption.setText(f"{layer} has no spatial maps or neurons; pick a convolutional layer")
            self.maps.clear_tiles()
            self._highlight.hide()
            self.stack.setCurrentWidget(self.maps)
            return
        if code["kind"] == "vector":
            self._show_neurons(layer, code)
            return
        maps = code["maps"]
        self.channels, self.class_names = len(maps), None
        h, w = maps.shape[1:3]
        self.maps_caption.setText(f"{layer}: {len(maps)} channels of {h}×{w}, each scaled to its own range — "
                                  "click one to maximize it (the wheel zooms)")
        self._columns = math.ceil(math.sqrt(len(maps)))
        self.stack.setCurrentWidget(self.maps)
        self.maps.set_tiles(list(maps), columns=self._columns, background=0.35)
        if len(maps) > ZOOMED_OVER:
            # hundreds of maps would be a mosaic of specks: open zoomed on the first ones, readable
            gh, gw, _columns, pad = self.maps._geometry
            k = ZOOMED_SIDE
            self.maps.view.setRange(xRange=(0, k * (gw + pad) - pad), yRange=(0, k * (gh + pad) - pad), padding=0.02)
            self.maps_caption.setText(f"{layer}: {len(maps)} channels of {h}×{w}, each scaled to its own range — "
                                      f"showing the first {k * k}: the wheel zooms out to all, a drag pans; "
                                      "click one to maximize it")
        self._place_highlight()
        self._place_numbers()

    def _show_neurons(self, layer: str, code: dict) -> None:
        values, names = code["values"], code["names"]
        self.channels, self.class_names = len(values), names
        what = "classes" if names else "neurons"
        top = f" — top-5: {top5_text(values, names)}" if names else ""
        self.maps_caption.setText(f"{layer}: {len(values)} {what}{top} — double-click one to maximize it")
        self.neurons.setSortingEnabled(False)
        self.neurons.clear()
        items = []
        for k, v in enumerate(values):
            item = _NeuronItem([str(k), names[k] if names else "", f"{float(v):.4g}"])
            item.setData(0, Qt.ItemDataRole.UserRole, k)
            item.setData(1, Qt.ItemDataRole.UserRole, names[k] if names else "")
            item.setData(2, Qt.ItemDataRole.UserRole, float(v))
            items.append(item)
        self.neurons.addTopLevelItems(items)
        self.neurons.setColumnHidden(1, not names)
        self.neurons.setSortingEnabled(True)
        self.neurons.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.stack.setCurrentWidget(self.neurons)
        self.maps.clear_tiles()
        self._highlight.hide()
        self._select_neuron()

    def neuron_name(self, k: int) -> str:
        """Neuron ``k`` as the user reads it: its class name when it has one."""
        names = self.class_names
        return f"neuron {k} ({names[k]})" if names and 0 <= k < len(names) else f"neuron {k}"

    def _select_neuron(self) -> None:
        if self.selected is None:
            return
        for i in range(self.neurons.topLevelItemCount()):
            item = self.neurons.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == self.selected:
                self.neurons.setCurrentItem(item)
                return

    def tile_rect(self, channel: int) -> tuple[float, float, float, float]:
        """(x, y, w, h) of ``channel``'s tile in the maps view's coordinates."""
        h, w, columns, pad = self.maps._geometry
        r, c = divmod(channel, columns)
        return c * (w + pad), r * (h + pad), w, h

    def _place_highlight(self) -> None:
        k = self.selected
        if self.code is None or self.code["kind"] != "maps" or k is None or not 0 <= k < self.channels:
            self._highlight.hide()
            return
        x, y, w, h = self.tile_rect(k)
        self._highlight.setRect(x - 0.5, y - 0.5, w + 1, h + 1)
        self._highlight.show()

    def _clear_numbers(self) -> None:
        for item in self._numbers.values():
            self.maps.view.removeItem(item)
        self._numbers = {}

    def numbered(self) -> list[int]:
        """The channels whose number is shown on their tile now."""
        return sorted(k for k, item in self._numbers.items() if item.isVisible())

    def _place_numbers(self) -> None:
        """Channel numbers on the tiles large enough to hold one (those in view), else on the
        first tile of every row a label's height apart."""
        if self.code is None or self.code["kind"] != "maps" or not self.channels:
            return
        h, w, columns, pad = self.maps._geometry
        px = self.maps.view.viewPixelSize()[0]
        tile_px = w / px if px > 0 else 0.0
        (x0, x1), (y0, y1) = self.maps.view.viewRange()
        rows = math.ceil(self.channels / columns)
        if tile_px >= LABELLED_TILE_PX:
            c0, c1 = max(0, int(x0 // (w + pad))), min(columns - 1, int(x1 // (w + pad)))
            r0, r1 = max(0, int(y0 // (h + pad))), min(rows - 1, int(y1 // (h + pad)))
            wanted = {r * columns + c for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)
                      if r * columns + c < self.channels}
        else:
            every = max(1, math.ceil(14.0 / max(tile_px, 1e-6)))  # rows a label's height apart
            wanted = {r * columns for r in range(0, rows, every)}
        for k, item in self._numbers.items():
            item.setVisible(k in wanted)
        for k in wanted - set(self._numbers):
            item = pg.TextItem(str(k), color="#ffffff", fill=pg.mkBrush(0, 0, 0, 150), anchor=(0, 0))
            font = item.textItem.font()
            font.setPointSizeF(7.0)
            item.setFont(font)
            x, y, _w, _h = self.tile_rect(k)
            item.setPos(x, y)
            item.setZValue(5)
            self.maps.view.addItem(item)
            self._numbers[k] = item

    def hover_text(self, x: float, y: float) -> str:
        """The readout for maps-view coordinates (x, y): channel, its largest activation, and
        the activation under the pointer."""
        code = self.code
        if code is None or code["kind"] != "maps":
            return ""
        k = self.maps.tile_at(x, y)
        if k is None or k >= self.channels:
            return ""
        tx, ty, w, h = self.tile_rect(k)
        px, py = int(x - tx), int(y - ty)
        text = f"channel {k} · max {code['hi'][k]:.4g}"
        if 0 <= px < w and 0 <= py < h:
            value = code["lo"][k] + float(code["maps"][k, py, px, 0]) * (code["hi"][k] - code["lo"][k])
            text += f" · at ({py}, {px}): {value:.4g}"
        return text

    def _on_mouse_moved(self, pos) -> None:
        point = self.maps.view.mapSceneToView(pos)
        self.readout.setText(self.hover_text(point.x(), point.y()))

    def _config_channel(self, layer: str | None) -> int | None:
        config = self.session.config
        if config.get("method") == "maximize" and config.get("layer") == layer and config.get("channel") is not None:
            return int(config["channel"])
        return None

    def _on_config_changed(self, config: dict) -> None:
        channel = self._config_channel(self.layer)
        if channel is not None and channel != self.selected:
            self.selected = channel
            self._place_highlight()
            self._select_neuron()

    def _on_tile_clicked(self, index: int) -> None:
        self.maximize(index)

    def maximize(self, channel: int) -> None:
        self.selected = int(channel)
        self._place_highlight()
        self.session.update_config(method="maximize", channel=int(channel))
        self.session.start_job()

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        return (self._filter_slot.shutdown(timeout_ms) & self._maps_slot.shutdown(timeout_ms)
                & self._deeper_slot.shutdown(timeout_ms))


def top5_text(logits, names) -> str:
    """The five most probable classes of a class layer's values (softmax), named, with their probabilities."""
    v = np.asarray(logits, dtype=np.float64)
    p = np.exp(v - v.max())
    p /= p.sum()
    best = np.argsort(-p, kind="stable")[:5]
    return ", ".join(f"{names[k]} {100 * p[k]:.0f} %" for k in best)
