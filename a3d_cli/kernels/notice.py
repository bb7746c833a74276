"""One line on stderr before a long one-off build (gsplat's extension, the Triton kernels).

Why here and not the CLI's console: a kernel imports nothing above it, and these notices come from deep inside
a run (the first render, the first fused GEGLU), where only the kernels know that a build is about to start.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def emit_notice(message: str, emit: Callable[[str], None] | None = None) -> None:
    """Hand `message` to `emit`, or print it on stderr at once when there is none."""
    if emit is None:
        print(message, file=sys.stderr, flush=True)
    else:
        emit(message)


__all__ = ["emit_notice"]
