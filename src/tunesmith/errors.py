"""Errors a user can fix: the CLI prints the message (no stack trace) and exits `exit_code`."""

from __future__ import annotations


class UserError(Exception):
    """Bad usage or bad input: the message names the file, row or key and says what to do."""

    exit_code = 2


class GateFailed(Exception):
    """A check or gate refused to go on (exit code 1)."""

    exit_code = 1


def first_line(error: BaseException) -> str:
    """The first line of a library's error message (or its type), for a one-line reason."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
