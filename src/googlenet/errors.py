"""The exceptions the command line turns into one-line messages, and their exit statuses."""

from __future__ import annotations

from typing import Optional


class UserError(Exception):
    """Bad input from the user (a file, a setting): the message says what and what to do.

    ``key`` names the setting at fault in library terms (``device``, ``opset``, ``data_root``);
    the command line turns it into its flag (``--device``). ``exit_code`` is the status the
    command line exits with (2: bad input; subclasses may differ). The command line prints
    ``googlenet COMMAND: error: <message>``, never a traceback (unless ``--debug``).
    """

    exit_code = 2

    def __init__(self, message: str, *, key: Optional[str] = None) -> None:
        super().__init__(message)
        self.key = key


class FileSystemError(UserError):
    """The file system refused: permission denied, disk full, a name too long, a path under a
    file. The message names the path and the system's reason (``strerror``); exit status 4."""

    exit_code = 4
