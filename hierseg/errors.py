"""The two user-facing error kinds, and how the `hierseg` command reports them.

A library function that finds wrong input raises an error whose message is one line naming the file,
line or key and what to do. The CLI (``hierseg_cli.main``) prints that line without a traceback and
exits with :attr:`UsageError.exit_code` (2: the command line, a config or a named input is wrong) or
:attr:`WorkError.exit_code` (1: the inputs were accepted but the work failed, e.g. an empty split).
Other library errors (:class:`hierseg.oid.OidFormatError`, :class:`hierseg.hierarchy.HierarchyError`,
``FileNotFoundError``) are mapped by the CLI too; see ``hierseg_cli.main.exit_code_of``.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A wrong flag, config value or missing input named on the command line (exit status 2)."""

    exit_code = 2


class WorkError(RuntimeError):
    """The inputs were accepted but the work cannot be done as asked (exit status 1)."""

    exit_code = 1
