"""The window's pre-image fields follow PreimageConfig: every field is either a widget of the
Method dock or named as left alone, the widgets start at the config's defaults (no spin box
clips one), and each widget's tooltip is its field's help."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QSettings

from workbench.config import defaults, options
from workbench.config.preimage import PreimageConfig
from workbench.ui.docks.method_dock import MethodDock
from workbench.ui.session import Session


def test_method_dock_covers_every_field_at_its_default(qapp, tmp_path):
    session = Session(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")
    dock = MethodDock(session)
    try:
        names = {f.name for f in dataclasses.fields(PreimageConfig)}
        assert set(dock.fields) | set(MethodDock.NOT_EDITED) == names
        assert not set(dock.fields) & set(MethodDock.NOT_EDITED)
        want = defaults(PreimageConfig)
        read = dock.read()
        for name in dock.fields:
            if name == "channel":  # a spin box has no "none": the session keeps None until maximize
                continue
            value = read[name]
            assert (list(value) if isinstance(value, tuple) else value) == want[name], name
        helps = {f.name: meta["help"] for f, meta in options(PreimageConfig)}
        for name, widget in dock.fields.items():
            assert widget.toolTip() == helps[name]
        assert session.config == want
    finally:
        dock.deleteLater()
        session.shutdown()


def test_the_other_docks_start_at_their_configs_defaults(qapp, tmp_path):
    from workbench.config.deformation import DeformConfig
    from workbench.config.filtergan import FilterGanConfig, TraversalConfig
    from workbench.ui.docks.deformation_dock import DeformationDock
    from workbench.ui.docks.filtergan_dock import FilterGanDock

    session = Session(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")
    docks = [DeformationDock(session), FilterGanDock(session)]
    try:
        deform, fgan = docks
        assert (deform.grid.value(), deform.max_disp.value(), deform.n_images.value(), deform.seeds.value()) == \
            (DeformConfig.grid, DeformConfig.max_disp, DeformConfig.n, DeformConfig.seeds)
        train, traversal = fgan.train_view, fgan.traversal_view
        assert (train.layer_edit.text(), train.steps.value(), train.latent.value()) == \
            (FilterGanConfig.layer, FilterGanConfig.steps, FilterGanConfig.latent_dim)
        assert (traversal.sample_edit.text(), traversal.xi.value(), traversal.grid_k.value(), traversal.iters.value()) == \
            (TraversalConfig.sample, TraversalConfig.xi, TraversalConfig.grid, TraversalConfig.iters)
    finally:
        for dock in docks:
            shutdown = getattr(dock, "shutdown", None)
            if shutdown:
                shutdown()
            dock.deleteLater()
        session.shutdown()
