"""Live view (the central widget): the reference beside the current pre-images of all restarts.

Updated from the session's throttled ``job_progressed`` (10 per second at most); each
update is one ``setImage`` of a mosaic (see :class:`~workbench.ui.widgets.image_grid.ImageGridWidget`).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

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
        self.header = QLabel("")
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
        self.frames_received = 0
        self.reference: np.ndarray | None = None
        self.images: np.ndarray | None = None
        self._config = dict(session.config)
        self._progress = ""
        self._reference_slot = LatestJobSlot(self)
        self._reference_slot.finished.connect(self._on_reference_ready)
        self._reference_slot.failed.connect(lambda m: session.log(m, "error"))
        session.model_changed.connect(lambda _m: self._request_reference())
        session.reference_changed.connect(lambda _s: self._request_reference())
        session.layer_changed.connect(lambda _l: self._refresh_header())
        session.config_changed.connect(self._on_config_changed)
        session.job_started.connect(self._on_job_started)
        session.job_progressed.connect(self._on_job_progressed)
        session.job_finished.connect(self._on_job_finished)
        self._refresh_header()

    def _request_reference(self) -> None:
        model, spec = self.session.model, self.session.reference
        if model is None or not spec:
            return
        from workbench.ui.compute import reference_job

        self._reference_slot.request(lambda cancel: reference_job(spec, model, cancel))

    def _on_reference_ready(self, image) -> None:
        self.session.reference_image = image
        self.reference = image
        if self.images is None or self.session.config["method"] == "maximize":
            self._show(self.images)

    def _on_config_changed(self, config: dict) -> None:
        self._config = dict(config)
        if not self.session.busy:
            self._refresh_header()

    def _on_job_started(self, config: dict) -> None:
        self._config = dict(config)
        self.images = None
        self._progress = "starting…"
        self._refresh_header()
        self._show(None)

    def _on_job_progressed(self, progress) -> None:
        text = f"iteration {progress.iteration} / {progress.total}"
        if progress.stage:
            text += f" · {progress.stage}"
        self.stage.setText(text)
        if progress.images is not None:
            self.frames_received += 1
            self._show(progress.images)

    def _on_job_finished(self, result) -> None:
        self._progress = "done"
        self._config["C"] = result.metrics.get("C", self._config.get("C"))
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
            self.grid.set_tiles(tiles, labels, background=self.palette().window().color().valueF())
        else:
            self.grid.clear_tiles()

    def _refresh_header(self) -> None:
        c = self._config
        model = self.session.model
        what = TITLES.get(c.get("method"), c.get("method"))
        if c.get("method") == "maximize":
            what += f" · channel {c.get('channel') or 0}"
        name = model.name if model is not None else c.get("model", "")
        C = c.get("C")
        params = f"C = {C:g}" if C else "C = preset"
        text = (f"<span style='font-size:15pt;font-weight:600'>{what}</span>"
                f"<span style='font-size:11pt;color:gray'>&nbsp;&nbsp; {name} · {self.session.layer} · {params} · "
                f"{c.get('restarts')} restart(s)</span>")
        self.header.setText(text)
        self.stage.setText(self._progress)

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        return self._reference_slot.shutdown(timeout_ms)
