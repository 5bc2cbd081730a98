"""Errors a user can fix: the CLI prints the message (no stack trace) and exits `exit_code`."""

from __future__ import annotations


class UserError(Exception):
    """Bad usage or bad input: the message names the file, row or key and says what to do."""

    exit_code = 2


class GateFailed(Exception):
    """A check or gate refused to go on (exit code 1)."""

    exit_code = 1
