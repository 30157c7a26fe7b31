"""A received run folder cannot reach outside itself, and a folder a live process owns is
read-only to every other command.

Each probe builds a hostile copy of a real run folder — a symbolic link to the user's own folder
(a thesis, a secret), a FIFO, a live owner, a second claimant — and runs the command a user would:
it must end with exit code 2 and one line, and leave the user's folder and the run folder exactly
as they were (and make no --out folder)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.errors import UserError
from workbench.runs import RunBackup, _process_start, check_contained, claim_run, remove_tree, safe_child

from .hostile import copy_of, snapshot, victim

ATLAS = ["--layer", "relu1", "--channels", "0-0", "--iters", "2", "--device", "cpu", "--quiet"]
TRAIN = ["--model", "digits-vgg", "--layer", "conv1", "--steps", "4", "--train-images", "64", "--batch-size", "8",
         "--device", "cpu", "--quiet"]


def _commands(run: Path, out: Path) -> dict[str, list[str]]:
    return {
        "sweep --resume": ["sweep", "--model", "digits-vgg", "--method", "maximize", "--layers", "relu1", "--channels",
                           "0-0", "--iters", "2", "--device", "cpu", "--resume", "--out", str(run), "--quiet"],
        "atlas --resume": ["atlas", *ATLAS, "--resume", "--out", str(run)],
        "filtergan eval": ["filtergan", "eval", str(run), "--device", "cpu"],
        "filtergan eval --out": ["filtergan", "eval", str(run), "--device", "cpu", "--out", str(out)],
        "filtergan train --resume": ["filtergan", "train", *TRAIN, "--resume", "--out", str(run)],
    }


def _cell(run: Path) -> Path:
    (cell,) = (run / "cells").iterdir()
    return cell


def _link_cells(run, user):
    """`cells` → the user's folder, holding a folder named like the cell (what rmtree would delete)."""
    name = _cell(run).name
    (user / name).mkdir()
    (user / name / "notes.txt").write_text("keep me\n")
    import shutil

    shutil.rmtree(run / "cells")
    (run / "cells").symlink_to(user, target_is_directory=True)


def _link_cell(run, user):
    cell = _cell(run)
    import shutil

    shutil.rmtree(cell)
    cell.symlink_to(user, target_is_directory=True)


def _link_tile(run, user):
    tile = _cell(run) / "images" / "restart_1.png"
    tile.unlink()
    tile.symlink_to(user / "mds.png")


def _link_metrics(run, user):
    (run / "metrics.json").unlink()
    (run / "metrics.json").symlink_to(user / "secret.txt")


def _link_images(run, user):
    import shutil

    shutil.rmtree(run / "images")
    (run / "images").symlink_to(user, target_is_directory=True)


def _link_secret(run, user):
    (run / "notes.txt").symlink_to(user / "secret.txt")


def _link_tensors_folder(run, user):
    (run / "tensors" / "more").symlink_to(user, target_is_directory=True)


def _link_checkpoint_json(run, user):
    (run / "checkpoint.json").unlink()
    (run / "checkpoint.json").symlink_to(user / "thesis.tex")


def _fifo(run, user):
    os.mkfifo(run / "images" / "grid.png" if (run / "images").is_dir() else run / "fifo")


# (probe id, which run folder, how it is made hostile, the command)
SYMLINK_PROBES = [
    ("sweep-cells-link", "atlas", _link_cells, "sweep --resume"),
    ("sweep-cell-folder-link", "atlas", _link_cell, "sweep --resume"),
    ("sweep-metrics-link", "atlas", _link_metrics, "sweep --resume"),
    ("atlas-cells-link", "atlas", _link_cells, "atlas --resume"),
    ("atlas-cell-folder-link", "atlas", _link_cell, "atlas --resume"),
    ("atlas-tile-link", "atlas", _link_tile, "atlas --resume"),
    ("eval-images-link", "filtergan", _link_images, "filtergan eval"),
    ("eval-out-copies-secret-link", "filtergan", _link_secret, "filtergan eval --out"),
    ("eval-out-copies-folder-link", "filtergan", _link_tensors_folder, "filtergan eval --out"),
    ("eval-out-images-link", "filtergan", _link_images, "filtergan eval --out"),
    ("train-resume-images-link", "filtergan", _link_images, "filtergan train --resume"),
    ("train-resume-checkpoint-json-link", "filtergan", _link_checkpoint_json, "filtergan train --resume"),
    ("train-resume-metrics-link", "filtergan", _link_metrics, "filtergan train --resume"),
]
FIFO_PROBES = [
    ("sweep-fifo", "atlas", _fifo, "sweep --resume"),
    ("eval-fifo", "filtergan", _fifo, "filtergan eval"),
    ("train-resume-fifo", "filtergan", _fifo, "filtergan train --resume"),
]


@pytest.fixture
def folders(request, tmp_path, capsys):
    def make(kind: str) -> Path:
        made = request.getfixturevalue("tiny_atlas" if kind == "atlas" else "tiny_filtergan")
        capsys.readouterr()  # what making the session's folder printed
        return copy_of(made, tmp_path)
    return make


def _refused(capsys, code: int, *words: str) -> str:
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and all(w in err[0] for w in words), err[0]
    return err[0]


@pytest.mark.parametrize("probe,kind,make_hostile,command", SYMLINK_PROBES, ids=[p[0] for p in SYMLINK_PROBES])
def test_no_command_follows_a_link_out_of_a_run_folder(tmp_path, folders, capsys, probe, kind, make_hostile, command):
    run, user = folders(kind), victim(tmp_path)
    make_hostile(run, user)
    user_before, run_before = snapshot(user), snapshot(run)
    out = tmp_path / "copy"
    _refused(capsys, main(_commands(run, out)[command]), "symbolic link")
    assert snapshot(user) == user_before, "the user's folder was changed through the link"
    assert snapshot(run) == run_before
    assert not out.exists()
    assert not list(tmp_path.glob(".*resume*")), "a backup was left behind"


@pytest.mark.parametrize("probe,kind,make_hostile,command", FIFO_PROBES, ids=[p[0] for p in FIFO_PROBES])
def test_a_fifo_in_a_run_folder_is_refused_not_read(tmp_path, folders, capsys, probe, kind, make_hostile, command):
    run = folders(kind)
    make_hostile(run, None)
    before = snapshot(run)
    _refused(capsys, main(_commands(run, tmp_path / "copy")[command]), "not a regular file")
    assert snapshot(run) == before


def test_runs_reopen_refuses_a_link(tmp_path, tiny_atlas):
    pytest.importorskip("PySide6")
    from workbench.preview.reopen import read_run

    cell, user = copy_of(_cell(tiny_atlas), tmp_path), victim(tmp_path)
    _link_images(cell, user)
    with pytest.raises(UserError, match="symbolic link"):
        read_run(cell)


def test_runs_dock_details_show_nothing_through_a_link(tmp_path, tiny_atlas):
    from workbench.preview.compute import run_details

    cell, user = copy_of(_cell(tiny_atlas), tmp_path), victim(tmp_path)
    _link_images(cell, user)
    details = run_details(cell)
    assert details["grid"] is None and any("symbolic link" in line for line in details["lines"])


def test_run_backup_refuses_a_folder_with_a_link_and_copies_nothing(tmp_path, tiny_filtergan):
    run, user = copy_of(tiny_filtergan, tmp_path), victim(tmp_path)
    _link_tensors_folder(run, user)
    with pytest.raises(UserError, match="symbolic link"):
        RunBackup(run)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_run_backup_restore_replaces_a_link_and_never_writes_through_it(tmp_path, tiny_filtergan):
    """A link that appears in a folder being resumed (none should) is removed by a failed resume's restore."""
    run, user = copy_of(tiny_filtergan, tmp_path), victim(tmp_path)
    backup = RunBackup(run)
    before = snapshot(user)
    (run / "metrics.json").unlink()
    (run / "metrics.json").symlink_to(user / "secret.txt")
    (run / "extra").symlink_to(user, target_is_directory=True)
    backup.restore()
    backup.drop()
    assert snapshot(user) == before
    assert not (run / "metrics.json").is_symlink() and not (run / "extra").exists()
    assert json.loads((run / "metrics.json").read_text())["steps"] == 2
    assert not backup.copy.exists()


@pytest.mark.parametrize("relative", ["cells", "cells/x", "../outside", "/etc", "a/../../b"])
def test_the_helpers_refuse_links_and_escapes(tmp_path, relative):
    root = tmp_path / "run"
    root.mkdir()
    user = victim(tmp_path)
    (root / "cells").symlink_to(user, target_is_directory=True)
    with pytest.raises(UserError):
        safe_child(root, relative)
    with pytest.raises(UserError):
        remove_tree(root, relative)
    with pytest.raises(UserError, match="symbolic link"):
        check_contained(root)
    assert (user / "thesis.tex").is_file() and (user / "chapters" / "one.tex").is_file()


# --- a folder owned by a live process is read-only to every other command ----------------------

LIVE_PROBES = [("sweep --resume", "atlas"), ("atlas --resume", "atlas"), ("filtergan eval", "filtergan"),
               ("filtergan eval --out", "filtergan"), ("filtergan train --resume", "filtergan")]


@pytest.fixture
def live_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("command,kind", LIVE_PROBES, ids=[c for c, _ in LIVE_PROBES])
def test_a_run_a_live_process_writes_is_left_alone(tmp_path, folders, capsys, live_process, command, kind):
    run = folders(kind)
    info = json.loads((run / "run.json").read_text())
    info.update(status="running", finished=None, pid=live_process, pid_start=_process_start(live_process),
                host=socket.gethostname())
    (run / "run.json").write_text(json.dumps(info))
    before = snapshot(run)
    out = tmp_path / "copy"
    _refused(capsys, main(_commands(run, out)[command]), "still being written by process", str(live_process))
    assert snapshot(run) == before and not out.exists()


@pytest.mark.parametrize("command,kind", LIVE_PROBES, ids=[c for c, _ in LIVE_PROBES])
def test_a_run_another_command_holds_is_left_alone(tmp_path, folders, capsys, command, kind):
    """Two --resume of one run, an evaluation during a resume: the second claimant is refused."""
    run = folders(kind)
    before = snapshot(run)
    out = tmp_path / "copy"
    with claim_run(run, "resume"):
        _refused(capsys, main(_commands(run, out)[command]), "another workbench command is using it")
    assert snapshot(run) == before and not out.exists()


def test_readers_share_a_run_and_a_killed_claimant_leaves_no_claim(tmp_path, tiny_atlas, capsys):
    """Another process resuming the atlas holds it; once that process is killed, the resume goes ahead."""
    run = copy_of(tiny_atlas, tmp_path)
    with claim_run(run, "copy", write=False), claim_run(run, "copy", write=False):
        pass  # two readers at once
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from workbench.runs import claim_run
        claim = claim_run({str(run)!r}, "resume")
        print("held", flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        _refused(capsys, main(["atlas", *ATLAS, "--resume", "--out", str(run)]), "another workbench command")
    finally:
        holder.kill()
        holder.wait()
    assert main(["atlas", *ATLAS, "--resume", "--out", str(run)]) == 0
    assert json.loads((run / "run.json").read_text())["status"] == "done"


@pytest.mark.parametrize("make_hostile", [_link_cells, _link_cell, _link_tile], ids=["cells", "cell", "tile"])
def test_the_atlas_dock_reads_no_tile_through_a_link(tmp_path, tiny_atlas, make_hostile):
    """The window's Atlas dock reads an atlas folder's tiles through sweep.atlas._tile."""
    from workbench.sweep.atlas import _tile

    run, user = copy_of(tiny_atlas, tmp_path), victim(tmp_path)
    name = _cell(run).name
    tile = (run / "cells" / name / "images" / "restart_1.png").read_bytes()
    make_hostile(run, user)
    if make_hostile is _link_cells:  # the user's folder holds what a tile would be
        (user / name / "images").mkdir()
        (user / name / "images" / "restart_1.png").write_bytes(tile)
    with pytest.raises(UserError, match="symbolic link"):
        _tile(run / "cells" / name)
