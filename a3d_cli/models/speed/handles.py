"""Removable speed tricks: every `use_*` / `keep_*` / `accelerate` call returns a handle that undoes it.

Why handles: a trick changes a network in place (a module's class, an attention processor, a forward hook,
a compiled forward, weight layouts). Like diffusers' hook registry, each change is named and can be taken
back, so a benchmark can measure the same network with and without a trick, and a network handed to a
library caller can be given back as it came. `remove()` is idempotent; a handle is also a context manager.

`swap_class` is the one way a3d swaps an implementation: modules of one exact class get a faster subclass in
place. The objects, their parameters and buffers, hooks, state-dict keys and the parent's attribute names all
stay as they are, so a converted checkpoint, an optimizer or a compiled parent never notices; only `forward`
(and whatever the subclass overrides) changes. The subclass must add no state of its own.

Examples:
    >>> from torch import nn
    >>> class Fast(nn.ReLU): ...
    >>> net = nn.Sequential(nn.ReLU(), nn.ReLU())
    >>> handle = swap_class(net, nn.ReLU, Fast, name="fast relu")
    >>> handle.count, type(net[0]).__name__
    (2, 'Fast')
    >>> handle.remove(); type(net[0]).__name__
    'ReLU'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn


class SpeedHandle:
    """One trick applied to one or more networks: where it changed them, and how to put them back.

    Args:
        name: what was applied ("fused GEGLU", "compile", …).
        count: how many places (modules, layers, blocks) it changed; 0 = nothing to undo.
        undo: puts them back; called at most once.
    """

    def __init__(self, name: str, count: int = 0, undo: Callable[[], None] | None = None) -> None:
        self.name = name
        self.count = count
        self._undo = undo

    @property
    def removed(self) -> bool:
        """True once `remove()` has run (or when there was nothing to undo)."""
        return self._undo is None

    def remove(self) -> None:
        """Undo the trick (idempotent)."""
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()

    def __enter__(self) -> SpeedHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"SpeedHandle({self.name!r}, count={self.count}{', removed' if self.removed else ''})"

    @classmethod
    def group(cls, name: str, handles: Iterable[SpeedHandle]) -> SpeedHandle:
        """One handle for several: counts add up, `remove()` undoes them last-applied first."""
        parts = list(handles)

        def undo() -> None:
            for h in reversed(parts):
                h.remove()

        return cls(name, sum(h.count for h in parts), undo if parts else None)


def swap_class(module: nn.Module, exact: type[nn.Module], subclass: type[nn.Module], name: str = "") -> SpeedHandle:
    """Turn every module in `module` (itself included) whose type is exactly `exact` into `subclass`.

    Returns:
        a handle whose `count` is how many modules were switched (0 on a second call: they are no longer
        exactly `exact`) and whose `remove()` gives them back their class.
    """
    if not issubclass(subclass, exact):
        raise TypeError(f"{subclass.__name__} must subclass {exact.__name__} to stand in for it")
    swapped = [m for m in module.modules() if type(m) is exact]
    for m in swapped:
        m.__class__ = subclass

    def undo() -> None:
        for m in swapped:
            if type(m) is subclass:
                m.__class__ = exact

    return SpeedHandle(name or subclass.__name__, len(swapped), undo if swapped else None)


__all__ = ["SpeedHandle", "swap_class"]
