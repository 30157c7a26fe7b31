"""jobs.relay: a job run inside another (a study's inversions, the demo's runs) relays its events
through one loop, returns its result, and is closed when the outer job is."""

from workbench.jobs import Log, Step, relay, run_job


def _inner(closed: list):
    try:
        yield Step(1, 2, {"loss": 4.0})
        yield Log("chatter")
        yield Step(2, 2, {"loss": 1.0})
        return "result"
    finally:
        closed.append(True)


def _outer(inner):
    def translate(event):
        return Step(10 + event.iteration, 12, event.values, stage="inner") if isinstance(event, Step) else None

    value = yield from relay(inner, translate)
    yield Log(f"inner gave {value}")
    return value.upper()


def test_events_are_translated_or_dropped_and_the_result_returned():
    events, closed = [], []
    assert run_job(_outer(_inner(closed)), events.append) == "RESULT"
    assert [(e.iteration, e.total, e.stage) for e in events if isinstance(e, Step)] == [(11, 12, "inner"), (12, 12, "inner")]
    assert [e.message for e in events if isinstance(e, Log)] == ["inner gave result"]   # "chatter" dropped
    assert closed == [True]


def test_closing_the_outer_job_closes_the_inner_one():
    closed = []
    inner = _inner(closed)  # held here, so only relay's close (not the garbage collector) can close it
    outer = _outer(inner)
    assert next(outer).iteration == 11
    assert closed == []
    outer.close()
    assert closed == [True]


def test_run_job_closes_the_job_when_the_receiver_raises():
    closed = []

    def refuse(event):
        raise ValueError("no")

    try:
        run_job(_inner(closed), refuse)
    except ValueError as exc:
        assert str(exc) == "no"
    else:
        raise AssertionError("the receiver's error was swallowed")
    assert closed == [True]


def test_on_close_runs_only_when_the_driver_closes_the_outer_job():
    closes, closed = [], []
    outer = relay(_inner(closed), on_close=lambda: closes.append(closed[:]))
    assert next(outer).iteration == 1  # no translate: every event goes on as it is
    outer.close()
    assert closes == [[]] and closed == [True]  # on_close ran before the inner job was closed

    def failing():
        yield Step(1, 1)
        raise GeneratorExit  # raised by the job itself, not its driver

    closes.clear()
    with_error = relay(failing(), on_close=lambda: closes.append(True))
    next(with_error)
    try:
        next(with_error)
    except GeneratorExit:
        pass
    assert closes == []
