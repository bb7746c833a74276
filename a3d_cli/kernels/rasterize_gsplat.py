"""Thin wrapper over `gsplat.rasterization` (CUDA), with the same inputs and outputs as the reference.

The wrapper owns the boundary: it broadcasts the leading batch dims (gsplat wants them equal on every
tensor), makes the inputs contiguous, asks for `packed=False` (unpacked projection, the layout the
reference mirrors) and splits gsplat's "RGB+ED" output into colours and depths. gsplat is imported on
the first call only, so importing `kernels` never compiles or loads CUDA code.
"""

from __future__ import annotations

import functools

from a3d_cli.kernels._common import RasterInputs, RasterOutput, unflatten_output


@functools.lru_cache(maxsize=1)
def gsplat_available() -> bool:
    """True when CUDA is present and gsplat's extension loads (JIT-compiling it on first use).

    Why a probe: on a CPU-only machine gsplat imports fine but any CUDA call fails (ImportError when a
    stub nvcc is on PATH, AttributeError without one), so backends are chosen by this probe and never
    by trying a call. The first probe on a GPU machine waits while gsplat builds its kernels (once):
    `a3d_cli.kernels.gsplat_build` picks the cache folder first and says so once when it will build.
    """
    import torch

    from a3d_cli.kernels.gsplat_build import announce_build

    if not torch.cuda.is_available():
        return False
    announce_build()
    try:
        from gsplat.cuda._backend import _C  # noqa: PLC0415 - lazily, it may compile
    except Exception:  # noqa: BLE001 - any failure to load the extension means "not available"
        return False
    return _C is not None


def rasterize_gsplat_checked(
    x: RasterInputs, *, near_plane: float = 0.01, far_plane: float = 1e10, eps2d: float = 0.3
) -> RasterOutput:
    """gsplat backend of `a3d_cli.kernels.rasterize`, on inputs already checked and flattened by `check_inputs`."""
    import torch

    if not x.means.is_cuda:
        raise ValueError(
            f"the gsplat backend needs CUDA tensors, got tensors on {x.means.device}; "
            "use backend='torch' or move the inputs to a GPU"
        )
    if x.means.dtype != torch.float32:
        raise ValueError(f"the gsplat backend needs float32 tensors, got {x.means.dtype}; use backend='torch'")
    if not gsplat_available():
        raise RuntimeError(
            "gsplat's CUDA extension is not available (gsplat missing or it failed to compile); "
            "use backend='torch', or run `python -c \"from gsplat.cuda._backend import _C\"` "
            "with VERBOSE=1 to see the build error"
        )
    from gsplat import rasterization  # noqa: PLC0415 - lazily, CUDA only

    # A call without batch dims goes to gsplat without them too, so its meta["means2d"] is [C, N, 2]
    # (what its densification strategies expect) and is the tensor the render depends on.
    single = not x.batch_shape
    pick = (lambda t: t[0]) if single else (lambda t: t)  # noqa: E731
    colors, alphas, meta = rasterization(
        pick(x.means).contiguous(),
        pick(x.quats).contiguous(),
        pick(x.scales).contiguous(),
        pick(x.opacities).contiguous(),
        pick(x.colors).contiguous(),
        pick(x.viewmats).contiguous(),
        pick(x.Ks).contiguous(),
        x.width,
        x.height,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        sh_degree=x.sh_degree,
        packed=False,
        backgrounds=None if x.backgrounds is None else pick(x.backgrounds).contiguous(),
        render_mode=x.render_mode,
        rasterize_mode="classic",
    )  # colors: [(B,) C, H, W, D(+1)], alphas: [(B,) C, H, W, 1]
    if single:
        colors, alphas = colors[None], alphas[None]
    depths = None
    if x.render_mode == "RGB+ED":
        colors, depths = colors[..., :-1], colors[..., -1:]
    out = RasterOutput(colors=colors, alphas=alphas, depths=depths, meta=meta if single else None)
    return unflatten_output(out, x.batch_shape)
