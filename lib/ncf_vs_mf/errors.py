"""Errors a user can fix, shared by every layer (printed as one line by the command line)."""

from __future__ import annotations


class UsageError(Exception):
    """An error in what the user asked for: printed without a traceback, exit status 2."""
