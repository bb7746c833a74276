"""Typed errors of a3d, mapped to exit codes in one place (`a3d_cli.cli`).

Why: scripts driving a3d over thousands of assets read exit codes, and people read one clear sentence.
Every error a user can fix is an `A3DError` with `exit_code = 2` and a `hint` naming what to change;
anything else is a failure of a3d itself (exit code 1).
"""

from __future__ import annotations


class A3DError(Exception):
    """Base of every error a3d raises on purpose.

    Args:
        message: one sentence saying what is wrong.
        hint: what the user should do about it (a flag to change, a command to run).
    """

    exit_code: int = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # the message alone; the CLI prints the hint on its own line
        return self.message


class InputError(A3DError):
    """An input file or folder is missing, unreadable, or not of the expected kind."""


class OptionError(A3DError):
    """A command-line option has a value that cannot work."""


class RunFolderError(A3DError):
    """The run folder is missing a stage's inputs, is not writable, or is not a folder."""


class RunLockedError(A3DError):
    """Another a3d process is working on the same run folder."""


class WeightsMissing(A3DError):
    """A model file cannot be found; the hint names the repo, the file and `a3d weights fetch NAME`."""


class CheckpointError(A3DError):
    """A checkpoint does not match the model it is loaded into (wrong model, missing or extra keys)."""


class DeviceError(A3DError):
    """The requested device is not available on this machine."""


class StageFailed(A3DError):
    """A stage broke for a reason that is a3d's own (exit code 1)."""

    exit_code = 1


class PrecisionError(A3DError):
    """A network produced NaN or infinite values (in half precision: an overflow); the hint names a --dtype."""


class DiskError(A3DError):
    """The disk refused a write a user can fix: no space left, quota exceeded, read-only file system, permissions."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (from `kill` or a job scheduler); handled like Ctrl-C, exit code 143 at the CLI."""


def require_finite_options(options: object, flags: dict[str, str] | None = None) -> None:
    """Refuse NaN or infinity in any float field of an options dataclass (and in any tuple of floats).

    Why: a range check written `x < 0` lets NaN through (every comparison with NaN is false), and an open
    upper end (`0 <= x`) lets infinity through; a NaN loss weight or learning rate then finishes a run with
    NaN everywhere instead of an error at the start. One call at the top of an options class's
    `__post_init__` covers every float option it has, and any added later.

    Args:
        options: the dataclass instance.
        flags: the command-line flag of a field whose flag is not its name with dashes
            (`{"guidance_scale": "--guidance"}`).

    Raises:
        OptionError: naming the first such option as its flag (`lambda_sds` → `--lambda-sds`).
    """
    import dataclasses
    import math

    for f in dataclasses.fields(options):  # type: ignore[arg-type]
        value = getattr(options, f.name)
        items = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in items):
            flag = (flags or {}).get(f.name, "--" + f.name.replace("_", "-"))
            several = isinstance(value, tuple)
            hint = f"Give a finite number; the default is {f.default}." if isinstance(f.default, float) else None
            raise OptionError(
                f"{flag} must be {'finite numbers' if several else 'a finite number'}, got {value}.",
                hint=hint or "NaN and infinity cannot work here; give finite numbers.",
            )


def from_os_error(exc: OSError) -> A3DError | None:
    """The user-fixable error behind an `OSError` (full disk, quota, read-only, permission denied), else None.

    Why: a full scratch disk is the commonest way a long batch fails, and the person running it can fix it;
    it is not a bug of a3d to report.
    """
    import errno

    where = f" on {exc.filename}" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return DiskError(
            f"No space left{where} (the disk is full).",
            hint="Free some space or write the run folder to another disk (-o), then re-run: finished stages are kept.",
        )
    if exc.errno == errno.EDQUOT:
        return DiskError(
            f"Disk quota exceeded{where}.",
            hint="Free some space within your quota or write the run folder elsewhere (-o), then re-run.",
        )
    if exc.errno == errno.EROFS:
        return DiskError(
            f"The file system is read-only{where}.", hint="Write the run folder to a writable disk (-o)."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return DiskError(
            f"Permission denied{where}.",
            hint="Give your user read/write access to it (or to the run folder), or write the run folder elsewhere (-o).",
        )
    return None
