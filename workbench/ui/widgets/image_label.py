"""An RGB image in a label, scaled to the label: the deformation preview, a sweep's figure.

The label's size policy ignores the image, so an image never sets the size of the label, nor of
the dock it is in; the image follows the label when it is resized instead."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy


def to_pixmap(rgb: np.ndarray) -> QPixmap:
    """An RGB uint8 (H, W, 3) array as a pixmap (the pixmap owns a copy)."""
    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = arr.shape[:2]
    return QPixmap.fromImage(QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


class ImageLabel(QLabel):
    """Shows :meth:`show_image`'s image at the label's size (aspect kept, at most ``max_height``
    pixels tall if given), or :meth:`show_text`'s text in its place."""

    #: The smallest the image is drawn, however small the label.
    MIN_SIDE = 40

    def __init__(self, text: str = "", max_height: int | None = None,
                 vertical: QSizePolicy.Policy = QSizePolicy.Policy.Ignored, parent=None) -> None:
        super().__init__(text, parent)
        self.max_height = max_height
        self.image: QPixmap | None = None  # the image at its own size
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, vertical)

    def show_image(self, rgb: np.ndarray) -> None:
        self.image = to_pixmap(rgb)
        self.fit()

    def show_text(self, text: str) -> None:
        self.image = None
        self.setPixmap(QPixmap())
        self.setText(text)

    def fit(self) -> None:
        """The image at the label's present size."""
        if self.image is None:
            return
        height = self.height() if self.max_height is None else min(self.max_height, self.height())
        self.setPixmap(self.image.scaled(max(self.MIN_SIDE, self.width()), max(self.MIN_SIDE, height),
                                         Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit()
