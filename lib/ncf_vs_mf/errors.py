"""Errors a user can fix, shared by every layer (printed as one line by the command line)."""

from __future__ import annotations

import argparse
import typing


class UsageError(Exception):
    """An error in what the user asked for: printed without a traceback, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")
