"""`a3d batch`: many assets through `a3d animate`'s chain, on every GPU of a machine, a job array or Ray.

Modules, each with one job:

* `manifest`: the jobs (a JSON Lines manifest or a glob), validated as `a3d animate` validates its options;
* `shard`: the deterministic slice of a job-array task (`--shard I/N`, Slurm's array variables);
* `worker`: `JobRunner`, which runs jobs one after another with one model cache (models built once);
* `scheduler`: the local driver — worker processes fed from one queue, dead workers replaced;
* `ray_backend`: the same workers as Ray actors;
* `results`: `results.jsonl`, one line per job, and the batch's exit code;
* `display`: the progress display (rich on a terminal, plain lines elsewhere);
* `run`: the whole batch from its options (`run_batch`).

Run folders are the only state: each job is `a3d_cli.stages.animate.run` on its own run folder, so a batch
re-run does only what is missing, and any number of batches, array tasks or machines can share the same runs
folder on shared storage.
"""
