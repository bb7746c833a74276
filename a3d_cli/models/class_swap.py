"""Give modules of one exact class a faster subclass in place: the one way a3d swaps implementations.

Why a class swap and not new modules: the objects, their parameters and buffers, hooks, state-dict keys and
the parent's attribute names all stay as they are, so a converted checkpoint, an optimizer or a compiled
parent never notices; only `forward` (and whatever the subclass overrides) changes. The subclass must add
no state of its own. Used for the channels-last GroupNorm, the folded upsampling and the fused GEGLU.
"""

from __future__ import annotations

from torch import nn


def swap_class(module: nn.Module, exact: type[nn.Module], subclass: type[nn.Module]) -> int:
    """Turn every module in `module` (itself included) whose type is exactly `exact` into `subclass`.

    Returns:
        how many modules were switched (0 on a second call: they are no longer exactly `exact`).
    """
    if not issubclass(subclass, exact):
        raise TypeError(f"{subclass.__name__} must subclass {exact.__name__} to stand in for it")
    n = 0
    for m in module.modules():
        if type(m) is exact:
            m.__class__ = subclass
            n += 1
    return n


__all__ = ["swap_class"]
