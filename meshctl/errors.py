"""Failures a user can meet in normal use -- a database not answering, a lock held, a bad
secret -- as opposed to bugs. `meshctl`'s one error handler (cli.py) prints these as one line,
which carries its own fix, and exits with `exit_code`; anything else keeps its traceback."""

from __future__ import annotations


class ExpectedFailure(RuntimeError):
    exit_code = 2
