"""Layers dock: every addressable layer with kind, output shape, receptive field and stride."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QHeaderView, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from workbench.ui.docks import BaseDock

COLUMNS = ("Layer", "Kind", "Output", "RF", "Stride")
#: The widest a column opens at (px); longer names elide, with the whole text as tooltip. A
#: column sized to its contents made the table wider than the dock (torchvision's kinds and names).
MAX_WIDTHS = (190, 110, 110, 60, 60)


class LayersDock(BaseDock):
    title = "Layers"
    area = Qt.DockWidgetArea.LeftDockWidgetArea

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        body = QWidget()
        layout = QVBoxLayout(body)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search layers by name…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._on_search_changed)
        layout.addWidget(self.search)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)  # the user may widen one
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(28)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # "layer4.…relu_1" keeps both ends
        for col, tip in enumerate(("FX node name (paper alias)", "module or operation", "output shape (C, H, W) for one image",
                                   "receptive field in input pixels", "stride between samples in input pixels")):
            self.tree.headerItem().setToolTip(col, tip)
        self.tree.itemSelectionChanged.connect(self._on_selection_changed)
        layout.addWidget(self.tree, 1)
        self.setWidget(body)
        self._items: dict[str, QTreeWidgetItem] = {}
        session.model_changed.connect(self._on_model_changed)
        session.layer_changed.connect(self._on_layer_changed)

    def _on_model_changed(self, model) -> None:
        with QSignalBlocker(self.tree):
            self.tree.clear()
            self._items = {}
            for info in model.layers():
                name = f"{info.name} ({info.alias})" if info.alias and info.alias != info.name else info.name
                shape = " × ".join(str(s) for s in info.shape)
                item = QTreeWidgetItem([name, info.kind, shape, str(info.rf_size), str(info.stride)])
                item.setData(0, Qt.ItemDataRole.UserRole, info.name)
                for col in (3, 4):
                    item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                for col in (0, 1, 2):
                    item.setToolTip(col, item.text(col))
                self._items[info.name] = item
                self.tree.addTopLevelItem(item)
        for col, widest in enumerate(MAX_WIDTHS):
            self.tree.resizeColumnToContents(col)
            self.tree.setColumnWidth(col, min(widest, self.tree.columnWidth(col)))
        self._on_search_changed(self.search.text())
        self._on_layer_changed(self.session.layer)

    def _on_layer_changed(self, name: str) -> None:
        item = self._items.get(name)
        if item is None:
            return
        with QSignalBlocker(self.tree):
            self.tree.setCurrentItem(item)
            self.tree.scrollToItem(item)

    def _on_selection_changed(self) -> None:
        items = self.tree.selectedItems()
        if items:
            self.session.set_layer(items[0].data(0, Qt.ItemDataRole.UserRole))

    def _on_search_changed(self, text: str) -> None:
        text = text.strip().lower()
        for item in self._items.values():
            item.setHidden(bool(text) and text not in item.text(0).lower() and text not in item.text(1).lower())

    def select(self, name: str) -> None:
        item = self._items[name]
        self.tree.setCurrentItem(item)
