"""Deterministic slices of a batch for job arrays (Slurm, Kubernetes indexed jobs, AWS Batch arrays).

Shard I of N takes the jobs whose manifest position k has k mod N = I: every job lands in exactly one shard,
neighbouring lines (often similar assets) are spread over the shards, and the slice depends only on the
manifest, so every array task computes the same split without talking to the others.

Under Slurm, `SLURM_ARRAY_TASK_ID` and `SLURM_ARRAY_TASK_COUNT` give I and N when `--shard` is not passed
(I counts from `SLURM_ARRAY_TASK_MIN`, so `--array=1-8` works as well as `--array=0-7`).

Examples:
    >>> parse_shard("1/4")
    (1, 4)
    >>> [k for k in range(10) if in_shard(k, (1, 4))]
    [1, 5, 9]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TypeVar

from a3d_cli.errors import OptionError

T = TypeVar("T")
Shard = tuple[int, int]


def parse_shard(text: str) -> Shard:
    """`"I/N"` → (I, N) with 0 <= I < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise OptionError(f"--shard {text!r} is not I/N.", hint="e.g. --shard 0/4 … --shard 3/4 for four array tasks.")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise OptionError(f"--shard {text}: I must be in 0 … N-1 and N >= 1.", hint="e.g. --shard 0/4 … --shard 3/4.")
    return index, count


def shard_from_env(env: Mapping[str, str]) -> Shard | None:
    """The Slurm array task's shard, or None outside a Slurm job array."""
    task, count = env.get("SLURM_ARRAY_TASK_ID"), env.get("SLURM_ARRAY_TASK_COUNT")
    if task is None or count is None:
        return None
    try:
        index = int(task) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        total = int(count)
    except ValueError:
        raise OptionError(f"SLURM_ARRAY_TASK_ID={task!r} / SLURM_ARRAY_TASK_COUNT={count!r} are not numbers.") from None
    if total < 1 or not 0 <= index < total:
        raise OptionError(
            f"this Slurm array task ({task} of {count}) is outside 0 … COUNT-1.",
            hint="Use a contiguous array (--array=0-N) or pass --shard I/N yourself.",
        )
    return index, total


def in_shard(position: int, shard: Shard | None) -> bool:
    """Whether the job at manifest position `position` belongs to `shard` (None: the whole batch)."""
    return shard is None or position % shard[1] == shard[0]


def select(items: Sequence[T], shard: Shard | None) -> list[T]:
    """The items of `shard`, by their position in `items` (their order is kept)."""
    return [item for i, item in enumerate(items) if in_shard(i, shard)]


__all__ = ["Shard", "in_shard", "parse_shard", "select", "shard_from_env"]
