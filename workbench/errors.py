"""Errors a user can act on.

A :class:`UserError` carries a one-line message that says what is wrong and what to do.
The CLI prints it and exits with code 2; the GUI shows it in the log and status bar; the Python
API (:mod:`workbench.api`) raises it — this type or a subclass, never a raw KeyError, TypeError or
ValueError from inside — for a bad argument or a model it cannot compute with (a lazy layer, a
module on ``meta``, NaN weights), before any run folder exists.
Anything else escaping a job is a bug and is reported as such.
"""


class UserError(Exception):
    """Bad input from the user: a wrong name, a corrupt file, an option out of range."""

    exit_code = 2

    def __str__(self) -> str:  # always one line
        return " ".join(str(self.args[0]).split()) if self.args else self.__class__.__name__


class NonFiniteEnergy(UserError):
    """The optimisation diverged (NaN or inf energy)."""


class NeedsArchitecture(UserError):
    """A model file holds only weights (or a graph that cannot be listed): it loads only into a
    known architecture (``--arch NAME``; the window asks which)."""


def one_line(exc: BaseException) -> str:
    """One line naming an exception: ``KeyError: 'x'``, ``SystemExit: 3``, ``KeyboardInterrupt``."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
