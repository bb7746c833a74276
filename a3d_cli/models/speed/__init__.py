"""Speed tricks for the diffusion networks: each exact up to rounding, each removable, each measured.

| trick | module | applied by |
|---|---|---|
| CUDA backend flags (torch only, no diffusers import) | `flags` | `configure_cuda`, `backend_flags_kept` (every stage) |
| regional `torch.compile`, channels-last blocks | `acceleration` | `accelerate(...)` |
| attention shortcuts (one-token context, short sequences, wide heads) | `attention` | `use_shortcut_attention` |
| one CUDA graph per sampling step | `cuda_graph` | `GraphedFunction` (mvvideo's guided call) |
| fused GEGLU (one GEMM) | `geglu` | `use_fused_geglu` / `accelerate(fused_geglu=True)` |
| GroupNorm by channels (channels-last friendly) | `group_norm` | `keep_channels_last` |
| nearest ×2 upsampling + 3×3 conv as one 2×2 conv | `upsampling` | `use_subpixel_upsampling` |

Every `use_*` / `keep_*` / `compile_blocks` / `configure_cuda` call and `accelerate` return a `SpeedHandle`
(`handles`) whose `remove()` undoes the change, as diffusers' hooks are removable. Each trick's measured gain
on its stage's total time, and the keep/drop decision, is in docs/PERF.md; variants kept only for A/B runs
live in `benchmarks/speed_variants.py`, not here.
"""
