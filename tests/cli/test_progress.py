"""The CLI's progress (cli.common.drive): a rich bar on a terminal, a plain line per 10 % when piped
(what logs and tests/cli/test_signals.py read), nothing with --quiet; logs verbatim either way."""

import io

from workbench.cli.common import ProgressBar, drive
from workbench.jobs import Artifact, Log, Step


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _job():
    yield Artifact("run", "/somewhere/run")
    for i in range(1, 21):
        yield Step(i, 20, {"loss": 1.0 / i})
        if i == 10:
            yield Log("half [bold]way[/bold]", "warning")
    return "result"


def test_piped_progress_is_a_line_per_ten_percent(monkeypatch, capsys):
    assert drive(_job(), "invert relu3") == "result"
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "run folder: /somewhere/run"
    progress = [line for line in err if line.startswith("invert relu3: ")]
    assert progress[0] == "invert relu3: 1/20 (5%) loss=1"
    assert progress[-1] == "invert relu3: 20/20 (100%) loss=0.05"
    assert len(progress) == 11                       # the first step, then one per 10 %
    assert "warning: half [bold]way[/bold]" in err   # markup is text, not styling


def test_quiet_prints_nothing(capsys):
    assert drive(_job(), "invert relu3", quiet=True) == "result"
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_a_bar_redrawn_in_place_and_logs_above_it():
    screen = _Terminal()
    bar = ProgressBar("deform", stream=screen)
    bar.update(0, 4)
    bar.print("a log line [red]x[/red]")
    for i in range(1, 5):
        bar.update(i, 4, "ncd=0.1")
    bar.close()
    text = screen.getvalue()
    assert "a log line [red]x[/red]" in text
    assert "4/4" in text and "ncd=0.1" in text and "\r" in text   # redrawn in place
    assert "deform: " not in text                                  # not the piped format
