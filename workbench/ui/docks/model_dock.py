"""Model dock: bundled, torchvision and architecture models, Open file…, Open model… (any spec:
a file with its architecture, a Python callable, timm, input size and normalization), the recent
models (whole specs) and the model card."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QScrollArea, QVBoxLayout, QWidget)

from workbench.ui.docks import BaseDock
from workbench.ui.session import spec_from_json, spec_json

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
        self.zoo.setPlaceholderText("Zoo models")  # shown while the model is not one of them
        self.zoo.addItem("digits-vgg", "digits-vgg")
        # its entries are long ("resnet18  (torchvision, untrained)"): they must not set the dock's width
        self.zoo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.zoo.setMinimumContentsLength(12)
        self.zoo.activated.connect(self._on_zoo_activated)
        row.addWidget(self.zoo, 1)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open file…")
        self.open_button.setToolTip("open a model file (.safetensors, .pt, .pth, TorchScript)")
        self.open_button.clicked.connect(self.choose_file)
        self.open_model_button = QPushButton("Open model…")
        self.open_model_button.setToolTip("any model: a file with its architecture or weights, package.module:callable, "
                                          "timm:NAME; its input size and normalization")
        self.open_model_button.clicked.connect(self.open_dialog)
        row.addWidget(self.open_button, 1)
        row.addWidget(self.open_model_button, 1)
        layout.addLayout(row)
        self.recent = QComboBox()
        self.recent.setPlaceholderText("Recent models")
        self.recent.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.recent.setMinimumContentsLength(12)
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
        scroll = QScrollArea()  # a long source path or notice scrolls instead of being cut off
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.card)
        scroll.setMinimumHeight(8 * self.card.fontMetrics().lineSpacing())  # the name and most rows at a glance
        layout.addWidget(scroll, 1)
        self.setWidget(body)
        self._zoo_filled = False
        self._on_recent_changed(session.recent_models())
        session.model_loading.connect(self._on_model_loading)
        session.model_changed.connect(self._on_model_changed)
        session.model_failed.connect(self._on_model_failed)
        session.load_declined.connect(self._on_load_declined)
        session.recent_changed.connect(self._on_recent_changed)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", str(Path.home()), MODEL_FILTER)
        if path:
            self.session.load_model(path)

    def open_dialog(self) -> bool:
        """The Open model dialog, filled with the current model's spec; loads what it gives.
        True if the user opened a model."""
        from workbench.ui.docks.open_model_dialog import OpenModelDialog

        facts = self.session.model_facts
        names = [e.name for e in facts.zoo] if facts is not None else []
        dialog = OpenModelDialog(self.window(), self.session.model_spec, names=names, architectures=names)
        if dialog.exec() != OpenModelDialog.DialogCode.Accepted or dialog.spec() is None:
            return False
        self.session.load_model(dialog.spec())
        return True

    def _on_zoo_activated(self, index: int) -> None:
        name = self.zoo.itemData(index)
        if name and (self.session.model is None or self.session.model.name != name):
            self.session.load_model(name)

    def _on_recent_activated(self, index: int) -> None:
        spec = spec_from_json(self.recent.itemData(index))
        if spec is not None:
            self.session.load_model(spec)
        self.recent.setCurrentIndex(-1)

    def _on_recent_changed(self, recent: list) -> None:
        self.recent.clear()
        for spec in recent:
            self.recent.addItem(spec_label(spec), spec_json(spec))
            self.recent.setItemData(self.recent.count() - 1, spec_tooltip(spec), Qt.ItemDataRole.ToolTipRole)
        self.recent.setEnabled(bool(recent))
        self.recent.setCurrentIndex(-1)

    def _on_model_loading(self, spec: str) -> None:
        self.busy.show()
        self.zoo.setEnabled(False)
        self.open_button.setEnabled(False)
        self.open_model_button.setEnabled(False)
        self.card.setText(f"<i>Loading {_breakable(Path(spec).name or spec)}…</i>")

    def _fill_zoo(self, entries) -> None:
        self.zoo.clear()
        groups = {"bundled": "bundled", "package": "ImageNet, installed package", "torchvision": "torchvision",
                  "architecture": "paper architecture"}
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
        self.open_model_button.setEnabled(True)
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
        self.open_model_button.setEnabled(True)
        current = self.session.model
        if self.session.trust_kind:  # a question for the user follows: no error yet
            text = "<p><b>This model asks for your permission before it loads.</b></p>"
        else:
            text = f"<p style='color:#c0392b'><b>Could not load the model.</b><br>{_breakable(message)}</p>"
        self.card.setText(text + (model_card(current, self.session.model_facts) if current is not None else ""))


    def _on_load_declined(self) -> None:
        """The user said no: the card shows the current model again, without an error."""
        current = self.session.model
        self.card.setText(model_card(current, self.session.model_facts) if current is not None else "")


def spec_label(spec) -> str:
    """A spec in the recent list: its file's name or its name, and what else it sets."""
    name = Path(spec.model).name if spec.kind == "name_or_file" else spec.model
    extras = []
    if spec.arch:
        extras.append(spec.arch)
    if spec.weights:
        extras.append(Path(spec.weights).name)
    if spec.input_size:
        extras.append("x".join(map(str, spec.input_size)))
    return f"{name}  ({', '.join(extras)})" if extras else name


def spec_tooltip(spec) -> str:
    """Every field a spec sets, one a line."""
    rows = [("model", spec.model), ("architecture", spec.arch), ("weights", spec.weights),
            ("model kwargs", spec.model_kwargs),
            ("input size", "x".join(map(str, spec.input_size)) if spec.input_size else None),
            ("mean", ", ".join(f"{v:g}" for v in spec.mean) if spec.mean else None),
            ("std", ", ".join(f"{v:g}" for v in spec.std) if spec.std else None), ("class names", spec.class_names)]
    return "\n".join(f"{k}: {v}" for k, v in rows if v)


def display_name(name: str) -> str:
    """A model's name for titles: a file's name without its folder; an in-memory module
    (``<in-memory Net>``, :func:`~workbench.models.loading.from_module`) as ``Net (in memory)``."""
    if name.startswith("<in-memory ") and name.endswith(">"):
        return f"{name[len('<in-memory '):-1]} (in memory)"
    return Path(name).name or name


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _breakable(text: str) -> str:
    """``text`` escaped, with a place to wrap after each ``/ _ . - :`` (a zero-width space), so a
    long file name or path wraps in a narrow dock instead of widening the card past it."""
    return "".join(c + "\u200b" if c in "/_.-:" else c for c in _escape(text))


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
            ("Weights", trained), ("Source", _breakable(model.source)), ("Layers", str(len(model.layers())))]
    acc = (model.metadata or {}).get("test_accuracy")
    if acc is not None:
        rows.append(("Test accuracy", f"{100 * float(acc):.1f} %" if float(acc) <= 1 else f"{acc}"))
    table = "".join(f"<tr><td style='padding-right:10px;color:gray'>{k}</td><td>{v}</td></tr>" for k, v in rows)
    notice = f"<p style='color:#d35400'>{_breakable(model.notice)}</p>" if model.notice else ""
    return f"<b style='font-size:13pt'>{_breakable(display_name(model.name))}</b><table>{table}</table>{notice}"
