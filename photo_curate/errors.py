"""Errors that end a command with a one-line message instead of a traceback."""


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
