"""Single-operation timings behind the SV3D UNet's forward: which formulation of each costly op is fastest.

Why: `profile_kernels.py --target orbit-unet` says where a forward's time goes by kernel family; this script
isolates the candidate ops at the exact shapes of one CFG-batched SV3D forward (2 × 21 frames of 72² latents
and the 36², 18², 9² levels) so each rewrite is judged by measurement before it enters the model:

- `ceil`: the two ceilings (device-to-device copy bandwidth, a large bf16 matrix product), to read the rest
  against.
- `tconv`: SVD's temporal convolution (kernel 3×1×1 over frames) as cuDNN Conv3d in NCDHW and in NDHWC, and
  as matrix products over frame-shifted frames-last activations ([B, F, H·W, C]: output frame f is
  x[f−1]·W₀ᵀ + x[f]·W₁ᵀ + x[f+1]·W₂ᵀ + b), either one GEMM over the three shifted copies concatenated on
  channels or three GEMMs accumulated into frame-shifted views of the output.
- `attn`: spatial self-attention through each SDPA backend (flash, cuDNN, memory-efficient).
- `geglu`: the feed-forward's GEGLU: the projection GEMM alone, eager GEMM + gelu·mul, compiled, and the fused
  kernel of `a3d_cli.kernels.geglu_gluon` (Hopper) with the schedule it picks and with each schedule that can take the shape.
- `dtype`: what fp16 and bf16 products sustain when the GPU runs at its power limit, as the sampling loop does:
  each product is repeated for `HOLD_S` seconds per precision, fp16 and bf16 taken in turn twice, with the SM
  clock and the power read from `nvidia-smi` while it runs. Short timings run below the limit and cannot show
  the difference (docs/PERF.md, Precision, "fp16 and bf16 at the power cap").

Every variant is checked against the first (plain) one on the same random inputs (relative L2 error) before
it is timed. Times are medians of CUDA-event timings after warm-up, one call at a time, so they include the
host's launch work wherever it outlasts the GPU's (for the fused GEGLU kernel, encoding its TMA descriptors:
about 0.15–0.2 ms, which CUDA-graph replay removes in the stage; docs/PERF.md, orbit, eighth pass).

Usage (GPU machine): python benchmarks/bench_orbit_ops.py --sections ceil,tconv,attn,geglu,dtype --out ops.json
"""

# ruff: noqa: B023  (every lambda here is timed inside the loop iteration that defines it)
from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LEVELS = ((320, 72), (640, 36), (1280, 18), (1280, 9))
"""(channels, latent side) of the SV3D UNet's four resolution levels at 576² frames."""
BATCH, FRAMES = 2, 21
"""CFG batch (conditional + unconditional) and SV3D's frame count."""


def bench(fn: Callable[[], object], warmup: int = 3, reps: int = 20) -> float:
    """Median milliseconds of `fn` by CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def timed_row(section: str, what: str, level: tuple[int, int], ms: float, flop: float, err: float) -> dict:
    """One result row: the op, the UNet level (channels, latent side), time, achieved rate and error."""
    c, side = level
    return {"section": section, "what": what, "C": c, "side": side, "ms": ms, "TFLOP/s": flop / ms / 1e9, "err": err}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30))


def section_ceil(rows: list[dict]) -> None:
    n = 2**30
    src = torch.randn(n // 2, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    ms = bench(lambda: dst.copy_(src))
    rows.append({"section": "ceil", "what": "copy 1 GiB bf16", "ms": ms, "TB/s": 2 * src.numel() * 2 / ms / 1e9})
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = bench(lambda: a @ b)
    rows.append({"section": "ceil", "what": "bf16 GEMM 8192³", "ms": ms, "TFLOP/s": 2 * 8192**3 / ms / 1e9})


def temporal_conv_frames_last(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, method: str) -> torch.Tensor:
    """The 3×1×1 temporal convolution on x [B, F, N, C] → [B, F, N, O] as GEMMs ("unfold" or "shifted")."""
    w = weight.reshape(weight.shape[0], weight.shape[1], 3)  # [O, C, tap]
    b, f, n, c = x.shape
    if method == "unfold":
        padded = F.pad(x, (0, 0, 0, 0, 1, 1))  # a zero frame before and after
        cols = torch.cat([padded[:, 0:f], padded[:, 1 : f + 1], padded[:, 2 : f + 2]], dim=-1)  # [B, F, N, 3C]
        return F.linear(cols, w.permute(0, 2, 1).reshape(w.shape[0], 3 * c), bias)
    o = w.shape[0]
    out = F.linear(x, w[:, :, 1], bias)  # centre tap, then the neighbours into frame-shifted output views
    if f > 1:
        prev_in, next_in = x[:, :-1].reshape(b, (f - 1) * n, c), x[:, 1:].reshape(b, (f - 1) * n, c)
        out[:, 1:].reshape(b, (f - 1) * n, o).baddbmm_(prev_in, w[:, :, 0].t().expand(b, c, o))
        out[:, :-1].reshape(b, (f - 1) * n, o).baddbmm_(next_in, w[:, :, 2].t().expand(b, c, o))
    return out


def section_tconv(rows: list[dict]) -> None:
    for c, side in LEVELS:
        hw = side * side
        w = torch.randn(c, c, 3, 1, 1, device="cuda", dtype=torch.bfloat16) * c**-0.5
        bias = torch.randn(c, device="cuda", dtype=torch.bfloat16)
        x_bfchw = torch.randn(BATCH, FRAMES, c, side, side, device="cuda", dtype=torch.bfloat16)
        x_ncdhw = x_bfchw.permute(0, 2, 1, 3, 4).contiguous()
        x_ndhwc = x_ncdhw.contiguous(memory_format=torch.channels_last_3d)
        w_cl = w.contiguous(memory_format=torch.channels_last_3d)
        x_bfnc = x_bfchw.permute(0, 1, 3, 4, 2).reshape(BATCH, FRAMES, hw, c).contiguous()
        flop = 2 * BATCH * FRAMES * hw * 3 * c * c
        ref = F.conv3d(x_ncdhw.float(), w.float(), bias.float(), padding=(1, 0, 0))
        ref_bfnc = ref.permute(0, 2, 3, 4, 1).reshape(BATCH, FRAMES, hw, c)
        variants = {
            "conv3d NCDHW": (lambda: F.conv3d(x_ncdhw, w, bias, padding=(1, 0, 0)), ref),
            "conv3d NDHWC": (lambda: F.conv3d(x_ndhwc, w_cl, bias, padding=(1, 0, 0)), ref),
            "conv3d from permuted BFCHW": (
                lambda: F.conv3d(x_bfchw.permute(0, 2, 1, 3, 4), w, bias, padding=(1, 0, 0)),
                ref,
            ),
            "GEMM, frame-shifted channels concatenated": (
                lambda: temporal_conv_frames_last(x_bfnc, w, bias, method="unfold"),
                ref_bfnc,
            ),
            "GEMM, three accumulated products": (
                lambda: temporal_conv_frames_last(x_bfnc, w, bias, method="shifted"),
                ref_bfnc,
            ),
        }
        for name, (fn, r) in variants.items():
            err = rel_err(fn(), r)
            ms = bench(fn)
            rows.append(timed_row("tconv", name, (c, side), ms, flop, err))


def section_attn(rows: list[dict]) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    for c, side in LEVELS[:3]:
        heads, n = c // 64, side * side
        q, k, v = (torch.randn(BATCH * FRAMES, heads, n, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        flop = 4 * BATCH * FRAMES * heads * n * n * 64
        ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float()) if n <= 1296 else None
        for name, backend in (
            ("flash", SDPBackend.FLASH_ATTENTION),
            ("cudnn", SDPBackend.CUDNN_ATTENTION),
            ("efficient", SDPBackend.EFFICIENT_ATTENTION),
        ):
            try:
                with sdpa_kernel([backend]):
                    out = F.scaled_dot_product_attention(q, k, v)
                    if ref is None:
                        ref = out.float()
                    err = rel_err(out, ref)
                    ms = bench(lambda: F.scaled_dot_product_attention(q, k, v))
                rows.append(timed_row("attn", name, (c, side), ms, flop, err))
            except RuntimeError as exc:
                rows.append({"section": "attn", "what": name, "C": c, "side": side, "error": str(exc)[:160]})


def fused_geglu_variants(k: int) -> list[tuple[str, Callable]]:
    """The fused kernel's (name, call) pairs for input width `k`: its own schedule, and the streamed one where
    it chose the resident one (the resident one cannot take wider inputs)."""
    if torch.cuda.get_device_capability() < (9, 0):
        return []
    import a3d_cli.kernels.geglu_gluon as fused

    if not fused.schedule_for(k).resident:
        return [("fused (streamed, its choice)", fused.geglu_gluon)]
    streamed = functools.partial(fused.geglu_gluon, schedule=fused.STREAMED)
    return [("fused (resident, its choice)", fused.geglu_gluon), ("fused (streamed)", streamed)]


def section_geglu(rows: list[dict]) -> None:
    for c, side in LEVELS:
        m = BATCH * FRAMES * side * side
        x = torch.randn(m, c, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(8 * c, c, device="cuda", dtype=torch.bfloat16) * c**-0.5
        b = torch.randn(8 * c, device="cuda", dtype=torch.bfloat16)

        def geglu(x: torch.Tensor = x, w: torch.Tensor = w, b: torch.Tensor = b) -> torch.Tensor:
            h, gate = F.linear(x, w, b).chunk(2, dim=-1)
            return h * F.gelu(gate)

        compiled = torch.compile(geglu, dynamic=False)
        ref = geglu(x.float(), w.float(), b.float())
        flop = 2 * m * c * 8 * c
        for name, fn in (
            ("GEMM only", lambda: F.linear(x, w, b)),
            ("GEMM + gelu·mul eager", geglu),
            ("GEMM + gelu·mul compiled", compiled),
            *[(name, lambda f=f: f(x, w, b)) for name, f in fused_geglu_variants(c)],
        ):
            out = fn()
            err = rel_err(out, ref) if out.shape == ref.shape else float("nan")
            rows.append(timed_row("geglu", name, (c, side), bench(fn), flop, err))


SUSTAINED_SHAPES = ((8192, 8192, 8192), (BATCH * FRAMES * 72 * 72, 320, 2560), (BATCH * FRAMES * 36 * 36, 640, 5120))
"""(M, K, N) of the sustained products: a large square one, and the 72² and 36² GEGLU projections."""


CLOCK_QUERY = ["nvidia-smi", "--query-gpu=clocks.sm,power.draw", "--format=csv,noheader,nounits", "--id=0"]
"""GPU 0's SM clock (MHz) and power draw (W), one CSV line per reading."""
SETTLE_SAMPLES = 4
"""Readings left out at the start of a hold (one second at 250 ms), while the power controller settles."""
HOLD_S = 5.0
"""Seconds each sustained product runs: long enough for the clock to settle at the power limit."""


def parse_clock_line(line: str) -> tuple[float, float] | None:
    """(SM clock in MHz, power in W) from one line of CLOCK_QUERY's output; None for "[N/A]" or garbage."""
    try:
        clock, power = (float(v) for v in line.strip().split(","))
    except ValueError:
        return None
    return clock, power


class ClockSampler:
    """`nvidia-smi` in a background process, reading the clock and power every 250 ms while a hold runs.

    A separate process, so that reading never stalls the host thread that keeps the GPU fed. Where
    `nvidia-smi` is missing, `samples` stays empty.
    """

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> ClockSampler:
        try:
            self._proc = subprocess.Popen([*CLOCK_QUERY, "-lms", "250"], stdout=subprocess.PIPE, text=True)
        except OSError:
            self._proc = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        out, _ = self._proc.communicate(timeout=10)
        readings = [r for r in map(parse_clock_line, out.splitlines()) if r is not None]
        self.samples = readings[SETTLE_SAMPLES:]


def sustained_rate(fn: Callable[[], object], hold_s: float, batch: int = 20) -> tuple[float, list[tuple[float, float]]]:
    """Milliseconds per call of `fn` repeated for `hold_s` seconds, and the (clock, power) readings meanwhile.

    The host queues `batch` calls at a time and waits for them, so the queue stays short and the GPU never
    waits for more than the host's few microseconds of launching.
    """
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    calls = 0
    with ClockSampler() as sampler:
        t0 = time.perf_counter()
        start.record()
        while time.perf_counter() - t0 < hold_s:
            for _ in range(batch):
                fn()
            calls += batch
            torch.cuda.synchronize()
        end.record()
        end.synchronize()
    return start.elapsed_time(end) / calls, sampler.samples


def sustained_gemm_row(m: int, k: int, n: int, dtype: torch.dtype, hold_s: float) -> dict:
    """The rate, clock and power of an [M, K]·[K, N] product in `dtype` held for `hold_s` seconds."""
    a = torch.randn(m, k, device="cuda", dtype=dtype)
    b = torch.randn(k, n, device="cuda", dtype=dtype) * k**-0.5
    ms, samples = sustained_rate(lambda: a @ b, hold_s)
    row = {"ms": ms, "TFLOP/s": 2 * m * k * n / ms / 1e9}
    if samples:
        row["sm_clock_mhz"] = statistics.median(s[0] for s in samples)
        row["power_w"] = statistics.median(s[1] for s in samples)
    return row


def section_dtype(rows: list[dict], hold_s: float = HOLD_S) -> None:
    for m, k, n in SUSTAINED_SHAPES:
        for round_ in (1, 2):
            for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
                row = {"section": "dtype", "what": f"{name} GEMM {m}×{k}×{n}, held {hold_s:g} s (round {round_})"}
                rows.append(row | sustained_gemm_row(m, k, n, dtype, hold_s))
                torch.cuda.empty_cache()
                time.sleep(2.0)  # let the clock recover, so that each hold starts alike


SECTIONS = {
    "ceil": section_ceil,
    "tconv": section_tconv,
    "attn": section_attn,
    "geglu": section_geglu,
    "dtype": section_dtype,
}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_orbit_ops.py times CUDA kernels: run it on the GPU machine")
    torch.backends.cuda.matmul.allow_tf32 = False
    meta = {"date": dt.date.today().isoformat(), "device": torch.cuda.get_device_name(), "torch": torch.__version__}
    rows: list[dict] = []
    for name in args.sections.split(","):
        SECTIONS[name](rows)
        if args.out:
            args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    for r in rows:
        rate = f"{r['TFLOP/s']:.0f} TFLOP/s" if "TFLOP/s" in r else f"{r.get('TB/s', 0):.2f} TB/s"
        where = f"C={r['C']} {r['side']}²" if "C" in r else ""
        if "error" in r:
            print(f"| {r['section']} | {r['what']} | {where} | error: {r['error']} |")
        else:
            err = f" | err {r['err']:.1e}" if "err" in r else ""
            clock = f" | {r['sm_clock_mhz']:.0f} MHz, {r['power_w']:.0f} W" if "sm_clock_mhz" in r else ""
            print(f"| {r['section']} | {r['what']} | {where} | {r['ms']:.3f} ms | {rate}{err}{clock} |")
    return rows


if __name__ == "__main__":
    main()
