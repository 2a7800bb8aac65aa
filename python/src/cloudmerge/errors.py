"""Exceptions raised by cloudmerge: the engine's own error, as Python objects.

The engine reports an error as one paragraph on standard error,
"Error [cloudmerge merge]: x.tsv, line 3, column 5: ... what to do", and a
non-zero exit code (2 bad options, 3 bad input, 4 storage/I/O). These classes
carry that paragraph and the parts a program needs: the file, line and
column it names (when it names them) and the exit code.
"""
import re

__all__ = ["CloudmergeError", "OptionsError", "InputError", "StorageError", "JobFailed"]


class CloudmergeError(Exception):
    """An error reported by the cloudmerge engine.

    Attributes: message (the engine's paragraph: what, where, what to do),
    file, line, column (None when the message names no position), exit_code
    (the engine's: 2 options, 3 input, 4 storage; None for a pipeline job),
    stderr (everything the engine wrote besides progress).
    """

    def __init__(self, message, *, exit_code=None, file=None, line=None, column=None, stderr=""):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.file = file
        self.line = line
        self.column = column
        self.stderr = stderr

    def __str__(self):
        return self.message


class OptionsError(CloudmergeError, ValueError):
    """A bad option or argument (the engine's exit code 2)."""


class InputError(CloudmergeError, ValueError):
    """Bad input data, such as a malformed row (exit code 3)."""


class StorageError(CloudmergeError):
    """A file or object that cannot be read or written, a full disk, S3 errors (exit code 4)."""


class JobFailed(CloudmergeError):
    """A pipeline job that ended failed (its failed.json): job, run, logs (where to look)."""

    def __init__(self, message, *, job=None, run=None, logs=None, **kw):
        super().__init__(message, **kw)
        self.job = job
        self.run = run
        self.logs = logs


_BY_EXIT_CODE = {2: OptionsError, 3: InputError, 4: StorageError}
# Exit codes of 100 and more are the option parser's own (CLI11: 109 an unknown option, 105 a bad value).
_FIRST_PARSER_CODE = 100
_PREFIX = re.compile(r"^Error \[cloudmerge [a-z-]+\]: ", re.M)
# "x.tsv, line 3, column 5: ..." (error_report.cc) and "x.tsv, line 3: ..."
_POSITION = re.compile(r"^(?P<file>[^\n]+?), line (?P<line>\d+)(?:, column (?P<column>\d+))?: ")
# "cannot open input x.tsv: ..." and the other I/O failures (env.cc IoFailure)
_IO_PATH = re.compile(r"^(?:cannot [a-z ]+?|--report) (?P<file>\S+?): ")


def position(message):
    """(file, line, column) named at the start of an engine message; None for what it does not name."""
    m = _POSITION.match(message)
    if m:
        return m["file"], int(m["line"]), int(m["column"]) if m["column"] else None
    m = _IO_PATH.match(message)
    return (m["file"] if m else None), None, None


def from_engine(exit_code, stderr):
    """The exception for a run of the engine that exited with `exit_code`,
    having written `stderr` (progress lines already removed)."""
    text = stderr.strip()
    starts = list(_PREFIX.finditer(text))
    if starts:
        # The first paragraph is the error the exit code belongs to; a second one,
        # if any, says what else went wrong (e.g. the --report that could not be written).
        end = starts[1].start() if len(starts) > 1 else len(text)
        message = text[starts[0].end():end].strip()
    elif text:
        message = text  # e.g. CLI11's own "The following argument was not expected: ..."
    else:
        message = f"cloudmerge exited with code {exit_code} without a message"
    file, line, column = position(message)
    cls = OptionsError if exit_code >= _FIRST_PARSER_CODE else _BY_EXIT_CODE.get(exit_code, CloudmergeError)
    return cls(message, exit_code=exit_code, file=file, line=line, column=column, stderr=stderr)
