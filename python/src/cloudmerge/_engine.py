"""Running the engine this package carries (cloudmerge/_bin/cloudmerge).

Owns: finding the binary, turning keyword options into its flags, running it
with its progress as JSON lines on standard error (shown as tqdm bars, see
_progress.py) and turning a failure into an exception (errors.py).
Threading: each call runs its own process; nothing is shared between calls.
"""
import json
import os
import pathlib
import signal
import subprocess

from . import errors
from ._progress import ProgressBars, progress_wanted

BINARY = pathlib.Path(__file__).resolve().parent / "_bin" / "cloudmerge"


def binary():
    """Path of the engine inside the installed package."""
    if not os.access(BINARY, os.X_OK):
        raise errors.CloudmergeError(
            f"the cloudmerge engine is missing from this installation ({BINARY} is not an executable file). "
            "Reinstall the package from a wheel built with `python -m build --wheel python/`.")
    return str(BINARY)


def option_flags(options, reserved=()):
    """Keyword options -> engine flags: memory_limit="4GiB" -> --memory-limit 4GiB,
    any_order=True -> --any-order (False and None leave the option out)."""
    flags = []
    for name, value in options.items():
        if name in reserved:
            raise TypeError(f"option {name!r} is set by cloudmerge itself: {reserved[name]}")
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        flags += [flag] if value is True else [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return flags


def run(args, progress=None, interval=0.5):
    """Runs `cloudmerge ARGS...` (a subcommand with --progress: merge); bars when `progress` (None: on a
    terminal or in Jupyter). Raises the engine's error as an exception."""
    show = progress_wanted(progress)
    argv = [binary(), *args, "--progress", "lines" if show else "none", "--progress-interval", str(interval)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    other = []
    bars = ProgressBars(enabled=show)
    try:
        for raw in proc.stderr:
            text = raw.decode("utf-8", errors="replace")
            if text.startswith('{"progress":'):
                try:
                    bars.update(json.loads(text))
                    continue
                except ValueError:
                    pass
            other.append(text)
        rc = proc.wait()
    except BaseException:  # KeyboardInterrupt in a notebook: the engine removes its temporaries on SIGINT
        proc.send_signal(signal.SIGINT)
        proc.wait()
        raise
    finally:
        bars.close()
        proc.stderr.close()
    if rc != 0:
        raise errors.from_engine(rc, "".join(other))
    return "".join(other)
