"""The worker a :class:`~workbench.ui.worker.JobRunner` runs a job on: superqt's GeneratorWorker.

Imported when the first job starts, not with the window: ``import superqt`` imports all its widgets.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QThreadPool
from superqt.utils import GeneratorWorker

from workbench.jobs import run_job


class JobWorker(GeneratorWorker):
    """superqt's GeneratorWorker, started on its runner's own pool, its generator driven by
    :func:`workbench.jobs.run_job` (the one driver loop; cancelling is the job's token, so
    superqt's pause/abort polling has nothing to do). ``run`` is superqt's less its warnings hook:
    superqt swaps the process-wide ``warnings.showwarning`` inside ``warnings.catch_warnings``,
    which is not thread-safe — with two slots running, one worker's exit restores the other's
    hook for good — and it lets a BaseException (KeyboardInterrupt, SystemExit, GeneratorExit)
    escape without ``errored``/``finished``, and returns a RuntimeError as a result; here every
    outcome is reported as what it is."""

    def work(self) -> Any:
        return run_job(self._gen, self.yielded.emit)

    def run(self) -> None:
        self.started.emit()
        self._running = True
        try:
            result = self.work()
        except BaseException as exc:  # a bug in a job, or a stray exit, must not take the app down
            self.errored.emit(exc)
        else:
            self.returned.emit(result)
        self._running = False
        self.finished.emit()
        self._finished.emit(self)

    def start_on(self, pool: QThreadPool) -> None:
        self._worker_set.add(self)  # superqt's registry keeps the worker alive until it has finished
        self._finished.connect(self._set_discard)
        self.setAutoDelete(False)
        pool.start(self)
