"""The SV3D UNet: diffusers' SVD UNet with a per-frame vector condition.

Why a subclass: SV3D's UNet has exactly the SVD layout and weights, but its "vector" condition (sgm `y`,
added to the time embedding through `label_emb`) has one row per frame: sv3d_p puts each frame's camera
(polar, azimuth) there. diffusers' SVD forward embeds one row of "added time ids" per video and repeats it
over frames, which cannot express that. `SV3DUNet` keeps every module (and so the state-dict layout) of
`UNetSpatioTemporalConditionModel` and changes only the forward: it takes the already-embedded per-frame
vector ([B, F, adm_in], see `conditioning.sv3d_vector`) and adds `add_embedding(vector)` to each frame's
time embedding, as sgm's `VideoUNet` does with `emb = time_embed(t) + label_emb(y)` per (batch, frame) row.
Both variants use this class: sv3d_u's vector is the 256-d cond_aug sinusoid alone.

The only other change is numerical: every resnet GroupNorm (spatial and temporal) gets eps = 1e-5, the
value of Stability's `normalization()` (sgm `GroupNorm32(32, C)`, i.e. `nn.GroupNorm`'s default), where
diffusers' spatio-temporal down/up blocks hard-code 1e-6 (`RESNET_NORM_EPS`, `use_reference_norm_eps`).
The transformers' input GroupNorms keep 1e-6, as sgm's `SpatialTransformer` (`Normalize`) has.

Examples:
    >>> unet = SV3DUNet(**SV3DConfig.tiny().unet.diffusers_kwargs("sv3d_p", 21, 16))
    >>> out = unet(torch.randn(1, 21, 8, 16, 16), torch.tensor(0.5), torch.randn(1, 1, 32),
    ...            torch.randn(1, 21, 1280)).sample                                    # [1, 21, 4, 16, 16]
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.utils import BaseOutput
from torch import Tensor, nn

#: GroupNorm eps of every resnet in Stability's VideoUNet (sgm `normalization()` → `nn.GroupNorm` default).
RESNET_NORM_EPS = 1e-5


def use_reference_norm_eps(unet: nn.Module) -> int:
    """Set `RESNET_NORM_EPS` on every GroupNorm inside a resnet of an SVD-layout UNet.

    diffusers' `CrossAttnDownBlockSpatioTemporal`, `UpBlockSpatioTemporal` and
    `CrossAttnUpBlockSpatioTemporal` build their `SpatioTemporalResBlock`s with eps = 1e-6 (spatial and
    temporal), while the mid and last down block use 1e-5; sgm uses 1e-5 in all of them.

    Returns:
        How many GroupNorms were visited (88 for the full-size UNet).
    """
    count = 0
    for name, module in unet.named_modules():
        if ".resnets." in f".{name}." and isinstance(module, nn.GroupNorm):
            module.eps = RESNET_NORM_EPS
            count += 1
    return count


@dataclass
class SV3DUNetOutput(BaseOutput):
    """Output of `SV3DUNet.forward`.

    Attributes:
        sample: [B, F, C_out, h, w] the v-prediction for every frame.
    """

    sample: Tensor


class SV3DUNet(UNetSpatioTemporalConditionModel):
    """`UNetSpatioTemporalConditionModel` whose vector condition is per frame (same modules and weights).

    Construct it with the parent's arguments; `projection_class_embeddings_input_dim` is the vector width
    (256 for sv3d_u, 1280 for sv3d_p).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        use_reference_norm_eps(self)

    # diffusers reads the constructor's parameters to build configs: show it the parent's
    __init__.__signature__ = inspect.signature(UNetSpatioTemporalConditionModel.__init__)  # type: ignore[attr-defined]

    def forward(  # type: ignore[override]
        self,
        sample: Tensor,  # [B, F, C_in, h, w] noisy latent (already scaled by c_in) ‖ conditioning latent
        timestep: Tensor | float,  # scalar or [B]: EDM c_noise = 0.25·ln σ
        encoder_hidden_states: Tensor,  # [B, 1, D] CLIP image embedding (zeros for the unconditional row)
        added_cond: Tensor,  # [B, F, P] per-frame vector (conditioning.sv3d_vector)
        return_dict: bool = True,
    ) -> SV3DUNetOutput | tuple[Tensor]:
        """Predict v for every frame.

        Returns:
            `SV3DUNetOutput` (or a 1-tuple with `return_dict=False`): sample [B, F, C_out, h, w].
        """
        b, f = sample.shape[:2]
        p = self.add_embedding.linear_1.in_features
        if added_cond.shape != (b, f, p):
            raise ValueError(f"added_cond must be [B={b}, F={f}, {p}], got {list(added_cond.shape)}")
        if encoder_hidden_states.shape[0] != b:
            raise ValueError(f"encoder_hidden_states must have batch {b}, got {list(encoder_hidden_states.shape)}")
        factor = 2**self.num_upsamplers
        if sample.shape[-1] % factor or sample.shape[-2] % factor:
            raise ValueError(f"latent height and width must be multiples of {factor}, got {list(sample.shape[-2:])}")

        # 1. time + per-frame vector embedding, one row per (batch, frame)
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1).expand(b) if t.numel() == 1 else t.reshape(b)
        t_emb = self.time_proj(t).to(sample.dtype)  # [B, C0] (sinusoids are computed in fp32)
        emb = self.time_embedding(t_emb)  # [B, E]
        emb = emb.repeat_interleave(f, dim=0)  # [B·F, E]
        vec = added_cond.reshape(b * f, p).to(emb.dtype)  # [B·F, P]
        emb = emb + self.add_embedding(vec)  # [B·F, E]
        context = encoder_hidden_states.repeat_interleave(f, dim=0)  # [B·F, 1, D]
        indicator = torch.zeros(b, f, dtype=sample.dtype, device=sample.device)  # all frames are video frames

        # 2. down path, keeping every skip
        h = self.conv_in(sample.flatten(0, 1))  # [B·F, C0, h, w]
        skips: list[Tensor] = [h]
        for block in self.down_blocks:
            kwargs = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
            h, block_skips = block(hidden_states=h, temb=emb, image_only_indicator=indicator, **kwargs)
            skips.extend(block_skips)

        # 3. middle
        h = self.mid_block(hidden_states=h, temb=emb, encoder_hidden_states=context, image_only_indicator=indicator)

        # 4. up path, each block consuming as many skips as it has resnets
        for block in self.up_blocks:
            n = len(block.resnets)
            block_skips, skips = tuple(skips[-n:]), skips[:-n]
            kwargs = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
            h = block(
                hidden_states=h, res_hidden_states_tuple=block_skips, temb=emb, image_only_indicator=indicator, **kwargs
            )

        # 5. output head, back to [B, F, C_out, h, w]
        h = self.conv_out(self.conv_act(self.conv_norm_out(h)))  # [B·F, C_out, h, w]
        out = h.reshape(b, f, *h.shape[1:])
        return SV3DUNetOutput(sample=out) if return_dict else (out,)
