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
