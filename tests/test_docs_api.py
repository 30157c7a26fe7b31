"""docs/api.md's example runs as written (in a temporary workspace)."""

from __future__ import annotations

import re
from pathlib import Path


def test_the_api_example_runs(tmp_path, monkeypatch, capsys):
    text = (Path(__file__).parents[1] / "docs" / "api.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path))
    exec(compile(code, "docs/api.md", "exec"), {})
    out = capsys.readouterr().out
    assert "(2, 32, 32, 1)" in out and str(tmp_path) in out
    assert sum(1 for _ in tmp_path.iterdir()) == 4  # invert, maximize, caricature, deform
