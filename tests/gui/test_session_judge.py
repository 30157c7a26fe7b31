"""The window opens a run's ``--judge`` model on the job's worker thread, never on the GUI thread
(issue 21: the job receives it opened; the GUI thread never computes or reads files)."""

from __future__ import annotations

import threading

from PySide6.QtCore import QSettings

from tests.gui.conftest import wait_until


def test_the_judge_is_opened_on_the_worker_and_scores_the_run(qapp, tmp_path, monkeypatch):
    import workbench.models.sources as sources
    from workbench.models import load_model
    from workbench.ui.session import Session

    opened = []
    real = sources.open_model

    def recording(spec, **kwargs):
        opened.append((spec, threading.current_thread() is threading.main_thread()))
        return real(spec, **kwargs)

    session = Session(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                      workspace=tmp_path / "runs")
    try:
        session.model = load_model("digits-vgg")
        session.model.layers()
        session.config.update(model="digits-vgg", layer="fc")
        session.update_config(method="maximize", channel=3, judge="digits-lenet5", iters=2, restarts=1,
                              fine_tune_iters=0, frame_every=0, device="cpu")
        monkeypatch.setattr(sources, "open_model", recording)
        failed = []
        session.job_failed.connect(failed.append)
        assert session.start_job()
        assert opened == []   # start_job only hands the worker a factory
        wait_until(qapp, lambda: not session.busy, 120)
        assert failed == []
        assert opened == [("digits-lenet5", False)]   # once, off the GUI thread
        assert len(session.last_result.metrics["p_judge"]) == 1
    finally:
        assert session.shutdown()
