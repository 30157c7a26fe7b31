"""The Open model dialog: any model source the loader takes, as one :class:`ModelSpec`.

The source is a zoo name, a file (browse: safetensors, a state_dict, ONNX, TorchScript), a
``package.module:callable`` or ``timm:NAME``; the architecture and a weights file sit beside it,
the model's keyword arguments and what its input looks like (size, mean, std, class names)
under "Input and options". Every change is checked at once with :meth:`ModelSpec.validate`
(nothing is opened or imported here, so it is cheap enough for the GUI thread): the first
problem is shown in one line under the fields, its field is outlined, and OK stays disabled
until the spec is valid.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QComboBox, QCompleter, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget)

from workbench.config.model import ModelSpec, parse_floats, parse_input_size
from workbench.errors import UserError

MODEL_FILTER = ("Model files (*.safetensors *.pt *.pth *.ckpt *.bin *.onnx *.ts);;Safetensors (*.safetensors);;"
                "PyTorch state_dict or TorchScript (*.pt *.pth *.ckpt *.bin *.ts);;ONNX (*.onnx);;All files (*)")
WEIGHTS_FILTER = "Weights (*.safetensors *.pt *.pth *.ckpt *.bin);;All files (*)"
CLASS_NAMES_FILTER = "Class names (*.txt *.json);;All files (*)"

#: The CLI's option names in ModelSpec's messages, as the dialog labels its fields (longest first).
LABELS = (("--model-kwargs", "Model kwargs"), ("--input-size", "Input size"), ("--class-names", "Class names"),
          ("--weights", "Weights"), ("--model", "Model"), ("--arch", "Architecture"), ("--mean", "Mean"),
          ("--std", "Std"))
#: The field each option names.
FIELDS = {"--model-kwargs": "model_kwargs", "--input-size": "input_size", "--class-names": "class_names",
          "--weights": "weights", "--model": "model", "--arch": "arch", "--mean": "mean", "--std": "std"}
ERROR_STYLE = "border: 1px solid #c0392b; border-radius: 2px;"


def _text(widget) -> str:
    return (widget.currentText() if isinstance(widget, QComboBox) else widget.text()).strip()


def describe(spec_text: str) -> str:
    """What the source field holds, in a few words (from its form alone: nothing is opened)."""
    text = spec_text.strip()
    if not text:
        return "a zoo name, a model file, package.module:callable or timm:NAME"
    spec = ModelSpec(model=text)
    if spec.kind == "timm":
        return "a timm architecture (timm must be installed)"
    if spec.kind == "callable":
        return "Python code: importing it runs its module — you will be asked first"
    suffix = Path(text).suffix.lower()
    if suffix == ".onnx":
        return "an ONNX graph"
    if suffix == ".safetensors":
        return "a safetensors weights file (give its architecture unless the file names it)"
    if suffix in (".pt", ".pth", ".ckpt", ".bin", ".tar", ".ts"):
        return "a PyTorch file: a state_dict (give its architecture), TorchScript or a pickle (asked first)"
    if "/" in text or "\\" in text or suffix:
        return "a model file"
    return "a zoo model (see the model box)"


class OpenModelDialog(QDialog):
    """Ask for a :class:`ModelSpec`; :meth:`spec` is valid once the dialog is accepted.

    ``names`` fills the source's completer (the zoo), ``architectures`` the architecture box;
    ``spec`` pre-fills the fields (the current model's, say)."""

    def __init__(self, parent: QWidget | None = None, spec: ModelSpec | None = None, names: Sequence[str] = (),
                 architectures: Sequence[str] = ()) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open model")
        self.setObjectName("OpenModelDialog")
        self.setMinimumWidth(560)
        outer = QVBoxLayout(self)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)

        self.model = QLineEdit()
        self.model.setPlaceholderText("digits-vgg, ~/nets/model.safetensors, mypkg.nets:Net, timm:resnet50")
        self.model.setToolTip("a zoo name, a model file, a Python callable package.module:callable "
                              "(a class or a factory returning an nn.Module) or timm:NAME")
        if names:
            completer = QCompleter(list(names), self)
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            self.model.setCompleter(completer)
        self.model_browse = QPushButton("Browse…")
        self.model_browse.setToolTip("pick a model file: .safetensors, .pt/.pth (state_dict or TorchScript), .onnx")
        self.model_browse.clicked.connect(self._browse_model)
        form.addRow("Model", self._row(self.model, self.model_browse))
        self.kind = QLabel()
        self.kind.setStyleSheet("color: gray")
        self.kind.setWordWrap(True)
        form.addRow("", self.kind)

        self.arch = QComboBox()
        self.arch.setEditable(True)
        self.arch.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.arch.addItem("")
        self.arch.addItems(list(architectures))
        self.arch.lineEdit().setPlaceholderText("for a weights file: the architecture they fit")
        self.arch.setToolTip("the architecture a safetensors or state_dict file's weights are for")
        form.addRow("Architecture", self.arch)

        self.weights = QLineEdit()
        self.weights.setPlaceholderText("optional: weights to load into the model built above")
        self.weights.setToolTip("a safetensors file or a state_dict (loaded with weights_only=True)")
        self.weights_browse = QPushButton("Browse…")
        self.weights_browse.clicked.connect(lambda: self._browse(self.weights, "Weights file", WEIGHTS_FILTER))
        form.addRow("Weights", self._row(self.weights, self.weights_browse))
        outer.addLayout(form)

        self.kwargs = QLineEdit()
        self.kwargs.setPlaceholderText('{"num_classes": 10}')
        self.kwargs.setToolTip("keyword arguments for a package.module:callable or timm:NAME, as a JSON object")
        self.input_size = QLineEdit()
        self.input_size.setPlaceholderText("CxHxW, e.g. 3x224x224 (default: the model's own or its sidecar's)")
        self.mean = QLineEdit()
        self.mean.setPlaceholderText("comma-separated, [0, 1] scale, e.g. 0.485,0.456,0.406")
        self.std = QLineEdit()
        self.std.setPlaceholderText("comma-separated, [0, 1] scale, e.g. 0.229,0.224,0.225")
        self.class_names = QLineEdit()
        self.class_names.setPlaceholderText("optional: a text file, one class name a line")
        self.class_names_browse = QPushButton("Browse…")
        self.class_names_browse.clicked.connect(lambda: self._browse(self.class_names, "Class names", CLASS_NAMES_FILTER))
        advanced = QWidget()
        aform = QFormLayout(advanced)
        aform.setContentsMargins(0, 0, 0, 0)
        aform.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        aform.addRow("Model kwargs", self.kwargs)
        aform.addRow("Input size", self.input_size)
        aform.addRow("Mean", self.mean)
        aform.addRow("Std", self.std)
        aform.addRow("Class names", self._row(self.class_names, self.class_names_browse))
        self.advanced = _collapsible("Input and options", advanced)
        _align_labels(form, aform)
        outer.addWidget(self.advanced)

        self.error = QLabel()
        self.error.setObjectName("OpenModelError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c0392b")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.error)
        outer.addStretch(1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Open)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        outer.addWidget(self.buttons)

        self.fields = {"model": self.model, "arch": self.arch, "weights": self.weights, "model_kwargs": self.kwargs,
                       "input_size": self.input_size, "mean": self.mean, "std": self.std, "class_names": self.class_names}
        self._spec: ModelSpec | None = None
        self.problem: str | None = None
        if spec is not None:
            self.set_spec(spec)
        for widget in self.fields.values():
            signal = widget.currentTextChanged if isinstance(widget, QComboBox) else widget.textChanged
            signal.connect(self._check)
        self._check()
        self.model.setFocus()

    # --- fields ----------------------------------------------------------------------------
    @staticmethod
    def _row(field: QWidget, button: QPushButton) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(field, 1)
        row.addWidget(button)
        return row

    def set_spec(self, spec: ModelSpec) -> None:
        """Fill the fields from ``spec`` (opening "Input and options" if it sets any of them)."""
        self.model.setText(spec.model)
        self.arch.setCurrentText(spec.arch or "")
        self.weights.setText(spec.weights or "")
        self.kwargs.setText(spec.model_kwargs or "")
        self.input_size.setText("x".join(map(str, spec.input_size)) if spec.input_size else "")
        self.mean.setText(",".join(f"{v:g}" for v in spec.mean) if spec.mean else "")
        self.std.setText(",".join(f"{v:g}" for v in spec.std) if spec.std else "")
        self.class_names.setText(spec.class_names or "")
        if any(getattr(spec, k) for k in ("model_kwargs", "input_size", "mean", "std", "class_names")):
            _expand(self.advanced)
        self._check()

    def spec(self) -> ModelSpec | None:
        """The spec the fields describe; None while one of them is not valid (see :attr:`problem`)."""
        return self._spec

    def _build(self) -> ModelSpec:
        """The fields as a validated spec; a :class:`UserError` names the first problem."""
        def optional(widget) -> str | None:
            return _text(widget) or None

        size, mean, std = _text(self.input_size), _text(self.mean), _text(self.std)
        spec = ModelSpec(model=_text(self.model), arch=optional(self.arch), weights=optional(self.weights),
                         model_kwargs=optional(self.kwargs),
                         input_size=parse_input_size(size) if size else None,
                         mean=parse_floats("--mean", mean) if mean else None,
                         std=parse_floats("--std", std) if std else None,
                         class_names=optional(self.class_names))
        spec.validate()
        return spec

    def _check(self, *_args) -> None:
        self.kind.setText(describe(self.model.text()))
        try:
            self._spec, self.problem = self._build(), None
        except UserError as exc:
            self._spec, self.problem = None, str(exc)
        field = self._field_of(self.problem) if self.problem else None
        for name, widget in self.fields.items():
            widget.setStyleSheet(ERROR_STYLE if name == field and _text(widget) else "")
        if field in ("model_kwargs", "input_size", "mean", "std", "class_names"):
            _expand(self.advanced)
        empty = not _text(self.model)
        self.error.setText("" if self.problem is None or empty else _labelled(self.problem))
        self.ok_button.setEnabled(self._spec is not None)

    @staticmethod
    def _field_of(message: str) -> str | None:
        """The field a ModelSpec message is about: the first option it names."""
        for match in re.finditer(r"--[a-z][a-z-]*", message):
            if match.group() in FIELDS:
                return FIELDS[match.group()]
        return None

    def _browse(self, field: QLineEdit, title: str, filters: str) -> None:
        current = field.text().strip()
        start = str(Path(current).expanduser().parent) if current and ("/" in current or "\\" in current) else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, title, start, filters)
        if path:
            field.setText(path)

    def _browse_model(self) -> None:
        self._browse(self.model, "Open a model file", MODEL_FILTER)


def _labelled(message: str) -> str:
    """A ModelSpec message with the CLI's option names replaced by the dialog's field labels."""
    for option, label in LABELS:
        message = message.replace(option, label)
    return message


def _collapsible(title: str, body: QWidget) -> QWidget:
    """``body`` under a header that folds it away (superqt's QCollapsible), folded at first."""
    from superqt import QCollapsible

    box = QCollapsible(title, expandedIcon="▼", collapsedIcon="▶")
    box.setDuration(0)
    box.layout().setContentsMargins(0, 0, 0, 0)  # its fields line up with the dialog's others
    box.content().layout().setContentsMargins(0, 0, 0, 0)
    box.addWidget(body)
    box.collapse(animate=False)
    return box


def _align_labels(*forms: QFormLayout) -> None:
    """One label column width for several forms, so their fields start at the same x."""
    labels = [form.itemAt(row, QFormLayout.ItemRole.LabelRole).widget() for form in forms for row in range(form.rowCount())
              if form.itemAt(row, QFormLayout.ItemRole.LabelRole) is not None]
    labels = [label for label in labels if label is not None]
    width = max((label.sizeHint().width() for label in labels), default=0)
    for label in labels:
        label.setMinimumWidth(width)


def _expand(box) -> None:
    if not box.isExpanded():
        box.expand(animate=False)
        QTimer.singleShot(0, lambda: box.window().adjustSize() if box.window() is not None else None)
