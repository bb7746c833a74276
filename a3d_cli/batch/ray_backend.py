"""`a3d batch --ray auto|ADDRESS`: the same workers as Ray actors, the queue as Ray tasks.

Each actor holds one `JobRunner` (so one model cache: every model is built once per actor) and asks Ray for
one GPU, or one CPU when the batch runs on CPUs; Ray pins the GPU with CUDA_VISIBLE_DEVICES. Jobs are
method calls handed to whichever actor is idle (`ray.util.ActorPool`), so a slow asset holds up only its
own actor. The driver (the `a3d batch` process) writes `results.jsonl`, exactly as the local driver does.

Ray is an optional extra: `pip install 'a3d[ray]'`. The cluster's nodes need a3d installed and the run
folders, inputs and logs on storage every node sees at the same paths.

`auto` connects to the cluster named by RAY_ADDRESS or started on this machine (`ray start --head`), and
starts a private local instance when there is none. When a3d is imported from a source folder rather than
an installed package, that folder is put on the actors' PYTHONPATH, so they run the same code as the driver.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from a3d_cli.batch.manifest import Job
from a3d_cli.batch.results import JobRecord
from a3d_cli.batch.scheduler import Listener, Outcome, retry_or_record
from a3d_cli.errors import OptionError


def import_ray() -> Any:
    """The `ray` module, or an OptionError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise OptionError(
            "--ray needs Ray, which is not installed.", hint="pip install 'a3d[ray]' (or run without --ray)."
        ) from None
    return ray


def _runtime_env() -> dict[str, Any]:
    import a3d_cli

    root = Path(a3d_cli.__file__).resolve().parents[1]
    if "site-packages" in root.parts or "dist-packages" in root.parts:
        return {}
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


class _Actor:
    """The Ray actor body: one `JobRunner` for its life."""

    def __init__(self, device: str, seed: int, worker: int, keep_models: bool = True) -> None:
        from a3d_cli.batch.worker import JobRunner

        self.runner = JobRunner(device=device, seed=seed, worker=worker, capture_output=False, keep_models=keep_models)

    def run(self, job: Job, attempt: int) -> JobRecord:
        return self.runner.run(job, attempt)

    def builds(self) -> dict[str, int]:
        """How many times this actor built each model (one per model when the cache works)."""
        return dict(self.runner.cache.builds)


def connect(address: str) -> tuple[Any, bool]:
    """Connect to (or start) Ray; returns the module and whether this call initialised it."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    kwargs: dict[str, Any] = {"runtime_env": _runtime_env(), "include_dashboard": False, "log_to_driver": False}
    if address != "auto":
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise OptionError(
            f"Cannot reach the Ray cluster at {address!r} ({exc}).",
            hint="Check RAY_ADDRESS / the head node, or use --ray auto on this machine.",
        ) from exc
    return ray, True


def run_ray(
    jobs: Sequence[Job],
    address: str,
    device: str,
    workers: int | None,
    seed: int,
    retries: int,
    sink: Callable[[JobRecord], None],
    listener: Listener | None = None,
    keep_models: bool = True,
) -> tuple[Outcome, list[dict[str, int]]]:
    """Run `jobs` on Ray actors; returns the outcome and each actor's model-build counts.

    Args:
        device: "cpu", or "cuda" for one GPU per actor; "auto" picks cuda when the cluster has GPUs.
        workers: number of actors (default: one per GPU of the cluster, or 1 on CPUs).
        keep_models: actors keep the diffusion models between jobs (see `JobRunner`).
    """
    listener = listener or Listener()
    ray, started = connect(address)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if device == "auto":
        device = "cuda" if gpus else "cpu"
    use_gpu = device.startswith("cuda")
    if use_gpu and gpus == 0:
        raise OptionError("--device cuda with --ray, but the Ray cluster has no GPU.", hint="Use --device cpu.")
    count = max(1, min(workers or (gpus if use_gpu else 1), len(jobs)))
    options = {"num_gpus": 1} if use_gpu else {"num_cpus": 1}
    actor_cls = ray.remote(max_restarts=3)(_Actor).options(**options)
    actors = [actor_cls.remote("cuda" if use_gpu else "cpu", seed, i, keep_models) for i in range(count)]
    outcome = Outcome()
    pending: deque[tuple[Job, int]] = deque((job, 1) for job in jobs)
    idle = list(range(count))
    futures: dict[Any, tuple[int, Job, int]] = {}
    try:
        while pending or futures:
            while pending and idle:  # the queue: each job is a task on whichever actor is idle
                w = idle.pop(0)
                job, attempt = pending.popleft()
                futures[actors[w].run.remote(job, attempt)] = (w, job, attempt)
                listener.job_started(w, job, attempt)
            done, _ = ray.wait(list(futures), num_returns=1, timeout=1.0)
            listener.tick()
            if not done:
                continue
            w, job, attempt = futures.pop(done[0])
            idle.append(w)
            try:
                record: JobRecord = ray.get(done[0])
            except ray.exceptions.RayActorError as exc:  # the actor died with its job; Ray restarts it
                record = JobRecord(
                    job.source, job.run_dir, "failed", 1, job.log, attempts=attempt, worker=w, device=device,
                    error=f"the Ray actor running this job died ({type(exc).__name__})", retryable=True,
                )
            final = retry_or_record(job, record, retries, pending, outcome, sink)
            listener.job_finished(w, job, record, final)
        builds = ray.get([a.builds.remote() for a in actors])
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()  # disconnects (and stops the local instance this call started)
    return outcome, builds


__all__ = ["connect", "import_ray", "run_ray"]
