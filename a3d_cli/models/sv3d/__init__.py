"""SV3D (Stability AI's Stable Video 3D) on diffusers' SVD components.

Modules, one job each: `config` (sizes, full and tiny), `unet` (SVD UNet with a per-frame vector),
`conditioning` (vector sinusoids, CLIP input), `cameras` (SV3D angles ↔ a3d cameras, orbits),
`scheduler` (EDM Euler v-prediction), `convert` (official sgm keys ↔ ours), `loading` (build, load,
save in the official layout), `pipeline` (the sampling recipe), `testing` (tiny checkpoints for tests).
Import the submodules directly; this package imports nothing heavy.
"""
