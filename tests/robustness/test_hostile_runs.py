"""Issue 17: sizes are checked before work, and a hostile file is one line (or one unreadable row),
never a traceback — in ranges, JSON reads, listings, resumes and a disk that fills mid-sweep.

Every hostile file is built here. The CLI runs in-process (``run_cli``): exit code 2, exactly one
``workbench: error:`` line, the limit named in it, no warning, and no folder left behind.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import pytest

from workbench import limits
from workbench.cli import main
from workbench.errors import UserError
from workbench.runs import RunStore, clean_text, read_json, status_of, summarise

from .test_bad_inputs import assert_refused, run_cli

SWEEP = ["sweep", "--model", "digits-vgg", "--layers", "relu1", "--iters", "1", "--restarts", "1", "--fine-tune", "0",
         "--device", "cpu", "--quiet"]
ATLAS = ["atlas", "--model", "digits-vgg", "--layer", "relu1", "--iters", "1", "--device", "cpu", "--quiet"]

RANGES = {
    "atlas-channels-1e12": ([*ATLAS, "--channels", "0-999999999999"], "1,000,000,000,000 numbers"),
    "sweep-channels-1e12": ([*SWEEP, "--method", "maximize", "--channels", "0-999999999999"], "the limit is 100,000"),
    "seeds-2^32": ([*SWEEP, "--seeds", "0-4294967295"], "4,294,967,296 numbers"),
    "seeds-2e6": ([*SWEEP, "--seeds", "0-2000000"], "the limit is 100,000"),
    "seeds-many-parts": ([*SWEEP, "--seeds", "0-60000,0-60000"], "the limit is 100,000"),
    "seeds-40-digits": ([*SWEEP, "--seeds", "1" * 40], "far too large"),
    "seeds-backwards": ([*SWEEP, "--seeds", "9-2"], "ends before it starts"),
    "digits-1e10": ([*SWEEP, "--images", "digits:0-9999999999"], "10,000,000,000 numbers"),
    "grid-product": ([*SWEEP, "--seeds", "0-99999", "--images", "digits:0-99"], "the limit is 1,000,000"),
}


@pytest.mark.parametrize("name", list(RANGES))
def test_a_range_is_counted_before_it_is_expanded(name, tmp_path, capsys):
    argv, needle = RANGES[name]
    out = tmp_path / "out"
    t0 = time.monotonic()
    rc, err, shown = run_cli([*argv, "--out", str(out)], capsys)
    seconds = time.monotonic() - t0
    assert_refused(rc, err, shown)
    assert needle in err, err
    assert not out.exists()
    assert seconds < 30, seconds  # no range was expanded (it took 77 s and 2.1 GB before)


# --- JSON reads ---------------------------------------------------------------------------------

def test_a_sparse_2gib_json_is_refused_by_its_size_without_reading_it(tmp_path):
    big = tmp_path / "run.json"
    with open(big, "wb") as f:
        f.truncate(2**31)
    with pytest.raises(UserError, match=r"holds 2\.0 GiB, over the limit of 128 MiB"):
        read_json(big)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_a_json_read_refuses_what_is_not_a_regular_file(kind, tmp_path):
    path = {"fifo": tmp_path / "fifo.json", "dev-zero": Path("/dev/zero"), "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    if not path.exists():
        pytest.skip(f"{path} does not exist on this system")
    with pytest.raises(UserError, match="is not a regular file"):
        read_json(path)  # returns at once: a FIFO with no writer would block a plain open


@pytest.mark.parametrize("text", ["1" * 5000, '{"a": ' + "[" * 100000 + "]" * 100000 + "}", "\udcff", '"\\ud800"x'])
def test_hostile_json_text_is_one_line(text, tmp_path):
    path = tmp_path / "m.json"
    path.write_text(text, errors="surrogateescape")
    with pytest.raises(UserError, match="is not valid JSON"):
        read_json(path)


# --- listings -----------------------------------------------------------------------------------

HOST = socket.gethostname()
BASE = {"kind": "invert", "config": {}, "status": "running", "started": "2026-01-01T00:00:00", "finished": None,
        "host": HOST}
HOSTILE_RUNS = {
    "pid-2^70": ({"pid": 2**70}, "interrupted"),
    "pid-0": ({"pid": 0}, "interrupted"),
    "pid--1": ({"pid": -1}, "interrupted"),
    "pid-true": ({"pid": True}, "interrupted"),
    "pid-string": ({"pid": "1"}, "interrupted"),
    "aware-beat-other-host": ({"host": "elsewhere", "heartbeat": "2020-01-01T00:00:00+00:00"}, "interrupted"),
    "naive-beat-other-host": ({"host": "elsewhere", "heartbeat": "2020-01-01T00:00:00"}, "interrupted"),
    "future-beat-other-host": ({"host": "elsewhere", "heartbeat": "2999-01-01T00:00:00"}, "interrupted"),
    "huge-beat": ({"host": "elsewhere", "heartbeat": "9" * 10000}, "interrupted"),
    "status-escape": ({"status": "\x1b[31mdone"}, "unreadable"),
    "status-number": ({"status": 3}, "unreadable"),
    "run-json-list": ([1, 2], "unreadable"),
}


def _workspace(root: Path) -> Path:
    for name, (fields, _) in HOSTILE_RUNS.items():
        (root / name).mkdir(parents=True)
        info = {**BASE, **fields} if isinstance(fields, dict) else fields
        (root / name / "run.json").write_text(json.dumps(info))
    (root / "good").mkdir()
    (root / "good" / "run.json").write_text(json.dumps({**BASE, "status": "done"}))
    (root / "escapes").mkdir()
    (root / "escapes" / "run.json").write_text(json.dumps(
        {**BASE, "status": "failed", "kind": "\x1b]0;owned\x07\x1b[31minvert\nforged line",
         "error": "\x1b[2J\x1b[Hcleared\r\nsecond line\x9b31m", "started": "\x1b[5m2026"}))
    (root / "sparse").mkdir()
    with open(root / "sparse" / "run.json", "wb") as f:
        f.truncate(2**31)
    return root


def test_one_hostile_run_folder_never_hides_the_others(tmp_path, capsys):
    root = _workspace(tmp_path / "ws")
    assert main(["runs", str(root), "--json"]) == 0
    rows = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert rows["good"]["status"] == "done"
    for name, (_, status) in HOSTILE_RUNS.items():
        assert rows[name]["status"] == status, (name, rows[name])
    assert rows["sparse"]["status"] == "unreadable" and "over the limit" in rows["sparse"]["error"]


def test_runs_prints_no_control_character_from_a_file(tmp_path, capsys):
    root = _workspace(tmp_path / "ws")
    assert main(["runs", str(root)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == len(HOSTILE_RUNS) + 3  # one line per folder: no newline from a file got through
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in out.replace("\n", "")), repr(out)
    row = next(line for line in lines if line.startswith("escapes"))
    assert "invert forged line" in row and "cleared second line" in row and "owned" not in row


def test_clean_text_removes_escapes_and_keeps_words():
    assert clean_text("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x1b[1;31mred\x1b[0m\nnext\u202e") == "link red next"
    assert clean_text("x" * 500, 10) == "x" * 9 + "…"


@pytest.mark.parametrize("info", [{"status": "running", "pid": 2**70, "host": HOST}, {"status": None}, [],
                                  {"status": "running", "heartbeat": "2026-01-01T00:00:00+05:00"}])
def test_status_of_never_raises_anything_but_a_user_error(info):
    try:
        assert status_of(info) == "interrupted"
    except UserError:
        pass


# --- resumes --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "s"
    assert main([*SWEEP, "--seeds", "0-2", "--out", str(out)]) == 0
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


CELL_METRICS = {
    "strings": {"reconstruction_error_mean": "low", "activation": ["a", "b"], "iterations_used": "ten", "C": "x"},
    "400-digit-ints": {"reconstruction_error_mean": 10**400, "activation": [10**400], "iterations_used": 10**400},
    "nan-and-lists": {"reconstruction_error_mean": float("nan"), "reconstruction_error": [[1], {"a": 1}]},
    "not-an-object": [1, 2, 3],
}


@pytest.mark.parametrize("case", [*CELL_METRICS, "cell-pid-2^70", "cell-status-garbage"])
def test_sweep_resume_over_hostile_cells_never_tracebacks(case, finished_sweep, tmp_path, capsys):
    out = _copy(finished_sweep, tmp_path / "s")
    cells = sorted((out / "cells").iterdir())
    if case in CELL_METRICS:
        text = json.dumps(CELL_METRICS[case]).replace("NaN", "NaN")
        (cells[0] / "metrics.json").write_text(text)
    else:
        info = json.loads((cells[0] / "run.json").read_text())
        info.update({"status": "running", "pid": 2**70, "host": HOST} if case == "cell-pid-2^70"
                    else {"status": "\x1b[31mwhatever"})
        (cells[0] / "run.json").write_text(json.dumps(info))
    rc = main([*SWEEP, "--seeds", "0-2", "--resume", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Traceback" not in captured.err
    summary = json.loads(captured.out)
    assert summary["cells"] == 3 and summary["done"] == 3, summary
    assert json.loads((out / "run.json").read_text())["status"] == "done"


def test_sweep_resume_over_a_run_json_with_a_huge_pid_is_one_line_or_runs(finished_sweep, tmp_path, capsys):
    out = _copy(finished_sweep, tmp_path / "s")
    info = json.loads((out / "run.json").read_text())
    info.update(status="running", pid=2**70, host=HOST)
    (out / "run.json").write_text(json.dumps(info))
    rc = main([*SWEEP, "--seeds", "0-2", "--resume", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err, err  # the owner is gone: the sweep is continued


# --- a disk that fills during a sweep -------------------------------------------------------------

def test_a_disk_that_fills_mid_sweep_leaves_run_json_failed(tmp_path, monkeypatch, capsys):
    """After the sweep's folder is claimed no new file can be made in it (ENOSPC from mkstemp), as on
    a full disk; run.json is rewritten in place (no new block needed) and says failed, not running."""
    out = tmp_path / "s"
    real = tempfile.mkstemp

    def full(*args, dir=None, **kwargs):
        if dir is not None and str(out) in str(dir) and (out / "run.json").exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", full)
    rc, err, shown = run_cli([*SWEEP, "--seeds", "0-1", "--out", str(out)], capsys)
    monkeypatch.undo()
    assert_refused(rc, err, shown)
    assert "No space left on device" in err, err
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and "No space left" in info["error"], info
    assert summarise(out).status == "failed"
    assert RunStore(tmp_path).scan()[0].status == "failed"
    assert not [p for p in out.rglob("*.part*")]


def test_limits_name_the_file_size():
    assert limits.size(2**31) == "2.0 GiB" and limits.size(16 * 2**20) == "16 MiB"
