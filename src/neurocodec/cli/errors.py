"""Errors the CLI reports as one line, ``neurocodec: error: ...``, with an exit status."""

from __future__ import annotations

#: Exit statuses (documented in docs/cli.md).
EXIT_OK = 0
EXIT_FAILURE = 1      # bad input: missing file, not an image, damaged stream, existing output...
EXIT_USAGE = 2        # bad command line: unknown option, bad quality, unknown model...
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A failure to report as one line on stderr; ``code`` is the exit status."""

    #: CLI messages name their file themselves (see neurocodec.files.describe).
    names_its_file = True

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.code = code


class UsageError(CLIError):
    """The command line itself is wrong (exit status 2)."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)
