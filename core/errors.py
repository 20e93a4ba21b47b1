"""Expected failures, and the one way every command reports them.

An *expected* failure is one the user fixes, not the code: a config key that does not exist, a model that is not on
disk, a shard set with too many truncated tars, a checkpoint that cannot be resumed, an input file that is missing.
Every ``python -m`` entry point decorates its ``main`` with `entry_point`, which turns such a failure into one line
on stderr and exit status 2 (argparse's status for a bad command line) instead of a traceback::

    ERROR python -m data.check: 2 of 60 indexed samples sit in missing or truncated shards, ... Restore the shards ...

Once per job: in a multi-rank job (torchrun's ``RANK``, or an srun with several tasks) every rank raises the same
error from the same config and data, so only rank 0 prints it; the other ranks exit 2 silently, which still stops
the launcher. Errors marked ``rank_local`` (one rank's own share of the data) are printed by whichever rank hit them.
Everything else is a bug or an unforeseen problem and keeps its traceback.

What counts as expected:

* `UserError` and its subclasses. The project's expected errors derive from it and keep their built-in base
  (``class ConfigError(UserError, ValueError)``), so ``except ValueError`` and the tests that expect one still work;
* the built-in errors about a path (`PATH_ERRORS`): a file that is missing, one that exists already, no permission,
  a directory where a file belongs or the reverse;
* inside ``with user_errors(ValueError, ...):``, the listed built-ins: for a command whose library reports bad input
  with plain built-ins (a corpus importer's ValueError on a malformed file), in the region where that is what they
  mean.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

__all__ = ["UserError", "EXIT_USER_ERROR", "PATH_ERRORS", "entry_point", "user_errors", "is_expected", "describe",
           "report", "job_rank"]

EXIT_USER_ERROR = 2
SILENT_RANK_GRACE_S = 3.0
"""How long a rank other than 0 waits before exiting on an expected error (see `report`)."""
PATH_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


class UserError(Exception):
    """A failure the user fixes (a setting, a file, a model, the data), reported as one line without a traceback.

    Args:
        message: what is wrong, naming the file or setting, and the fix (the whole text when `where` and `fix` are
            not given).
        where: the file or setting at fault; put in front of the message unless the message names it already.
        fix: what to do about it; appended unless the message says it already.
        rank_local: only this rank hit it (its own share of the data), so a rank other than 0 reports it too.
    """

    def __init__(self, message: str = "", *, where: str | None = None, fix: str | None = None,
                 rank_local: bool = False):
        super().__init__(message)
        self.where = where
        self.fix = fix
        self.rank_local = rank_local

    def __str__(self) -> str:
        text = super().__str__()
        where, fix = getattr(self, "where", None), getattr(self, "fix", None)
        if where and where not in text:
            text = f"{where}: {text}"
        if fix and fix not in text:
            text = f"{text}; {fix}"
        return text


def is_expected(exc: BaseException) -> bool:
    """Whether `exc` is reported as one ERROR line (see the module docstring) rather than with its traceback."""
    return isinstance(exc, (UserError, *PATH_ERRORS))


def describe(exc: BaseException) -> str:
    """The text of an expected error on one line; a built-in OSError as ``<path>: <reason>``."""
    if isinstance(exc, OSError) and not isinstance(exc, UserError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" + (f" (and {exc.filename2})" if exc.filename2 is not None else "")
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())  # one line, whatever the exception text holds


def job_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank in its job: ``RANK`` (torchrun), else ``SLURM_PROCID`` of an srun with several tasks
    (train.distributed.discover's rule, read here without importing it), else 0."""
    env = os.environ if env is None else env
    try:
        if "RANK" in env:
            return int(env["RANK"])
        if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", 1)) > 1:
            return int(env["SLURM_PROCID"])
    except ValueError:
        pass
    return 0


def report(exc: BaseException, prog: str) -> int:
    """Prints ``ERROR <prog>: <message>`` to stderr on rank 0 (and on any rank for a rank-local error); returns 2."""
    rank = job_rank()
    if rank == 0 or getattr(exc, "rank_local", False):
        sys.stdout.flush()  # what the command printed before comes first
        where = prog if rank == 0 else f"{prog} (rank {rank})"
        print(f"ERROR {where}: {describe(exc)}", file=sys.stderr, flush=True)
    else:
        # torchrun SIGTERMs every worker as soon as one has ended: a silent rank that ends at once can get rank 0
        # killed before it has printed the job's one ERROR line. Give rank 0 a moment.
        time.sleep(SILENT_RANK_GRACE_S)
    return EXIT_USER_ERROR


@contextmanager
def user_errors(*types: type[BaseException]) -> Iterator[None]:
    """Inside the block, the listed built-in exceptions are expected: re-raised as `UserError` with the same text
    (the original chained as its cause)."""
    try:
        yield
    except UserError:
        raise
    except types as exc:
        raise UserError(describe(exc)) from exc


def entry_point(main: Callable[..., int] | None = None, *, prog: str | None = None):
    """Decorates a command's ``main(argv=None) -> int``: an expected error ends it with one ERROR line and status 2.

    ``main(argv)`` then returns 2 in-process too (what tests call). Use it bare (``@entry_point``: the program is
    ``python -m <module>``) or with ``prog=``.
    """

    def decorate(fn: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs) -> int:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not is_expected(exc):
                    raise
                return report(exc, prog or _prog(fn))

        return wrapped

    return decorate if main is None else decorate(main)


def _prog(fn: Callable) -> str:
    module = fn.__module__
    if module == "__main__":  # run as `python -m pkg.mod`: the module's own name is in its spec
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is None:
            return os.path.basename(sys.argv[0]) or "python"
        module = spec.name.removesuffix(".__main__")
    return f"python -m {module}"
