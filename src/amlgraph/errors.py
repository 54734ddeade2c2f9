"""One error hierarchy. Every message says what was expected, what was found, where, and what to do."""
from __future__ import annotations


class AmlGraphError(Exception):
    """Base of every error amlgraph raises on purpose.

    The CLI prints ``str(exc)`` on one line and exits with ``exit_code``; no traceback.
    ``resumable``: the run failed part-way and a rerun resumes from its finished checkpoints
    (the CLI then prints the command that resumes it); false when the same command would fail
    the same way before doing any work (bad input, a bad parameter, a locked directory).
    """

    exit_code = 1
    resumable = False


class InputError(AmlGraphError):
    """Bad user input: a file, a row, a column, a value. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 column: str | None = None, value: str | None = None, hint: str | None = None):
        self.path, self.line, self.column, self.value, self.hint = path, line, column, value, hint
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        text = where + message
        if column is not None:
            text += f" (column {column!r}"
            if value is not None:
                text += f", value {_short(value)!r}"
            text += ")"
        elif value is not None:
            text += f" (value {_short(value)!r})"
        if hint:
            text += f"; {hint}"
        super().__init__(text)


class ConfigError(AmlGraphError):
    """An invalid parameter or option. Exit code 2."""

    exit_code = 2


class CheckpointError(AmlGraphError):
    """A checkpoint is missing, corrupt, stale or unreadable."""

    exit_code = 3


class LockedError(CheckpointError):
    """The checkpoint directory is locked by another run."""

    exit_code = 4


class StepError(AmlGraphError):
    """A step failed; carries the step (and chunk) where it happened."""

    resumable = True

    def __init__(self, message: str, *, step: str, chunk: int | None = None):
        self.step, self.chunk = step, chunk
        where = f"step {step}" + (f", chunk {chunk}" if chunk is not None else "")
        super().__init__(f"{where}: {message}")


def _short(value: str, limit: int = 80) -> str:
    value = str(value)
    return value if len(value) <= limit else value[:limit] + f"...(+{len(value) - limit} chars)"
