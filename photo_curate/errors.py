"""Errors that end a command with a one-line message instead of a traceback."""

import signal


class UserError(Exception):
    """A mistake in what the user asked for (bad path, bad config value): exit code 2."""

    exit_code = 2


class ValidationFailed(Exception):
    """The run finished but a great-expectations check failed: exit code 1, nothing destructive."""

    exit_code = 1


class Stopped(Exception):
    """An action stopped part-way for a reason outside our control (a full disk): exit code 3,
    one line saying what to do; the journal says exactly what was done."""

    exit_code = 3


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM: the command stops, exit code 130.

    A KeyboardInterrupt, so every `except Exception` lets it through and Prefect records the
    flow run as crashed by an interrupt."""

    exit_code = 130

    def __init__(self, signum: int = signal.SIGINT, where: str | None = None):
        super().__init__(signum, where)
        self.signum = signum
        self.where = where

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        what = "Ctrl-C" if self.signum == signal.SIGINT else self.signal_name
        return f"interrupted ({what})" + (f" {self.where}" if self.where else "")
