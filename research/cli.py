"""How every binary starts and how it reports a user's mistake: `cli.run_main(main)` instead of `app.run(main)`.

A user error (a bad flag value, a missing or unreadable file, a refused workdir, a full disk) ends the run with
one line on stderr, `error: <what was wrong and what to do>`, and exit status 2; nothing else is printed. Any
other exception is a bug and keeps its traceback (exit status 1). With JAXCLUSTER_DEBUG=1 in the environment,
or --verbosity=1 or more, user errors show their traceback too.

Exit statuses: 0 done, 1 a bug (traceback), 2 a user error (one line). The flag checks that run at parse time
(`at_least`, `positive_finite`, ...) are registered here, so every binary words them the same way.

This module defines no flags itself: collect and reproduce, whose --dataset and --root are their own, use it.
"""

from __future__ import annotations

import errno
import math
import os
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
USER_ERROR_EXIT = 2
DEBUG_ENV = "JAXCLUSTER_DEBUG"
# Exceptions that mean "the input was wrong" rather than "the code is wrong". ValueError covers
# checkpointing.CheckpointError and data.DataNotFoundError's siblings; a ValueError raised deep inside a library
# is reported the same way (the traceback is one JAXCLUSTER_DEBUG=1 away).
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)
# OSErrors a user fixes outside the program: a full disk or quota, a read-only file system.
USER_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def run_main(main) -> None:
    """app.run(main) with user errors (in flags or raised by main) reported as one `error:` line, exit status 2."""
    app.run(_reporting(main), flags_parser=_parse_flags)


def is_user_error(exc: BaseException) -> bool:
    """Whether `exc` is the user's to fix (a bad value, file or folder), not a bug."""
    if isinstance(exc, (app.UsageError, flags.Error, *USER_ERRORS)):
        return True
    return isinstance(exc, OSError) and exc.errno in USER_ERRNOS


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (absl's and OSError's included); its type when it has no message."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def debugging() -> bool:
    """True when tracebacks of user errors are wanted: JAXCLUSTER_DEBUG set (not 0), or --verbosity >= 1."""
    if os.environ.get(DEBUG_ENV, "0") not in ("", "0"):
        return True
    return logging.get_verbosity() >= 1  # absl's --verbosity, as it set the logging level


def fail(message: str):
    """Prints `error: message` to stderr and exits with USER_ERROR_EXIT."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(USER_ERROR_EXIT)


def _parse_flags(argv):
    """absl's flag parsing, a bad value or an unknown flag reported as one line (absl prints usage text)."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        if os.environ.get(DEBUG_ENV, "0") not in ("", "0"):
            raise
        # absl puts each failed validator on a line of its own: one line, the errors kept apart by "; ".
        errors = [" ".join(line.split()) for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        fail(f"{'; '.join(errors)}. See --helpshort for the flags.")


def _reporting(main):
    def wrapped(argv):
        try:
            return main(argv)
        except SystemExit as e:  # SystemExit("message"): the older way of refusing, kept working
            if isinstance(e.code, str) and not debugging():
                fail(one_line(e))
            raise
        except Exception as e:
            if not is_user_error(e) or debugging():
                raise
            fail(one_line(e))

    return wrapped


# ----------------------------------------------------------------- flag checks (at parse time, before any work)


def check(name: str, ok, message: str, flag_values=FLAGS) -> None:
    """--name, when set (not None), must pass `ok`; absl reports `flag --name=value: <message>` otherwise."""
    flags.register_validator(name, lambda v: v is None or ok(v), message=message, flag_values=flag_values)


def at_least(name: str, low: int, meaning: str = "", flag_values=FLAGS) -> None:
    """--name must be >= low when set (None: the default)."""
    why = f" ({meaning})" if meaning else ""
    check(name, lambda v: v >= low, f"must be >= {low}{why}", flag_values)


def positive_finite(name: str, allow_zero: bool = False, meaning: str = "", flag_values=FLAGS) -> None:
    """--name must be a finite number > 0 (>= 0 with allow_zero) when set."""
    bound = ">= 0" if allow_zero else "> 0"
    why = f" ({meaning})" if meaning else ""
    check(name, lambda v: math.isfinite(v) and (v > 0 or (allow_zero and v == 0)), f"must be {bound}{why}", flag_values)


def fraction(name: str, meaning: str = "", flag_values=FLAGS) -> None:
    """--name must be a number in [0, 1) when set."""
    why = f" ({meaning})" if meaning else ""
    check(name, lambda v: 0 <= v < 1, f"must be in [0, 1){why}", flag_values)


def list_of(name: str, kind, ok=None, meaning: str = "", nonempty: bool = False, flag_values=FLAGS) -> None:
    """--name (a comma-separated list) must hold values of `kind` (int or float), each passing `ok`, and at
    least one value when `nonempty`."""

    def valid(values) -> bool:
        try:
            parsed = [kind(v) for v in values]
        except ValueError:
            return False
        return bool(parsed or not nonempty) and all(ok is None or ok(v) for v in parsed)

    what = "whole numbers" if kind is int else "numbers"
    some = "a non-empty" if nonempty else "a"
    check(name, valid, f"must be {some} comma-separated list of {what}{f' {meaning}' if meaning else ''}", flag_values)


def only_when(names, switch: str, applies, when: str, flag_values=FLAGS) -> None:
    """Refuses --names given on the command line while --switch's value fails `applies`, since the run would
    ignore them; `when` says where they apply, e.g. "with --mode=batch". Every such flag given is named."""

    def used(values) -> bool:
        unused = [f"--{n}" for n in names if flag_values[n].present and not applies(values[switch])]
        if unused:
            verb, them = ("applies", "it") if len(unused) == 1 else ("apply", "them")
            raise flags.ValidationError(f"{', '.join(unused)} {verb} only {when}; drop {them} or change --{switch}")
        return True

    flags.register_multi_flags_validator([switch, *names], used, flag_values=flag_values)
