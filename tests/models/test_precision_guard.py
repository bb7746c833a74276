"""The finiteness guard: NaN or infinity from a network is a clear error, never silent output."""

from __future__ import annotations

import pytest
import torch

from a3d_cli.errors import PrecisionError
from a3d_cli.models.precision import check_finite, count_nonfinite


def poison(module: torch.nn.Module) -> None:
    """Make `module` return NaN/inf, as an fp16 overflow inside a network would."""
    module.register_forward_hook(lambda _m, _i, out: out * float("inf"))


def test_finite_values_pass_and_each_bad_value_is_counted() -> None:
    x = torch.randn(3, 4)
    check_finite(x, "x", torch.float16)
    x[0, 1], x[2, 3], x[1, 1] = float("nan"), float("inf"), -float("inf")
    assert count_nonfinite(x) == 3


@pytest.mark.parametrize("dtype,advice", [(torch.float16, "--dtype bf16"), (torch.bfloat16, "--dtype fp32")])
def test_error_names_the_precision_and_what_to_pass(dtype, advice) -> None:
    x = torch.zeros(10)
    x[4] = float("nan")
    with pytest.raises(PrecisionError) as info:
        check_finite(x, "MV-VDM latents", dtype)
    err = info.value
    assert err.exit_code == 2 and "1 NaN or infinite values of 10" in err.message
    assert advice in (err.hint or "")


def test_mvvdm_pipeline_refuses_nan_latents() -> None:
    from a3d_cli.models.freeinit import FreeInitConfig
    from a3d_cli.models.mvvdm import generate_mvvideo
    from a3d_cli.models.mvvdm.components import tiny_components
    from a3d_cli.models.mvvdm.sampling import SamplingConfig
    from a3d_cli.render.cameras import mvvdm_cameras

    comp = tiny_components(0)
    poison(comp.unet.conv_out)
    cfg = SamplingConfig(steps=1, num_frames=3, freeinit=FreeInitConfig(iters=1))
    views = torch.full((4, 3, 256, 256), 0.5)
    with pytest.raises(PrecisionError, match="MV-VDM latents"):
        generate_mvvideo(comp, views, mvvdm_cameras().c2w, "a fox runs", config=cfg, generator=torch.Generator())


def test_sv3d_pipeline_refuses_nan_latents() -> None:
    from a3d_cli.models.sv3d.cameras import static_orbit
    from a3d_cli.models.sv3d.pipeline import SV3DPipeline
    from a3d_cli.models.sv3d.testing import tiny_models

    models = tiny_models("sv3d_p", seed=0)
    poison(models.unet.conv_out)
    with pytest.raises(PrecisionError, match="SV3D latents"):
        SV3DPipeline(models)(torch.rand(3, 16, 16), static_orbit(), num_steps=1, seed=0)
