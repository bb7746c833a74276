"""Replay a fixed-shape GPU call as one CUDA graph.

Why: a CFG-batched MV-VDM forward runs thousands of kernels, and wherever Python (diffusers' block loops,
the attention processors, the glue between layers) is slower to launch the next one than the GPU is to
finish the last, the GPU waits; on a fast GPU or a slow host it waits a lot. A CUDA graph records the
kernels of one call once; each later call copies its inputs into the recorded buffers and launches the
whole recording at once, so the GPU never waits for Python (its gain on the mvvideo stage is in
docs/PERF.md).

The contract a graphed function must keep (true of a UNet forward at fixed shapes):

- it is a pure function of the *values* of its tensor arguments, which keep their shapes, dtypes and
  devices from call to call (a timestep or σ is passed as a 0-d device tensor, never a Python number,
  which would be baked into the recording);
- it does not synchronize with the host (`.item()`, printing tensors, data-dependent Python branches),
  draw random numbers or mutate Python state the next call depends on;
- it returns one tensor, and the caller consumes it before the next call: the returned tensor is the
  recording's output buffer, overwritten by every replay.

The first `eager_calls` calls run the function normally: they pay for `torch.compile`'s compilation,
cuDNN's algorithm search and cuBLAS's workspace, none of which may happen inside a recording, and their
results are the real results of those calls, so warming up costs no extra forward. The next call records
and replays; every call after that only replays.

Examples:
    >>> step = GraphedFunction(lambda x, t: unet(x, t), eager_calls=1)  # doctest: +SKIP
    >>> for t in timesteps: v = step(x_in, t)                            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor


class GraphedFunction:
    """`fn(*tensors) -> tensor`, recorded as a CUDA graph after `eager_calls` ordinary calls.

    Args:
        fn: the function to record (see the module docstring for what it must not do).
        eager_calls: calls run without recording first (at least 1: compilation and library
            initialisation must happen outside the recording).

    Attributes:
        replays: how many calls were served by the graph (recording call included).
    """

    def __init__(self, fn: Callable[..., Tensor], eager_calls: int = 1) -> None:
        if eager_calls < 1:
            raise ValueError(f"eager_calls must be at least 1 (got {eager_calls}): nothing may compile while recording")
        self.fn = fn
        self.eager_calls = eager_calls
        self.replays = 0
        self._calls = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._inputs: tuple[Tensor, ...] = ()
        self._output: Tensor | None = None

    def __call__(self, *args: Tensor) -> Tensor:
        """Run `fn(*args)`: eagerly for the first calls, then by replaying the recording.

        Returns:
            fn's output; from the recording call on, a buffer overwritten by the next call.
        """
        if any(not isinstance(a, Tensor) or a.device.type != "cuda" for a in args):
            raise ValueError("GraphedFunction takes CUDA tensors only (pass numbers as 0-d device tensors)")
        self._calls += 1
        if self._calls <= self.eager_calls:
            return self.fn(*args)
        if self._graph is None:
            self._record(args)
        else:
            self._check_like_recorded(args)
            for buffer, value in zip(self._inputs, args, strict=True):
                buffer.copy_(value)
        assert self._graph is not None and self._output is not None
        self._graph.replay()
        self.replays += 1
        return self._output

    def _record(self, args: tuple[Tensor, ...]) -> None:
        """Record one call on buffers holding `args`' values, while the GPU still runs earlier work.

        `torch.cuda.graph` would synchronize and empty the allocator's cache first, leaving the GPU idle
        for as long as Python takes to trace the call (about a UNet forward's launch time). Recording on a
        side stream needs neither: capture only records, so the previous step's kernels keep running.
        """
        device = args[0].device
        self._inputs = tuple(a.detach().clone() for a in args)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))  # the clones above come first
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(side):
            graph.capture_begin(capture_error_mode="thread_local")
            try:
                output = self.fn(*self._inputs)
            except BaseException:  # e.g. out of memory: end the capture, keep the caller's error, record next call
                with contextlib.suppress(RuntimeError):
                    graph.capture_end()
                self._inputs = ()
                raise
            graph.capture_end()
        torch.cuda.current_stream(device).wait_stream(side)
        if not isinstance(output, Tensor):
            raise TypeError(f"a graphed function must return one tensor, got {type(output).__name__}")
        self._graph, self._output = graph, output

    def _check_like_recorded(self, args: tuple[Tensor, ...]) -> None:
        """Refuse arguments the recording cannot take (a replay would silently read the wrong memory)."""
        if len(args) != len(self._inputs):
            raise ValueError(f"recorded with {len(self._inputs)} tensors, called with {len(args)}")
        for i, (buffer, value) in enumerate(zip(self._inputs, args, strict=True)):
            if value.shape != buffer.shape or value.dtype != buffer.dtype or value.device != buffer.device:
                raise ValueError(
                    f"argument {i} is {list(value.shape)} {value.dtype} on {value.device}; the graph was recorded "
                    f"with {list(buffer.shape)} {buffer.dtype} on {buffer.device}"
                )


__all__ = ["GraphedFunction"]
