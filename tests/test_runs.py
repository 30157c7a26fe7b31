"""Run folders: exclusive creation, the one finalisation path, owners and heartbeats, resume."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading

import pytest

from workbench.errors import UserError
from workbench.jobs import Cancelled, Step, run_job
from workbench.runs import Run, RunStore, check_new_folder, finalise


def _store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def test_a_folder_is_claimed_by_exactly_one_of_many_racing_creators(tmp_path):
    for attempt in range(20):
        folder = tmp_path / f"race{attempt}"
        wins, losses = [], []
        barrier = threading.Barrier(8)

        def create() -> None:
            barrier.wait()
            try:
                wins.append(_store(tmp_path).create("invert", {"who": threading.get_ident()}, folder=folder))
            except UserError as exc:
                losses.append(str(exc))

        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1 and len(losses) == 7, (wins, losses)
        assert sorted(p.name for p in folder.iterdir()) == ["run.json"]
        assert json.loads((folder / "run.json").read_text())["config"]["who"] == wins[0].info["config"]["who"]


def test_a_second_run_into_the_same_folder_is_refused_and_changes_nothing(tmp_path):
    folder = tmp_path / "out"
    first = _store(tmp_path).create("deform", {"n": 1}, folder=folder)
    before = (folder / "run.json").read_bytes()
    with pytest.raises(UserError, match="not empty"):
        _store(tmp_path).create("deform", {"n": 2}, folder=folder)
    assert (folder / "run.json").read_bytes() == before
    assert first.status == "running"


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x"), "is a file"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")), "not empty"),
])
def test_bad_out_folders_are_refused_in_one_line(tmp_path, make, message):
    folder = tmp_path / "out"
    make(folder)
    with pytest.raises(UserError, match=message):
        _store(tmp_path).create("invert", {}, folder=folder)
    with pytest.raises(UserError, match=message):
        check_new_folder(folder)


def test_a_folder_under_a_file_is_refused_and_nothing_is_made(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        _store(tmp_path).create("invert", {}, folder=tmp_path / "file.txt" / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES])
def test_an_unwritable_place_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, code):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "link", refuse)
    folder = tmp_path / "a" / "b"
    with pytest.raises(UserError) as exc:
        _store(tmp_path).create("invert", {}, folder=folder)
    assert os.strerror(code) in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "a").exists()


def test_a_full_disk_during_a_write_leaves_no_part_file(tmp_path, monkeypatch):
    run = _store(tmp_path).create("invert", {}, folder=tmp_path / "out")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(UserError, match="No space left"):
        run.write_metrics({"a": 1})
    monkeypatch.undo()
    assert sorted(p.name for p in run.path.iterdir()) == ["run.json"]


def _job(events, then=None):
    def body():
        for e in events:
            yield e
        if then is not None:
            raise then
        return "result"
    return body()


@pytest.mark.parametrize("exc, status", [
    (None, "done"),
    (Cancelled(), "cancelled"),
    (KeyboardInterrupt(), "cancelled"),   # on the main thread: Ctrl+C
    (ValueError("bad"), "failed"),
    (UserError("one line"), "failed"),
    (SystemExit(3), "failed"),
    (GeneratorExit(), "failed"),
])
def test_finalise_marks_how_the_job_ended(tmp_path, exc, status):
    run = _store(tmp_path).create("invert", {})
    stops = []
    job = finalise(run, _job([Step(1, 2)], exc), on_stop=stops.append)
    if exc is None:
        assert run_job(job) == "result"
    else:
        with pytest.raises(type(exc)):
            run_job(job)
    info = run.info
    assert info["status"] == status and info["finished"]
    assert stops == ([] if status == "done" else [status])
    if status == "failed":
        assert info["error"].startswith(("ValueError: bad", "one line", "SystemExit", "GeneratorExit"))


def test_a_job_closed_by_its_driver_is_cancelled_and_its_body_closed(tmp_path):
    run = _store(tmp_path).create("invert", {})
    closed = []

    def body():
        try:
            for i in range(100):
                yield Step(i, 100)
        finally:
            closed.append(True)

    job = finalise(run, body())
    next(job)
    next(job)
    job.close()
    assert closed == [True]
    assert run.info["status"] == "cancelled"


def test_keyboard_interrupt_raised_on_a_worker_thread_is_a_failure(tmp_path):
    run = _store(tmp_path).create("invert", {})
    caught = []

    def work():
        try:
            run_job(finalise(run, _job([], KeyboardInterrupt())))
        except KeyboardInterrupt:
            caught.append(True)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert caught and run.info["status"] == "failed"


def test_a_partial_return_is_cancelled(tmp_path):
    run = _store(tmp_path).create("deform", {})

    def body():
        yield Step(1, 2)
        run.outcome = "cancelled"
        return {"complete": False}

    assert run_job(finalise(run, body())) == {"complete": False}
    assert run.info["status"] == "cancelled"


def test_the_heartbeat_thread_beats_and_is_joined(tmp_path, monkeypatch):
    import workbench.runs as runs

    monkeypatch.setattr(runs, "HEARTBEAT_SECONDS", 0.05)
    run = _store(tmp_path).create("invert", {})
    run._update(heartbeat="2000-01-01T00:00:00")
    before = threading.active_count()
    beats = []

    def body():
        import time

        for _ in range(30):
            time.sleep(0.01)
            beats.append(threading.active_count())
            yield Step(1, 1)

    run_job(finalise(run, body()))
    assert max(beats) == before + 1           # the heartbeat ran beside the job
    assert threading.active_count() == before  # and was joined
    assert run.info["status"] == "done" and run.info["heartbeat"] > "2000-01-01T00:00:00"


def test_a_run_whose_owner_died_is_interrupted(tmp_path):
    run = _store(tmp_path).create("invert", {})
    assert run.status == "running"  # this process owns it
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    info = run.info
    info["pid"] = int(dead.stdout)
    (run.path / "run.json").write_text(json.dumps(info))
    assert run.status == "interrupted"
    info.update(host="elsewhere", heartbeat="2000-01-01T00:00:00")  # another host: the heartbeat decides
    (run.path / "run.json").write_text(json.dumps(info))
    assert run.status == "interrupted"
    info["status"] = "done"
    (run.path / "run.json").write_text(json.dumps(info))
    assert run.status == "done"


def test_scan_lists_good_runs_and_marks_damaged_ones(tmp_path):
    store = _store(tmp_path)
    good = store.create("invert", {"layer": "relu1"})
    for name, text in (("empty", ""), ("garbage", "{not json"), ("list", "[1, 2]"), ("nostatus", '{"kind": "x"}')):
        (store.root / name).mkdir()
        (store.root / name / "run.json").write_text(text)
    (store.root / "notarun").mkdir()
    rows = {r.path.name: r for r in store.scan()}
    assert set(rows) == {good.path.name, "empty", "garbage", "list", "nostatus"}
    assert rows[good.path.name].status == "running" and rows[good.path.name].config == {"layer": "relu1"}
    for name in ("empty", "garbage", "list", "nostatus"):
        assert rows[name].status == "unreadable" and rows[name].error and "\n" not in rows[name].error
    assert [r.path for r in store.list()] == [good.path]
    with pytest.raises(UserError, match="not valid JSON"):
        store.open(store.root / "garbage")


def test_reading_damaged_metrics_is_one_line(tmp_path):
    run = _store(tmp_path).create("invert", {})
    (run.path / "metrics.json").write_text("[")
    with pytest.raises(UserError, match="metrics.json is not valid JSON"):
        run.metrics()
    assert isinstance(Run(run.path).info, dict)


def test_the_default_workspace_is_never_the_current_directory(monkeypatch, tmp_path):
    from workbench.runs import WORKSPACE_ENV, default_workspace

    monkeypatch.setenv(WORKSPACE_ENV, str(tmp_path / "ws"))
    assert RunStore().root == default_workspace() == tmp_path / "ws"
    monkeypatch.delenv(WORKSPACE_ENV)
    monkeypatch.chdir(tmp_path)
    root = default_workspace()
    assert root.is_absolute() and tmp_path not in (root, *root.parents) and root.name == "runs"


def test_commands_without_out_write_a_new_folder_in_the_workspace(tmp_path, capsys):
    from workbench.cli import main

    ws = tmp_path / "ws"
    args = ["invert", "--model", "digits-vgg", "--layer", "relu1", "--sample", "digits:0", "--iters", "2",
            "--restarts", "1", "--fine-tune", "0", "--device", "cpu", "--workspace", str(ws)]
    assert main(args) == 0 and main(args) == 0
    runs = [json.loads(line)["run"] for line in capsys.readouterr().out.splitlines()]
    assert len(set(runs)) == 2 and all(os.path.dirname(r) == str(ws) for r in runs)
    assert [r.status for r in RunStore(ws).list()] == ["done", "done"]
    assert main(["runs", str(ws), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


@pytest.mark.parametrize("model, layer, trained", [("digits-vgg", "relu1", True), ("cifar-vgg-avgpool", "relu1_1", False)])
def test_run_json_says_whether_the_model_was_trained(tmp_path, capsys, model, layer, trained):
    from workbench.cli import main

    out = tmp_path / "run"
    assert main(["invert", "--model", model, "--layer", layer, "--sample", "digits:0", "--iters", "2", "--restarts",
                 "1", "--fine-tune", "0", "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    facts = json.loads((out / "run.json").read_text())["model"]
    assert facts["name"] == model and facts["trained"] is trained
    assert facts["source"].startswith("bundled") if trained else "untrained" in facts["source"]
