"""CellModels (issue 21): the sweep's open models belong to an object, each opened once while it is
among the last few used; a copy sent to a worker arrives empty."""

from __future__ import annotations

import pickle

from workbench.sweep import cell


def _counting(monkeypatch) -> list[str]:
    opened: list[str] = []

    def fake_open(spec, device="cpu", *, trust=False, imports=False):
        opened.append(spec)
        return object()

    monkeypatch.setattr(cell, "open_model", fake_open)
    return opened


def test_each_model_is_opened_once_while_it_is_among_the_last_used(monkeypatch):
    opened = _counting(monkeypatch)
    models = cell.CellModels(size=2)
    a = models.open("a")
    assert models.open("a") is a and opened == ["a"]
    models.open("b")
    models.open("a")        # a is now the latest used: c drops b, not a
    models.open("c")
    assert len(models) == 2 and opened == ["a", "b", "c"]
    assert models.open("a") is a and opened == ["a", "b", "c"]
    models.open("b")        # b was dropped: opened again
    assert opened == ["a", "b", "c", "b"] and len(models) == 2


def test_consent_and_device_key_the_model(monkeypatch):
    opened = _counting(monkeypatch)
    models = cell.CellModels()
    models.open("a")
    models.open("a", trust=True)
    models.open("a", imports=True)
    assert len(opened) == 3


def test_a_copy_sent_to_a_worker_arrives_empty_with_its_bound(monkeypatch):
    _counting(monkeypatch)
    models = cell.CellModels(size=3)
    models.open("a")
    copy = pickle.loads(pickle.dumps(models))
    assert len(copy) == 0 and copy.size == 3
