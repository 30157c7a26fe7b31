"""A grid of image tiles drawn as ONE pyqtgraph ImageItem (a mosaic), labelled, zoomable.

One mosaic keeps an update to a single ``setImage`` call, so the live view stays cheap
however many restarts there are. Levels are fixed to [0, 1] (``autoLevels=False``); the
item keeps the array it is given, which is always a fresh copy made here.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont

pg.setConfigOptions(imageAxisOrder="row-major")


def mosaic(tiles: Sequence[np.ndarray], columns: int, pad: int, background: float = 1.0) -> np.ndarray:
    """Tiles (H, W, C) of equal size into one float32 (rows·(H+pad), cols·(W+pad)[, 3]) array."""
    h, w = tiles[0].shape[:2]
    channels = 3 if any(t.ndim == 3 and t.shape[2] >= 3 for t in tiles) else 1
    rows = math.ceil(len(tiles) / columns)
    out = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad, channels), background, dtype=np.float32)
    for i, t in enumerate(tiles):
        t = np.asarray(t, dtype=np.float32)
        if t.ndim == 2:
            t = t[:, :, None]
        if t.shape[2] != channels:
            t = np.repeat(t[:, :, :1], channels, axis=2) if channels == 3 else t[:, :, :1].mean(2, keepdims=True)
        r, c = divmod(i, columns)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = t[:, :, :channels]
    return out[:, :, 0].copy() if channels == 1 else out


class ImageGridWidget(pg.GraphicsLayoutWidget):
    """Tiles with captions; ``tile_clicked(index)`` when the user clicks one."""

    tile_clicked = Signal(int)

    def __init__(self, parent=None, pad_fraction: float = 0.08, label_color: str = "#444") -> None:
        super().__init__(parent)
        self.view = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setDefaultPadding(0.02)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setAutoDownsample(False)
        self.view.addItem(self.item)
        self._labels: list[pg.TextItem] = []
        self._layout: tuple | None = None
        self._pad_fraction = pad_fraction
        self._label_color = label_color
        self._geometry = (1, 1, 1, 0)  # h, w, columns, pad
        self.updates = 0
        self.labels_mode = "above"  # "above" the tiles, "inside" their top edge, or "hidden" (_place_labels)
        self.item.mouseClickEvent = self._on_item_clicked
        self.view.sigTransformChanged.connect(lambda *_: self._place_labels())

    def set_label_color(self, color: str) -> None:
        self._label_color = color
        for label in self._labels:
            label.setColor(QColor(color))
        self._place_labels()

    def _place_labels(self) -> None:
        """Keep every caption off the tile above it, at any zoom: above its tile while the gap
        between rows holds it, else inside the tile's top edge on a backing, else (tiles smaller
        than their captions) hidden."""
        if not getattr(self, "_labels", None):
            return
        h, w, columns, pad = self._geometry
        px_w, px_h = self.view.viewPixelSize()
        if not (px_w > 0 and px_h > 0):
            return
        text_h = max(l.textItem.boundingRect().height() for l in self._labels)
        text_w = max(l.textItem.boundingRect().width() for l in self._labels)
        gap_px, tile_h_px, tile_w_px = pad / px_h, h / px_h, (w + pad) / px_w
        if text_w > tile_w_px or text_h > 0.45 * tile_h_px:
            mode = "hidden"
        elif text_h <= gap_px:
            mode = "above"
        else:
            mode = "inside"
        if mode == self.labels_mode and getattr(self, "_placed", None) == self._layout:
            return
        self.labels_mode, self._placed = mode, self._layout
        backing = QColor(self._background_color)
        backing.setAlpha(200)
        for i, label in enumerate(self._labels):
            r, c = divmod(i, columns)
            label.setVisible(mode != "hidden")
            if mode == "above":
                label.setAnchor((0.5, 1.0))
                label.fill = pg.mkBrush(None)
                label.setPos(c * (w + pad) + w / 2, r * (h + pad) - 0.5)
            else:
                label.setAnchor((0.5, 0.0))
                label.fill = pg.mkBrush(backing)
                label.setPos(c * (w + pad) + w / 2, r * (h + pad))
            label.update()

    _background_color = "#ffffff"

    def set_label_backing(self, color: str) -> None:
        """The colour behind captions drawn inside their tiles (the theme's base colour)."""
        self._background_color = color
        self._placed = None
        self._place_labels()

    def set_background_value(self, value: float) -> None:
        self._background = value

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_labels()

    def restyle(self, background: float) -> None:
        """Draw the tiles shown again on a new ``background`` (the theme changed: no white gutters
        between tiles in the dark theme)."""
        last = getattr(self, "_last", None)
        if last is not None and self.item.image is not None:
            tiles, labels, columns = last
            self.set_tiles(tiles, labels, columns, background)

    def clear_tiles(self) -> None:
        self._last = None
        self.item.clear()
        for label in self._labels:
            self.view.removeItem(label)
        self._labels = []
        self._layout = None

    def set_tiles(self, tiles: Sequence[np.ndarray], labels: Sequence[str] = (), columns: int | None = None,
                  background: float = 0.5) -> None:
        if len(tiles) == 0:
            self.clear_tiles()
            return
        self._last = (tiles, labels, columns)
        h, w = tiles[0].shape[:2]
        columns = columns or len(tiles)
        pad = max(1, int(round(self._pad_fraction * h)))
        self.item.setImage(mosaic(tiles, columns, pad, background), autoLevels=False, levels=(0.0, 1.0))
        self._geometry = (h, w, columns, pad)
        layout = (len(tiles), h, w, columns, tuple(labels))
        if layout != self._layout:
            self._layout = layout
            for label in self._labels:
                self.view.removeItem(label)
            self._labels = []
            font = QFont()
            font.setPointSizeF(max(8.0, font.pointSizeF()))
            for i, text in enumerate(labels):
                r, c = divmod(i, columns)
                item = pg.TextItem(text, color=QColor(self._label_color), anchor=(0.5, 1.0))
                item.setFont(font)
                item.setPos(c * (w + pad) + w / 2, r * (h + pad) - 0.5)
                self.view.addItem(item)
                self._labels.append(item)
            rows = math.ceil(len(tiles) / columns)
            top = -0.35 * h if labels else 0
            self._placed = None
            self.view.setRange(xRange=(0, columns * (w + pad) - pad), yRange=(top, rows * (h + pad) - pad), padding=0.02)
            self._place_labels()
        self.updates += 1

    def tile_at(self, x: float, y: float) -> int | None:
        h, w, columns, pad = self._geometry
        c, r = int(x // (w + pad)), int(y // (h + pad))
        if x < 0 or y < 0 or c >= columns or self._layout is None:
            return None
        index = r * columns + c
        return index if index < self._layout[0] else None

    def _on_item_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        pos = event.pos()
        index = self.tile_at(pos.x(), pos.y())
        if index is not None:
            event.accept()
            self.tile_clicked.emit(index)
