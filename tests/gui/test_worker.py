"""The job worker with small fake jobs: throttled events, copies, cancel, errors, soak."""

from __future__ import annotations

import time

import numpy as np
import pytest

from workbench.errors import UserError
from workbench.jobs import Log, Step
from tests.gui.conftest import python_threads, running_job_threads
from workbench.ui.worker import JobRunner, LatestJobSlot


def counting_job(n, state, delay=0.0, images=True):
    """A fake iterative job: n Steps with a (2, 4, 4, 1) snapshot, cancellable between iterations."""

    def factory(cancel):
        state["iterations"] = 0
        state["after_cancel"] = 0
        yield Log("starting")
        buffer = np.zeros((2, 4, 4, 1), np.float32)
        for t in range(n):
            cancel.check()
            if state.get("cancel_at") is not None and t == state["cancel_at"]:
                state["token"] = cancel
                state["set_at"] = t
            state["iterations"] += 1
            if cancel.cancelled:
                state["after_cancel"] += 1
            buffer[:] = t / n
            if delay:
                time.sleep(delay)
            yield Step(t + 1, n, {"energy": float(n - t)}, images=buffer if images else None)
        return {"sum": n}

    return factory


def collect(runner):
    got = {"progress": [], "logs": [], "finished": [], "failed": [], "cancelled": 0, "stopped": 0}
    runner.progressed.connect(got["progress"].append)
    runner.logged.connect(lambda level, m: got["logs"].append((level, m)))
    runner.finished.connect(got["finished"].append)
    runner.failed.connect(got["failed"].append)
    runner.cancelled.connect(lambda: got.__setitem__("cancelled", got["cancelled"] + 1))
    runner.stopped.connect(lambda: got.__setitem__("stopped", got["stopped"] + 1))
    return got


def test_events_are_throttled_and_complete(qtbot):
    runner = JobRunner(rate=20)
    got = collect(runner)
    state = {}
    with qtbot.waitSignal(runner.stopped, timeout=20_000):
        runner.start(counting_job(400, state, delay=0.001))
    assert got["finished"] == [{"sum": 400}] and got["failed"] == [] and got["stopped"] == 1
    iterations = [i for p in got["progress"] for i, _ in p.values]
    assert iterations == list(range(1, 401))  # every Step's values arrive, batched
    assert len(got["progress"]) < 100  # ~0.5 s of work at ≤ 20 emissions per second, not 400
    last = got["progress"][-1]
    assert last.iteration == last.total == 400
    assert last.images.flags["C_CONTIGUOUS"] and last.images.dtype == np.float32
    assert np.allclose(last.images, 399 / 400)
    # each emitted snapshot is a copy: the job kept writing into its buffer afterwards
    firsts = [p.images[0, 0, 0, 0] for p in got["progress"] if p.images is not None]
    assert len(set(np.round(firsts, 6))) == len(firsts)
    assert ("info", "starting") in got["logs"]
    assert not runner.running


def test_cancel_stops_within_one_iteration(qtbot):
    runner = JobRunner()
    got = collect(runner)
    state = {}
    with qtbot.waitSignal(runner.stopped, timeout=20_000):
        runner.start(counting_job(10_000, state, delay=0.002))
        qtbot.waitUntil(lambda: state.get("iterations", 0) >= 20, timeout=10_000)
        runner.cancel()
    assert got["cancelled"] == 1 and got["finished"] == [] and got["failed"] == []
    assert state["after_cancel"] <= 1
    assert state["iterations"] < 10_000


@pytest.mark.parametrize("error, expected", [(UserError("bad layer: pick another"), "bad layer: pick another"),
                                             (RuntimeError("boom"), "RuntimeError: boom")])
def test_errors_become_messages(qtbot, error, expected):
    def factory(cancel):
        yield Step(1, 2, {"energy": 1.0})
        raise error

    runner = JobRunner()
    got = collect(runner)
    with qtbot.waitSignal(runner.stopped, timeout=10_000):
        runner.start(factory)
    assert got["failed"] == [expected] and got["finished"] == []
    if isinstance(error, RuntimeError):
        assert any(level == "debug" and "Traceback" in m for level, m in got["logs"])



def test_errored_carries_the_exception_itself(qtbot):
    """Whoever decides what to do about an error reads its type (``errored``), never its text."""
    from workbench.errors import NeedsArchitecture

    error = NeedsArchitecture("weights.safetensors holds only weights: pass --arch NAME")

    def factory(cancel):
        yield Step(1, 2, {"energy": 1.0})
        raise error

    runner = JobRunner()
    got = collect(runner)
    errors = []
    runner.errored.connect(errors.append)
    with qtbot.waitSignal(runner.stopped, timeout=10_000):
        runner.start(factory)
    assert errors == [error] and isinstance(errors[0], NeedsArchitecture)
    assert got["failed"] == [str(error)] and got["cancelled"] == 0


def test_a_plain_function_runs_as_it_is(qtbot):
    """A job that only computes is a plain function: its return value is the result, no generator needed."""
    runner = JobRunner()
    got = collect(runner)
    with qtbot.waitSignal(runner.stopped, timeout=10_000):
        runner.start(lambda cancel: {"sum": 3})
    assert got["finished"] == [{"sum": 3}] and got["progress"] == [] and got["failed"] == []

def test_shutdown_joins_the_thread(qtbot):
    runner = JobRunner()
    state = {}
    runner.start(counting_job(1_000_000, state, delay=0.001))
    qtbot.waitUntil(lambda: state.get("iterations", 0) > 3, timeout=10_000)
    assert runner.shutdown(10_000)
    assert not runner.running and runner.threads() == [] and running_job_threads() == []
    assert runner.start(counting_job(1, {})) is False  # a shut-down slot starts nothing


def test_soak_50_start_cancel_cycles(qtbot):
    runner = JobRunner()
    got = collect(runner)
    before = python_threads()
    for _ in range(50):
        state = {}
        with qtbot.waitSignal(runner.stopped, timeout=10_000):
            runner.start(counting_job(1_000_000, state, delay=0.0005))
            runner.cancel()
    assert got["stopped"] == 50
    assert got["cancelled"] + len(got["finished"]) == 50 and got["failed"] == []
    assert runner.threads() == [] and python_threads() <= before


def test_latest_slot_reports_only_the_latest_request(qtbot):
    slot = LatestJobSlot()
    results = []
    slot.finished.connect(results.append)

    def job(value, delay):
        def factory(cancel):
            for _ in range(int(delay / 0.005)):
                cancel.check()
                time.sleep(0.005)
            return value
            yield

        return factory

    slot.request(job("first", 1.0))
    slot.request(job("second", 0.2))
    slot.request(job("third", 0.0))
    qtbot.waitUntil(lambda: results == ["third"] and not slot.runner.running, timeout=10_000)
    assert slot.shutdown()


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3), GeneratorExit(), MemoryError(), ValueError("v")])
@pytest.mark.parametrize("where", ["factory", "before the first event", "after a step"])
def test_anything_a_job_raises_fails_it_and_the_slot_runs_the_next(qtbot, error, where):
    def factory(cancel):
        if where == "factory":
            raise error

        def job():
            if where == "after a step":
                yield Step(1, 2, {"energy": 1.0})
            raise error
            yield

        return job()

    runner = JobRunner()
    got = collect(runner)
    with qtbot.waitSignal(runner.stopped, timeout=10_000):
        assert runner.start(factory)
    name = type(error).__name__
    assert got["failed"] == [name if not str(error) else f"{name}: {error}"] and got["cancelled"] == 0
    assert any(level == "debug" and f"{name}" in m and "Traceback" in m for level, m in got["logs"])
    assert not runner.running
    with qtbot.waitSignal(runner.stopped, timeout=10_000):
        runner.start(counting_job(3, {}))
    assert got["finished"] == [{"sum": 3}] and got["stopped"] == 2


def test_a_debounced_slot_starts_only_the_request_the_pointer_rests_on(qtbot):
    slot = LatestJobSlot(debounce_ms=50)
    started, results = [], []
    slot.runner.started.connect(lambda: started.append(1))
    slot.finished.connect(results.append)

    def job(value):
        def factory(cancel):
            return value
            yield

        return factory

    for value in range(20):  # faster than the debounce interval
        slot.request(job(value))
    assert slot.busy and not slot.runner.running
    qtbot.waitUntil(lambda: results == [19] and not slot.busy, timeout=10_000)
    assert started == [1]
    assert slot.shutdown()
