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
        self.item.mouseClickEvent = self._on_item_clicked

    def set_label_color(self, color: str) -> None:
        self._label_color = color
        for label in self._labels:
            label.setColor(QColor(color))

    def set_background_value(self, value: float) -> None:
        self._background = value

    def clear_tiles(self) -> None:
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
            self.view.setRange(xRange=(0, columns * (w + pad) - pad), yRange=(top, rows * (h + pad) - pad), padding=0.02)
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
