"""The MV-VDM UNet: MVDream SD1.5 4-view + AnimateDiff v2 motion modules + Animate3D's adapters, on diffusers.

Built from diffusers' motion-UNet blocks (`CrossAttnDownBlockMotion`, `DownBlockMotion`,
`UNetMidBlockCrossAttnMotion`, `UpBlockMotion`, `CrossAttnUpBlockMotion`), so parameter names are those of
diffusers' `UNetMotionModel` — the names the released Animate3D files use — plus:

* ``camera_embedding`` (`TimestepEmbedding(16, 1280)`): MVDream's camera MLP, added to the time embedding;
* ``encoder_hid_proj.image_projection_layers.0`` (`ImageProjection`): the IP-Adapter SD1.5 projection;
* the attention processors of `attention.py`, whose weights live under ``…attn1.processor.*`` /
  ``…attn2.processor.*`` exactly as in Animate3D's checkpoints;
* no ``transformer_blocks.0.pos_embed`` in the motion modules: the temporal encoding moved into the
  processors (``…processor.time_pos_embed.pe``), as Animate3D does.

The forward pass is written here (not inherited) so the layout is explicit: a latent video batch
``[B, V, F, C, H, W]`` is flattened to rows ordered (b, v, f) for the 2D layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.attention_processor import Attention, IPAdapterAttnProcessor2_0
from diffusers.models.embeddings import ImageProjection, MultiIPAdapterImageProjection, TimestepEmbedding, Timesteps
from diffusers.models.unets.unet_motion_model import (
    CrossAttnDownBlockMotion,
    CrossAttnUpBlockMotion,
    DownBlockMotion,
    UNetMidBlockCrossAttnMotion,
    UpBlockMotion,
)
from torch import Tensor, nn

from a3d_cli.models.mvvdm.attention import MVDreamI2VAttnProcessor, SpatioTemporalAttnProcessor, VideoLayout
from a3d_cli.models.mvvdm.config import MVVDMConfig


@dataclass(frozen=True)
class MVVDMOutput:
    """UNet output.

    Attributes:
        sample: [B, V, F, C, H, W] predicted noise.
    """

    sample: Tensor


class MVVDMUNet(nn.Module):
    """Noise predictor of MV-VDM for B videos of V views × F frames.

    Args:
        config: sizes; `MVVDMConfig()` is the released model, `MVVDMConfig.tiny()` the test size.

    Examples:
        >>> cfg = MVVDMConfig.tiny()
        >>> unet = MVVDMUNet(cfg).eval()
        >>> x = torch.randn(1, 4, 3, 4, 8, 8)               # [B, V, F, C, H, W]
        >>> eps = unet(x, 500, torch.randn(1, 7, 32), torch.randn(1, 4, 16), torch.randn(1, 4, 16)).sample
        >>> eps.shape
        torch.Size([1, 4, 3, 4, 8, 8])
    """

    def __init__(self, config: MVVDMConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        chans = c.block_out_channels
        temb = chans[0] * 4
        act = "silu"
        self.layout = VideoLayout(num_views=c.num_views)

        # 1. input, time, camera, image projection
        self.conv_in = nn.Conv2d(c.in_channels, chans[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(chans[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(chans[0], temb, act_fn=act)
        self.camera_embedding = TimestepEmbedding(c.camera_dim, temb, act_fn=act)
        self.encoder_hid_proj = MultiIPAdapterImageProjection(
            [ImageProjection(c.image_embed_dim, c.cross_attention_dim, c.image_tokens)]
        )

        # 2. down: cross-attention levels, then one level of resnets + motion modules only
        motion = {"temporal_num_attention_heads": c.motion_heads, "temporal_max_seq_length": c.motion_max_seq_length}
        common = {
            "temb_channels": temb,
            "resnet_eps": c.norm_eps,
            "resnet_act_fn": act,
            "resnet_groups": c.norm_num_groups,
        }
        self.down_blocks = nn.ModuleList()
        out_ch = chans[0]
        for i, ch in enumerate(chans):
            in_ch, out_ch = out_ch, ch
            last = i == len(chans) - 1
            if not last:
                block: nn.Module = CrossAttnDownBlockMotion(
                    in_channels=in_ch,
                    out_channels=out_ch,
                    num_layers=c.layers_per_block,
                    num_attention_heads=c.attention_heads,
                    cross_attention_dim=c.cross_attention_dim,
                    add_downsample=True,
                    downsample_padding=1,
                    **common,
                    **motion,
                )
            else:
                block = DownBlockMotion(
                    in_channels=in_ch,
                    out_channels=out_ch,
                    num_layers=c.layers_per_block,
                    add_downsample=False,
                    downsample_padding=1,
                    **common,
                    **motion,
                )
            self.down_blocks.append(block)

        # 3. mid
        self.mid_block = UNetMidBlockCrossAttnMotion(
            in_channels=chans[-1],
            num_layers=1,
            num_attention_heads=c.attention_heads,
            cross_attention_dim=c.cross_attention_dim,
            output_scale_factor=1.0,
            **common,
            **motion,
        )

        # 4. up: the mirror image, one more layer per level, skip connections from the down path
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(chans))
        out_ch = rev[0]
        for i in range(len(rev)):
            prev_out, out_ch = out_ch, rev[i]
            in_ch = rev[min(i + 1, len(rev) - 1)]
            upsample = i < len(rev) - 1
            if i == 0:
                block = UpBlockMotion(
                    in_channels=in_ch,
                    prev_output_channel=prev_out,
                    out_channels=out_ch,
                    resolution_idx=i,
                    num_layers=c.layers_per_block + 1,
                    add_upsample=upsample,
                    **common,
                    **motion,
                )
            else:
                block = CrossAttnUpBlockMotion(
                    in_channels=in_ch,
                    out_channels=out_ch,
                    prev_output_channel=prev_out,
                    resolution_idx=i,
                    num_layers=c.layers_per_block + 1,
                    num_attention_heads=c.attention_heads,
                    cross_attention_dim=c.cross_attention_dim,
                    add_upsample=upsample,
                    **common,
                    **motion,
                )
            self.up_blocks.append(block)

        # 5. output
        self.conv_norm_out = nn.GroupNorm(c.norm_num_groups, chans[0], eps=c.norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(chans[0], c.out_channels, kernel_size=3, padding=1)

        self._install_processors()
        self.init_adapters_from_base()

    # ------------------------------------------------------------------ processors
    def attention_layers(self) -> dict[str, Attention]:
        """Every diffusers `Attention` module by its parameter-name prefix."""
        return {name: m for name, m in self.named_modules() if isinstance(m, Attention)}

    def _install_processors(self) -> None:
        """Put Animate3D's processors on every attention; drop the motion modules' own frame encoding."""
        c = self.config
        for name, attn in self.attention_layers().items():
            width = attn.to_q.out_features
            if ".motion_modules." in f".{name}":
                attn.set_processor(SpatioTemporalAttnProcessor(width, self.layout, c.motion_max_seq_length))
            elif name.endswith("attn1"):
                attn.set_processor(MVDreamI2VAttnProcessor(width, self.layout))
            elif name.endswith("attn2"):
                attn.set_processor(
                    IPAdapterAttnProcessor2_0(
                        width, c.cross_attention_dim, num_tokens=(c.image_tokens,), scale=c.ip_scale
                    )
                )
            else:  # pragma: no cover - the blocks above make no other attention
                raise RuntimeError(f"unexpected attention layer {name}")
        for name, module in self.named_modules():
            if name.endswith("motion_modules") and isinstance(module, nn.ModuleList):
                for mm in module:
                    for blk in mm.transformer_blocks:
                        blk.pos_embed = None  # the processors add the frame encoding (Animate3D's layout)

    @torch.no_grad()
    def init_adapters_from_base(self) -> None:
        """Initialise the I2V branch as Animate3D does before training: `to_q_i2v` = `to_q`, `to_out_i2v` = 0.

        With a zero `to_out_i2v` the model equals MVDream + AnimateDiff (+ spatial branches). Loading the
        released Animate3D weights overwrites both.
        """
        for attn in self.attention_layers().values():
            proc = attn.processor
            if isinstance(proc, MVDreamI2VAttnProcessor) and proc.to_q_i2v.weight.device.type != "meta":
                proc.to_q_i2v.weight.copy_(attn.to_q.weight)
                proc.to_out_i2v.weight.zero_()
                proc.to_out_i2v.bias.zero_()

    # ------------------------------------------------------------------ forward
    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def forward(
        self,
        sample: Tensor,  # [B, V, F, C, H, W]
        timestep: Tensor | float | int,  # scalar or [B]
        text_embeds: Tensor,  # [B, L, D] one prompt per video, shared by its views and frames
        image_embeds: Tensor,  # [B, V, E] one CLIP image embedding per view (zeros = unconditional)
        cameras: Tensor,  # [B, V, 16] or [V, 16] MVDream camera inputs (see cameras.py)
    ) -> MVVDMOutput:
        """Predict the noise of every frame of every view.

        Returns:
            MVVDMOutput with sample [B, V, F, C, H, W].
        """
        c = self.config
        if sample.ndim != 6:
            raise ValueError(f"sample must be [B, V, F, C, H, W], got {list(sample.shape)}")
        b, v, f, ch, h, w = sample.shape
        if v != c.num_views:
            raise ValueError(f"the model attends across {c.num_views} views, got {v}")
        if f > c.motion_max_seq_length:
            raise ValueError(f"at most {c.motion_max_seq_length} frames, got {f}")
        factor = 2 ** (c.num_levels - 1)
        if h % factor or w % factor:
            raise ValueError(f"latent size {h}×{w} must be a multiple of {factor}")
        if cameras.ndim == 2:
            cameras = cameras.expand(b, -1, -1)
        if text_embeds.shape[0] != b or image_embeds.shape[:2] != (b, v) or cameras.shape[:2] != (b, v):
            raise ValueError(
                f"batch mismatch: sample {list(sample.shape)}, text_embeds {list(text_embeds.shape)}, "
                f"image_embeds {list(image_embeds.shape)}, cameras {list(cameras.shape)}"
            )
        self.layout.set(b, f, h, w, c.num_levels)
        dtype = self.dtype

        # 1. time + camera embedding, one per (b, v), repeated over frames
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1).expand(b) if t.numel() == 1 else t.reshape(b)
        t_emb = self.time_proj(t).to(dtype)  # [B, C0]
        emb = self.time_embedding(t_emb)  # [B, T]
        emb = emb[:, None] + self.camera_embedding(cameras.reshape(b * v, -1).to(dtype)).reshape(b, v, -1)  # [B, V, T]
        emb = emb[:, :, None].expand(b, v, f, emb.shape[-1]).reshape(b * v * f, -1)  # [B·V·F, T]

        # 2. text tokens per row; IP-Adapter tokens per view, repeated over frames
        txt = text_embeds.to(dtype)[:, None, None].expand(b, v, f, *text_embeds.shape[1:])
        txt = txt.reshape(b * v * f, *text_embeds.shape[1:])  # [B·V·F, L, D]
        ip = self.encoder_hid_proj([image_embeds.reshape(b * v, 1, -1).to(dtype)])[0]  # [B·V, 1, K, D]
        ip = ip.reshape(b, v, 1, *ip.shape[-2:]).expand(b, v, f, *ip.shape[-2:]).reshape(b * v * f, *ip.shape[-2:])
        context = (txt, [ip])  # what IPAdapterAttnProcessor2_0 expects

        # 3. UNet on rows (b, v, f)
        x = self.conv_in(sample.reshape(b * v * f, ch, h, w).to(dtype))  # [B·V·F, C0, H, W]
        skips: tuple[Tensor, ...] = (x,)
        for block in self.down_blocks:
            if isinstance(block, CrossAttnDownBlockMotion):
                x, res = block(hidden_states=x, temb=emb, encoder_hidden_states=context, num_frames=f)
            else:
                x, res = block(hidden_states=x, temb=emb, num_frames=f)
            skips += res
        x = self.mid_block(x, emb, encoder_hidden_states=context, num_frames=f)
        for block in self.up_blocks:
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            if isinstance(block, CrossAttnUpBlockMotion):
                x = block(
                    hidden_states=x, res_hidden_states_tuple=res, temb=emb, encoder_hidden_states=context, num_frames=f
                )
            else:
                x = block(hidden_states=x, res_hidden_states_tuple=res, temb=emb, num_frames=f)
        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))  # [B·V·F, C, H, W]
        return MVVDMOutput(sample=x.reshape(b, v, f, c.out_channels, h, w))
