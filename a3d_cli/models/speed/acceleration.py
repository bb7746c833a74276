"""CUDA speed settings shared by `orbit`, `mvvideo` and `sds`: backend flags and regional `torch.compile`.

Why one module: the three diffusion stages run the same kinds of networks (diffusers UNets and the SD VAE)
on the same GPUs, so they should be accelerated the same way, measured the same way and switched by the same
option (`compile`). Nothing here changes what a network computes, only how fast (TF32 changes fp32
rounding; compiled kernels round bf16/fp16 differently from eager ones, like any kernel choice would).

What `accelerate` does, on CUDA only (on the CPU, and so in tests, it does nothing and reports that):

1. `configure_cuda` (`a3d_cli.models.speed.flags`): TF32 for fp32 matmuls/convolutions (the SV3D VAE
   decodes in fp32; TF32 keeps a 10-bit mantissa, far finer than the 8-bit frames written). cuDNN
   autotuning stays off: its algorithm search is paid again by every process, for each convolution shape,
   and buys less than it costs.
2. With `compile=True`, *regional* compilation: every instance of the repeated block classes below
   (`ResnetBlock2D`, `BasicTransformerBlock`, SVD's `SpatioTemporalResBlock` and
   `TransformerSpatioTemporalModel`, and the `Upsample2D` / `Downsample2D` between levels) is compiled in
   place with `nn.Module.compile`. Identical blocks share one compiled graph (dynamo guards on the block's
   class and input shapes, not its identity), so a UNet costs one compilation per distinct (class, width,
   shape) — tens of graphs, not one huge graph — which is far faster to build than `torch.compile(unet)`.
   What compilation buys is fusion: GroupNorm + SiLU, LayerNorm + GEGLU, residual adds and blends become a
   few kernels instead of many memory round trips.
   Compiled blocks stay the same `nn.Module` objects (state dicts, `len()`, truthiness, `.to()` unchanged).
3. Three options the orbit stage turns on (all exact up to rounding; their gains are in docs/PERF.md):
   with `compile=True`, `channels_last` keeps activations NHWC from block to block and computes the
   resnets' GroupNorms as per-channel reductions (`keep_channels_last`) and `subpixel_upsampling` runs every
   nearest ×2 upsampling + 3×3 convolution as one 2×2 convolution on the small image
   (`a3d_cli.models.speed.upsampling`); compiled or not, `fused_geglu` computes every GEGLU as one GEMM
   (`a3d_cli.models.speed.geglu`, a Gluon kernel on Hopper GPUs, the same custom op eagerly and inside inductor's
   graphs). mvvideo and sds fuse MV-VDM's GEGLUs too (`MVVDMComponents.accelerate`,
   `MvvdmDenoiser.accelerate`); `channels_last` and `subpixel_upsampling` are the orbit stage's only.

Scope: the flags are process-wide, so `a3d_cli.stages.base.run_stage` restores them when a stage ends
(`backend_flags_kept`): one stage's TF32 never reaches the fp32 arithmetic of the next in `a3d animate`.

First-run cost: compilation happens lazily on the first forward of each block shape; inductor caches the
generated kernels on disk (`TORCHINDUCTOR_CACHE_DIR`, default under /tmp), so later processes on the same
machine mostly load them. `compile` is off by default in the stages until the benchmarks
(`benchmarks/bench_*.py --compile`) show that the first-run cost is worth it; see docs/PERF.md.

Failures: a block dynamo cannot trace runs eagerly (dynamo's `suppress_errors` is switched on while
compiling is requested), so `--compile` can make a stage slower to start but never makes it fail at trace
time.

Every change is removable: `accelerate` returns a report whose `handle.remove()` undoes what it did (the
backend flags, the class swaps, the hooks, the compiled forwards), and each `use_*`/`keep_*`/`compile_blocks`
helper returns its own `SpeedHandle`.

Examples:
    >>> report = accelerate("cpu", [torch.nn.Linear(2, 2)], compile=True)
    >>> report.enabled, report.compiled_blocks
    (False, 0)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from a3d_cli.kernels.triton_cache import use_triton_cache_dir
from a3d_cli.models.speed.flags import backend_flags_kept, configure_cuda, is_cuda
from a3d_cli.models.speed.geglu import FusedGEGLU, use_fused_geglu
from a3d_cli.models.speed.group_norm import use_channels_last_group_norm, use_fused_group_norm
from a3d_cli.models.speed.handles import SpeedHandle
from a3d_cli.models.speed.upsampling import use_subpixel_upsampling

REPEATED_BLOCKS = (
    "SpatioTemporalResBlock",  # SVD / SV3D resnet pair (spatial 2D + temporal 3D) and its blend
    "TransformerSpatioTemporalModel",  # SVD / SV3D spatial + temporal transformer and its blend
    "ResnetBlock2D",  # SD UNet / MV-VDM / VAE resnets
    "BasicTransformerBlock",  # SD UNet / MV-VDM spatial transformers and AnimateDiff motion modules
    "Upsample2D",  # nearest ×2 + conv (diffusers upcasts bf16 to fp32 around the interpolation eagerly)
    "SubpixelUpsample2D",  # the same, as one 2×2 convolution on the small image (`use_subpixel_upsampling`)
    "Downsample2D",  # strided conv
)
"""Class names compiled one instance at a time; the first match on a path wins (children of a compiled
block are part of its graph and are not compiled again)."""

GROUP_NORM_BY_CHANNELS_IN = ("SpatioTemporalResBlock", "ResnetBlock2D")
"""Blocks whose GroupNorms `keep_channels_last` computes as per-channel reductions: the resnets, where that
is faster (docs/PERF.md). In SVD's transformer, whose single GroupNorm feeds a linear layer, inductor's own
lowering is faster, so it is left alone."""

RECOMPILE_LIMIT = 64
"""Dynamo's per-code-object graph limit while compiling (default 8): a UNet's resnets alone come in more
than 8 (width, shortcut, resolution) variants, and past the limit the remaining blocks would silently run
eagerly."""


@dataclass
class AccelerationReport:
    """What `accelerate` did (recorded in the stage's metrics).

    Attributes:
        enabled: False on non-CUDA devices (nothing was changed).
        compile: whether regional compilation was requested and applied.
        mode: the torch.compile mode used ("" when not compiling).
        compiled_blocks: number of block instances wrapped.
        channels_last_blocks: blocks whose outputs are kept channels-last (`keep_channels_last`).
        subpixel_upsamplers: upsamplers computed as 2×2 convolutions (`use_subpixel_upsampling`).
        fused_geglus: GEGLU layers computed as one fused GEMM (`use_fused_geglu`), those an earlier call
            swapped included.
        fused_group_norms: GroupNorms switched to the NHWC kernels in eager channels-last networks
            (`channels_last_eagerly`); those that are given 4-D NHWC activations run them (in the SD VAE
            encoder all but the attention's, which sees a 3-D view and runs `F.group_norm`).
        block_classes: class name → instances wrapped.
        handle: undoes everything `accelerate` did (`handle.remove()`).
    """

    enabled: bool = False
    compile: bool = False
    mode: str = ""
    compiled_blocks: int = 0
    block_classes: dict[str, int] = field(default_factory=dict)
    channels_last_blocks: int = 0
    subpixel_upsamplers: int = 0
    fused_geglus: int = 0
    fused_group_norms: int = 0
    handle: SpeedHandle = field(default_factory=lambda: SpeedHandle("accelerate"))

    def as_metrics(self) -> dict[str, object]:
        """JSON-friendly summary."""
        return {
            "accelerated": self.enabled,
            "compile": self.compile,
            "compile_mode": self.mode,
            "compiled_blocks": self.compiled_blocks,
            "channels_last_blocks": self.channels_last_blocks,
            "subpixel_upsamplers": self.subpixel_upsamplers,
            "fused_geglus": self.fused_geglus,
            "fused_group_norms": self.fused_group_norms,
        }


def _raise_recompile_limit(limit: int) -> None:
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):  # renamed in torch 2.6; set whichever exists
        if hasattr(dynamo_config, name) and getattr(dynamo_config, name) < limit:
            setattr(dynamo_config, name, limit)
    for name in ("accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(dynamo_config, name) and getattr(dynamo_config, name) < 4 * limit:
            setattr(dynamo_config, name, 4 * limit)
    dynamo_config.suppress_errors = True  # an untraceable block runs eagerly instead of failing the stage


def repeated_blocks(module: nn.Module, classes: Iterable[str] = REPEATED_BLOCKS) -> list[tuple[str, nn.Module]]:
    """The (name, block) pairs `compile_blocks` would compile: outermost matches only.

    Args:
        module: a network (UNet, VAE encoder, …).
        classes: class names to match (exact `type(m).__name__`, so subclasses of other names are skipped).
    """
    wanted = set(classes)
    found: list[tuple[str, nn.Module]] = []
    taken: list[str] = []
    for name, m in module.named_modules():
        if any(name.startswith(prefix + ".") for prefix in taken):
            continue
        if type(m).__name__ in wanted:
            found.append((name, m))
            taken.append(name)
    return found


class CompiledBlocks(SpeedHandle):
    """The handle of `compile_blocks`: `classes` maps class name → blocks compiled (those compiled by an
    earlier call included); `remove()` puts back the eager forward of the blocks this call compiled."""

    def __init__(self, blocks: list[nn.Module], compiled_now: list[nn.Module]) -> None:
        self.classes: dict[str, int] = {}
        for block in blocks:
            self.classes[type(block).__name__] = self.classes.get(type(block).__name__, 0) + 1

        def undo() -> None:
            for block in compiled_now:
                block._compiled_call_impl = None  # what `nn.Module.compile` set: back to the eager forward

        super().__init__("compile", len(blocks), undo if compiled_now else None)


def compile_blocks(
    module: nn.Module, classes: Iterable[str] = REPEATED_BLOCKS, backend: str = "inductor"
) -> CompiledBlocks:
    """Compile every repeated block of `module` in place (`nn.Module.compile`); lazy until the first call.

    Args:
        classes: class names of the blocks to compile.
        backend: the torch.compile backend; "eager" only traces (a cheap CPU check that blocks trace).

    Idempotent: a block compiled by an earlier call (a model cached between stage runs) keeps its compiled
    forward and its graphs.

    Returns:
        a handle: `classes` counts the compiled instances per class; `remove()` restores the eager forwards of
        the blocks this call compiled.
    """
    _raise_recompile_limit(RECOMPILE_LIMIT)
    blocks = [block for _, block in repeated_blocks(module, classes)]
    compiled_now = [block for block in blocks if getattr(block, "_compiled_call_impl", None) is None]
    for block in compiled_now:
        block.compile(backend=backend, dynamic=False)
    return CompiledBlocks(blocks, compiled_now)


def accelerate(
    device: str | torch.device,
    modules: Iterable[nn.Module | None],
    *,
    compile: bool = False,  # noqa: A002 - the option's name
    channels_last: bool = False,
    subpixel_upsampling: bool = False,
    fused_geglu: bool = False,
) -> AccelerationReport:
    """Apply the CUDA speed settings and the fused GEGLU, and regional compilation of `modules` when `compile`
    is set.

    Args:
        device: the execution device; anything but CUDA makes this a no-op.
        modules: networks whose repeated blocks to compile (None entries are skipped).
        compile: compile repeated blocks (first forward of each shape pays the compilation).
        channels_last: with `compile`, run the networks channels-last throughout (`keep_channels_last`).
        subpixel_upsampling: with `compile`, run nearest ×2 upsampling + 3×3 convolution as one 2×2
            convolution (`a3d_cli.models.speed.upsampling`; equal to rounding).
        fused_geglu: compute every GEGLU's projection and gating in one GEMM, compiled or not
            (`a3d_cli.models.speed.geglu`; a Gluon kernel on Hopper GPUs, equal to rounding).

    Returns:
        `AccelerationReport`; its `handle.remove()` undoes every change.
    """
    if not is_cuda(device):
        return AccelerationReport()
    use_triton_cache_dir()  # before torch.compile can point Triton at its own temporary cache
    handles = [configure_cuda()]
    report = AccelerationReport(enabled=True)
    networks = [m for m in modules if m is not None]
    if fused_geglu:  # before compiling, so that the blocks' graphs take in the fused op
        handles += [use_fused_geglu(m) for m in networks]
        # counted, not taken from the handles: a cached model swapped by an earlier run reports its layers too
        report.fused_geglus = sum(isinstance(layer, FusedGEGLU) for m in networks for layer in m.modules())
    if compile:
        report.compile, report.mode = True, "default"
        for m in networks:
            if subpixel_upsampling:
                handles.append(use_subpixel_upsampling(m))
                report.subpixel_upsamplers += handles[-1].count
            if channels_last:
                handles.append(keep_channels_last(m))
                report.channels_last_blocks += handles[-1].count
            compiled = compile_blocks(m)
            handles.append(compiled)
            for name, n in compiled.classes.items():
                report.block_classes[name] = report.block_classes.get(name, 0) + n
        report.compiled_blocks = sum(report.block_classes.values())
    report.handle = SpeedHandle.group("accelerate", handles)
    return report


def _to_channels_last(output: object) -> object:
    """`output` with every 4-D tensor in it (a tensor, or the first level of a tuple) made NHWC."""
    if isinstance(output, torch.Tensor):
        return output.contiguous(memory_format=torch.channels_last) if output.ndim == 4 else output
    if isinstance(output, tuple):
        return tuple(_to_channels_last(o) if isinstance(o, torch.Tensor) else o for o in output)
    return output


def keep_channels_last(module: nn.Module, classes: Iterable[str] = REPEATED_BLOCKS) -> SpeedHandle:
    """Make `module` run channels-last (NHWC) from block to block; the handle counts the blocks hooked.

    Why: cuDNN's bf16 convolutions work in NHWC, and SVD's temporal 3×1×1 convolutions see a 5-D
    (batch, channels, frames, h, w) view of the (batch·frames, channels, h, w) activations, which is exactly
    NDHWC when those are NHWC and an odd layout cuDNN has to convert first when they are NCHW. Converting the weights alone is not enough: diffusers'
    `TransformerSpatioTemporalModel` ends in `.contiguous()`, which puts its output back to NCHW, and every
    block after it would convert again. So every repeated block gets a forward hook that hands its 4-D output
    on in NHWC. Under `torch.compile` the hook is traced into the block's graph, where inductor writes the
    block's last kernel straight into NHWC (no extra pass); eagerly the hook would be a copy, which is why
    `accelerate` only installs it together with compilation.

    The GroupNorms inside the resnets (`GROUP_NORM_BY_CHANNELS_IN`) become `ChannelsLastGroupNorm`s:
    inductor's own lowering of a GroupNorm reads NDHWC data against its grain (see
    `a3d_cli.models.speed.group_norm`).

    What changes: memory layouts and the order in which GroupNorm statistics are summed, nothing else.
    `remove()` on the returned handle takes the hooks off and gives the GroupNorms and weights back.
    """
    parts = [channels_last_convs(module)]
    blocks = repeated_blocks(module, classes)
    hooks = []
    for _, block in blocks:
        hooks.append(block.register_forward_hook(lambda _m, _args, output: _to_channels_last(output)))
        if type(block).__name__ in GROUP_NORM_BY_CHANNELS_IN:
            parts.append(use_channels_last_group_norm(block))

    def undo() -> None:
        for hook in hooks:
            hook.remove()
        SpeedHandle.group("", parts).remove()

    return SpeedHandle("channels-last blocks", len(blocks), undo)


def channels_last_convs(module: nn.Module, conv3d: bool = True) -> SpeedHandle:
    """Put the weights of every convolution in `module` into channels-last layout; the handle counts them.

    Conv2d weights become NHWC; with `conv3d`, Conv3d weights (SVD's temporal resnets) become NDHWC.
    Why not `module.to(memory_format=torch.channels_last)`: that call rejects the 5-D Conv3d weights
    ("required rank 4 tensor to use channels_last format"). `remove()` makes the weights contiguous again.
    """
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d) or (conv3d and isinstance(m, nn.Conv3d))]
    for m in convs:
        layout = torch.channels_last if isinstance(m, nn.Conv2d) else torch.channels_last_3d
        m.weight.data = m.weight.data.contiguous(memory_format=layout)

    def undo() -> None:
        for m in convs:
            m.weight.data = m.weight.data.contiguous()

    return SpeedHandle("channels-last weights", len(convs), undo if convs else None)


def channels_last_eagerly(module: nn.Module) -> SpeedHandle:
    """Run `module` NHWC without compiling it: channels-last Conv2d weights and NHWC GroupNorm kernels.

    Why: a bf16/fp16 convolution given NCHW activations makes cuDNN convert them to NHWC and back around its
    kernel, in the forward and in both backward passes. With the weights channels-last, cuDNN writes NHWC
    outputs, elementwise ops keep the layout, and `use_fused_group_norm` gives the GroupNorms kernels that
    read NHWC in order (PyTorch's would copy back to NCHW) and fuse the SiLU after them. Meant for networks
    of convolutions, GroupNorms and elementwise ops (the SD VAE); for compiled blocks use `keep_channels_last`.
    `remove()` on the returned handle undoes both; its `count` is the GroupNorms switched.
    """
    norms = use_fused_group_norm(module)
    weights = channels_last_conv2d(module)
    return SpeedHandle("eager channels-last", norms.count, SpeedHandle.group("", [weights, norms]).remove)


def channels_last_conv2d(module: nn.Module) -> SpeedHandle:
    """`channels_last_convs` for the Conv2d weights only."""
    return channels_last_convs(module, conv3d=False)


__all__ = [
    "GROUP_NORM_BY_CHANNELS_IN",
    "REPEATED_BLOCKS",
    "AccelerationReport",
    "CompiledBlocks",
    "accelerate",
    "backend_flags_kept",
    "channels_last_eagerly",
    "channels_last_conv2d",
    "channels_last_convs",
    "compile_blocks",
    "configure_cuda",
    "is_cuda",
    "keep_channels_last",
    "repeated_blocks",
]
