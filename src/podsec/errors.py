"""The one error type users see.

Core code raises :class:`PodsecError` (or a subclass) with a one-line message saying what is
wrong and, when known, a hint saying what to do. The CLI catches it in one place and prints
``podsec: <message>`` and the hint on stderr; tracebacks appear only with ``--debug``.
"""

from __future__ import annotations

from typing import Self


class PodsecError(Exception):
    """A failure the user can act on."""

    exit_code: int = 1
    # the exit status the original bash program had for this failure; used only when the
    # command runs under its original name (podsec-load-sign-oci: 3 arch ... 8 index.json)
    original_code: int | None = None

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def as_original(self, code: int) -> Self:
        """This error, exiting ``code`` under the original program name."""
        self.original_code = code
        return self

    def __str__(self) -> str:
        return self.message

    def diagnostics(self) -> list[str]:
        """What every front end shows, once: the message, then the hint when there is one
        (the CLI prints them as ``podsec: message`` and an indented hint; a Nagios plugin as
        its status line and long output)."""
        return [self.message, self.hint] if self.hint else [self.message]


class UsageError(PodsecError):
    """Bad arguments, flags, configuration or environment values (exit 2, nothing written)."""

    exit_code = 2


class ConfigError(UsageError):
    """Unreadable or invalid configuration (podsec.toml, U7S_* variables, --root)."""


class CommandError(PodsecError):
    """An external program failed; carries its argv, exit status and the tail of its stderr."""

    def __init__(
        self,
        message: str,
        *,
        argv: list[str],
        returncode: int | None,
        stderr: str = "",
        hint: str | None = None,
    ):
        super().__init__(message, hint=hint)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class NotFoundError(PodsecError):
    """Something the command needs (a file, a user, a key, an image) does not exist."""


class ValidationError(PodsecError):
    """A file or object exists but its content is invalid (names the file and the field)."""
