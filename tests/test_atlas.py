"""Issue 11: an atlas of a small layer through the sweep machinery writes its contact sheet and index."""

from __future__ import annotations

import json

from PIL import Image

from workbench.config.sweep import AtlasConfig
from workbench.jobs import run_job
from workbench.sweep.atlas import atlas_job


def test_atlas_writes_contact_sheet_and_index(tmp_path):
    out = tmp_path / "atlas"
    result = run_job(atlas_job(AtlasConfig(model="digits-vgg", layer="conv1", channels=(0, 1, 2, 3, 4, 5), iters=10,
                                           device="cpu", out=str(out))))
    assert result.counts["done"] == 6
    sheet = Image.open(out / "atlas.png")
    assert sheet.size[0] > 200 and sheet.size[1] > 150
    assert (out / "atlas.pdf").stat().st_size > 1000
    index = json.loads((out / "index.json").read_text())
    assert index["layer"] == "conv1" and sorted(index["channels"], key=int) == [str(k) for k in range(6)]
    for k, entry in index["channels"].items():
        assert (out / entry["cell"] / "run.json").is_file()
        assert entry["status"] == "done" and entry["activation"] > 0.0
        metrics = json.loads((out / entry["cell"] / "metrics.json").read_text())
        assert metrics["channel"] == int(k) and metrics["component"] != "channel mean"


def test_a_dead_channel_is_marked_dead_and_not_drawn(tmp_path):
    """Issue 19: a channel whose activation is 0 in every restart is 'dead' in index.json and its
    tile (the starting noise, here pure red) is not drawn on the sheet; a live one is."""
    import numpy as np

    from workbench.sweep.atlas import is_dead, write_atlas

    out = tmp_path / "atlas"
    rows = []
    for channel, activation, colour in ((0, [0.0, 0.0], (255, 0, 0)), (1, [0.0, 2.5], (0, 0, 255))):
        cell = f"c{channel}"
        (out / "cells" / cell / "images").mkdir(parents=True)
        Image.new("RGB", (16, 16), colour).save(out / "cells" / cell / "images" / "restart_1.png")
        rows.append({"cell": cell, "channel": channel, "status": "done", "activation": sum(activation) / 2,
                     "per_restart": {"activation": activation}})
    assert is_dead(rows[0]) and not is_dead(rows[1])
    write_atlas(out, AtlasConfig(model="m", layer="l", out=str(out)), rows)
    index = json.loads((out / "index.json").read_text())
    assert index["channels"]["0"]["dead"] is True and index["channels"]["1"]["dead"] is False
    sheet = np.asarray(Image.open(out / "atlas.png").convert("RGB")).astype(int)
    red = (sheet[..., 0] > 200) & (sheet[..., 1] < 60) & (sheet[..., 2] < 60)
    blue = (sheet[..., 2] > 200) & (sheet[..., 0] < 60) & (sheet[..., 1] < 60)
    assert not red.any() and blue.sum() > 100


def test_each_tile_is_labelled_with_its_quality(tmp_path):
    """Issue 19: under each tile, the maximisation's quality from its metrics (preimage/quality.py) — a class's
    probability plain, blurred and at half resolution; a hidden channel's activation and the fraction a blur and
    half resolution keep — of the restart the tile shows; nothing for a cell without them."""
    from workbench.sweep.atlas import tile_quality
    from workbench.sweep.cell import summary

    hidden = summary({"activation": [30.61, 2.0], "blur_retention": [0.904, 0.1], "half_retention": [0.938, 0.2]})
    assert tile_quality(hidden) == "act 30.6\nkept blurred 0.90 · half 0.94"
    cls = summary({"activation": [12.0], "p_target": [0.998], "p_blur": [0.91], "p_half": [0.5]})
    assert tile_quality(cls) == "p 1.00\np blurred 0.91 · half 0.50"
    assert tile_quality(summary({"activation": [3.0]})) == ""           # an older cell: no quality, no label
    assert tile_quality(summary({"activation": [3.0], "blur_retention": ["nan"]})) == ""
