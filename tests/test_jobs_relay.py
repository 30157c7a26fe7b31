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
