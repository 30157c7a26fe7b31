"""Model dock: bundled, torchvision and architecture models, Open file…, recent files, the model card."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QVBoxLayout, QWidget)

from workbench.ui.docks import BaseDock

MODEL_FILTER = "Model files (*.safetensors *.pt *.pth *.ckpt *.bin *.onnx);;All files (*)"


class ModelDock(BaseDock):
    title = "Model"
    area = Qt.DockWidgetArea.LeftDockWidgetArea
    open_requested = Signal()

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        body = QWidget()
        layout = QVBoxLayout(body)
        row = QHBoxLayout()
        self.zoo = QComboBox()
        self.zoo.setToolTip("bundled models, torchvision architectures and the papers' nets")
        self.zoo.addItem("digits-vgg", "digits-vgg")
        self.zoo.activated.connect(self._on_zoo_activated)
        self.open_button = QPushButton("Open file…")
        self.open_button.clicked.connect(self.choose_file)
        row.addWidget(self.zoo, 1)
        row.addWidget(self.open_button)
        layout.addLayout(row)
        self.recent = QComboBox()
        self.recent.setPlaceholderText("Recent files")
        self.recent.activated.connect(self._on_recent_activated)
        layout.addWidget(self.recent)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(6)
        self.busy.hide()
        layout.addWidget(self.busy)
        self.card = QLabel("Starting…")
        self.card.setWordWrap(True)
        self.card.setTextFormat(Qt.TextFormat.RichText)
        self.card.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.card.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.card, 1)
        self.setWidget(body)
        self._zoo_filled = False
        self._on_recent_changed(session.recent_models())
        session.model_loading.connect(self._on_model_loading)
        session.model_changed.connect(self._on_model_changed)
        session.model_failed.connect(self._on_model_failed)
        session.recent_changed.connect(self._on_recent_changed)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", str(Path.home()), MODEL_FILTER)
        if path:
            self.session.load_model(path)

    def _on_zoo_activated(self, index: int) -> None:
        name = self.zoo.itemData(index)
        if name and (self.session.model is None or self.session.model.name != name):
            self.session.load_model(name)

    def _on_recent_activated(self, index: int) -> None:
        path = self.recent.itemData(index)
        if path:
            self.session.load_model(path)

    def _on_recent_changed(self, recent: list) -> None:
        self.recent.clear()
        for path in recent:
            self.recent.addItem(Path(path).name, path)
            self.recent.setItemData(self.recent.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        self.recent.setEnabled(bool(recent))
        self.recent.setCurrentIndex(-1)

    def _on_model_loading(self, spec: str) -> None:
        self.busy.show()
        self.zoo.setEnabled(False)
        self.open_button.setEnabled(False)
        self.card.setText(f"<i>Loading {Path(spec).name}…</i>")

    def _fill_zoo(self, entries) -> None:
        self.zoo.clear()
        groups = {"bundled": "bundled", "torchvision": "torchvision", "architecture": "paper architecture"}
        for kind, label in groups.items():
            for entry in entries:
                if entry.kind == kind:
                    state = "trained" if entry.trained else "untrained"
                    self.zoo.addItem(f"{entry.name}  ({label}, {state})", entry.name)
                    self.zoo.setItemData(self.zoo.count() - 1, entry.description, Qt.ItemDataRole.ToolTipRole)
        self._zoo_filled = True

    def _on_model_changed(self, model) -> None:
        self.busy.hide()
        self.zoo.setEnabled(True)
        self.open_button.setEnabled(True)
        facts = self.session.model_facts
        if not self._zoo_filled and facts is not None and facts.zoo:
            self._fill_zoo(facts.zoo)
        index = self.zoo.findData(model.name)
        self.zoo.setCurrentIndex(index)
        self.card.setText(model_card(model, facts))

    def _on_model_failed(self, message: str) -> None:
        self.busy.hide()
        self.zoo.setEnabled(True)
        self.open_button.setEnabled(True)
        current = self.session.model
        text = f"<p style='color:#c0392b'><b>Could not load the model.</b><br>{_escape(message)}</p>"
        self.card.setText(text + (model_card(current, self.session.model_facts) if current is not None else ""))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def model_card(model, facts=None) -> str:
    """The model's card; ``facts`` (:class:`~workbench.ui.session.ModelFacts`) gives the parameter count."""
    params = facts.parameters if facts is not None else None
    c, h, w = model.input_size
    if model.class_names:
        names = ", ".join(model.class_names[:10]) + (" …" if len(model.class_names) > 10 else "")
        classes = f"{len(model.class_names)} ({_escape(names)})"
    else:
        classes = "none (feature extractor)"
    trained = "<span style='color:#27ae60'>trained</span>" if model.trained else "<span style='color:#c0392b'>untrained</span>"
    rows = [("Parameters", f"{params:,}" if params is not None else "?"), ("Input", f"{c} × {h} × {w}"), ("Classes", classes),
            ("Weights", trained), ("Source", _escape(model.source)), ("Layers", str(len(model.layers())))]
    acc = (model.metadata or {}).get("test_accuracy")
    if acc is not None:
        rows.append(("Test accuracy", f"{100 * float(acc):.1f} %" if float(acc) <= 1 else f"{acc}"))
    table = "".join(f"<tr><td style='padding-right:10px;color:gray'>{k}</td><td>{v}</td></tr>" for k, v in rows)
    notice = f"<p style='color:#d35400'>{_escape(model.notice)}</p>" if model.notice else ""
    return f"<b style='font-size:13pt'>{_escape(Path(model.name).name)}</b><table>{table}</table>{notice}"
