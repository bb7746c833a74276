"""`a3d batch` without running jobs: manifest validation, option mapping, sharding, results, the model cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from helpers import REPO, a3d_app
from helpers import blob_mesh as make_mesh
from typer.testing import CliRunner

from a3d_cli.batch.manifest import ManifestError, build_jobs, glob_specs, read_manifest
from a3d_cli.batch.results import FAILED, JobRecord, ResultsFile, batch_exit_code
from a3d_cli.batch.run import BatchOptions, load_jobs, resolve_shard, results_path
from a3d_cli.batch.scheduler import Outcome, retry_or_record
from a3d_cli.batch.shard import parse_shard, select, shard_from_env
from a3d_cli.commands.batch import batch
from a3d_cli.errors import OptionError
from a3d_cli.models.cache import ModelCache, ModelKey, cached_model, model_key, using_model_cache

runner = CliRunner()


def make_batch_app():
    """`a3d` with the batch command (independent of what cli.py registers)."""
    return a3d_app("batch", batch)


def make_video_dir(path: Path) -> Path:
    """A folder with the 64 frame names of a multi-view video (validation reads names, not pixels)."""
    path.mkdir(parents=True)
    for v in range(4):
        for f in range(16):
            (path / f"v{v}_f{f:02d}.png").write_bytes(b"not read by validation")
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("batch_assets")
    make_mesh(root / "fox.ply")
    make_mesh(root / "cat.ply")
    make_video_dir(root / "gt")
    return root


def write_manifest(folder: Path, lines: list[object], name: str = "jobs.jsonl") -> Path:
    path = folder / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


# -- manifest validation ----------------------------------------------------------------------------------------------


def test_every_bad_line_is_reported_with_its_number_and_nothing_runs(assets, tmp_path):
    manifest = write_manifest(
        assets,
        [
            {"input": "fox.ply", "video": "gt"},  # 1: fine
            "# a comment line",  # 2
            {"input": "fox.ply", "video": "gt", "splat_cnt": 10},  # 3: unknown option
            {"input": "cat.ply", "video": "gt", "splat-count": "many"},  # 4: not an integer
            {"input": "cat.ply", "video": "gt", "no-sds": "yes"},  # 5: a switch takes true/false
            {"input": "missing.ply", "video": "gt"},  # 6: no such input
            '{"input": "cat.ply",',  # 7: not JSON
            {"input": "fox.ply", "video": "gt"},  # 8: same run folder as line 1
            {"input": "cat.ply", "video": "nowhere"},  # 9: no such video folder
            {"input": "cat.ply"},  # 10: neither prompt nor video
            {"input": "cat.ply", "video": "gt", "out": "cat", "dtype": "fp8"},  # 11: bad value (animate's check)
            '{"input": "cat.ply", "x": ' + "[" * 5000 + "]" * 5000 + "}",  # 12: nested past the parser
            '{"input": "cat.ply", "video": "gt", "splat-count": ' + "9" * 5000 + "}",  # 13: past the digit limit
        ],
        name="bad.jsonl",
    )
    runs = tmp_path / "runs"
    result = runner.invoke(make_batch_app(), ["--device", "cpu", "batch", str(manifest), "-o", str(runs)])
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert "11 jobs are invalid; nothing was run" in err
    for line in (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13):
        assert f"bad.jsonl:{line}:" in err, line
    for line in (1, 2):
        assert f"bad.jsonl:{line}:" not in err
    assert "did you mean 'splat-count'" in err  # the unknown name gets a suggestion
    assert "bad.jsonl:1's" in err  # the duplicate run folder names the first owner
    assert "Traceback" not in result.output
    assert not runs.exists()  # validation writes nothing


def test_one_run_folder_spelled_two_ways_is_refused(assets, tmp_path):
    runs = tmp_path / "runs"
    (runs / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(runs, target_is_directory=True)
    manifest = write_manifest(
        assets,
        [
            {"input": "fox.ply", "video": "gt", "out": "fox"},  # 1
            {"input": "cat.ply", "video": "gt", "out": "sub/../fox"},  # 2: the same folder, with a detour
            {"input": "cat.ply", "video": "gt", "out": str(tmp_path / "link" / "fox")},  # 3: the same, through a link
            {"input": "cat.ply", "video": "gt", "out": ""},  # 4: no name
            {"input": "cat.ply", "video": "gt", "out": "sub/.."},  # 5: the runs folder itself
        ],
        name="spelled.jsonl",
    )
    result = runner.invoke(make_batch_app(), ["--device", "cpu", "batch", str(manifest), "-o", str(runs)])
    assert result.exit_code == 2, result.output
    assert "spelled.jsonl:2:" in result.stderr and "spelled.jsonl:3:" in result.stderr
    assert 'spelled.jsonl:4: "out" must be a non-empty string' in result.stderr
    assert "spelled.jsonl:5: its run folder is the runs folder" in result.stderr
    assert "spelled.jsonl:1's" in result.stderr and "spelled.jsonl:1:" not in result.stderr


def test_overrides_map_to_animate_options(assets, tmp_path):
    manifest = write_manifest(
        assets,
        [
            {"input": "fox.ply", "video": "gt", "splat_count": 321, "no-sds": True, "out": "sub/fox",
             "preset": "animate3d"},
            {"input": "cat.ply", "prompt": "-a cat waves", "video": "gt", "sds": False, "splats": True, "compile": False,
             "negative_prompt": "--blurry"},
        ],
    )
    specs, errors = read_manifest(manifest)
    assert errors == []
    runs = tmp_path / "runs"
    jobs, errors = build_jobs(specs, runs, runs / "logs", common_args=["--splat-count", "999", "--preview-size", "64"])
    assert errors == []
    fox, cat = jobs
    assert fox.options.splats == 321  # the job's own value wins over the options for every job
    assert fox.options.reconstruct_preset == "animate3d" and cat.options.reconstruct_preset == "auto"
    assert cat.options.splats == 999 and cat.options.preview_size == 64 and fox.options.preview_size == 64
    assert fox.options.sds is False and cat.options.sds is False  # "no-sds": true and "sds": false alike
    assert cat.options.output == "splats" and fox.options.output == "auto"
    assert fox.options.compile is True and cat.options.compile is False  # batches compile unless a job says no
    assert fox.options.video == str(assets / "gt")  # relative to the manifest's folder
    assert cat.options.prompt == "-a cat waves" and cat.options.negative_prompt == "--blurry"  # values, not options
    assert fox.run_dir == str(runs / "sub" / "fox") and cat.run_dir == str(runs / "cat")
    assert Path(fox.log).parent == runs / "logs" and Path(fox.log).name != Path(cat.log).name


def test_the_texture_limit_of_a_job_reaches_its_options_and_is_checked(assets, tmp_path):
    """`max-texture-size` is `a3d animate`'s `--max-texture-size`: taken per job, for every job after `--`, and a
    value below the minimum makes that line an error before anything runs."""
    good = write_manifest(assets, [{"input": "fox.ply", "video": "gt", "max-texture-size": 2048},
                                   {"input": "cat.ply", "video": "gt"}], name="limit.jsonl")  # fmt: skip
    specs, errors = read_manifest(good)
    runs = tmp_path / "runs"
    jobs, errors = build_jobs(specs, runs, runs / "logs", common_args=["--max-texture-size", "4096"])
    assert errors == [] and [job.options.max_texture_size for job in jobs] == [2048, 4096]
    bad = write_manifest(assets, [{"input": "fox.ply", "video": "gt", "max_texture_size": 8}], name="small.jsonl")
    result = runner.invoke(make_batch_app(), ["--device", "cpu", "batch", str(bad), "-o", str(runs)])
    assert result.exit_code == 2 and "small.jsonl:1:" in result.stderr and "at least 32" in result.stderr
    assert not runs.exists()


@pytest.mark.parametrize("device, workers, kept", [("cuda", 2, 0), ("cuda", 1, None), ("cpu", 2, None)])
def test_workers_sharing_a_gpu_keep_no_spare_vae_activations(assets, tmp_path, monkeypatch, device, workers, kept):
    """Two workers on one GPU: a job's sds must not fill the memory the other worker's next stage needs, so the
    batch turns sds's `vae_keep` from auto to 0 and its guided call's CUDA graph off (result-neutral: finished
    stages stay up to date)."""
    import a3d_cli.batch.scheduler as scheduler
    import a3d_cli.device as device_module
    from a3d_cli.batch.run import run_batch

    manifest = write_manifest(assets, [{"input": "fox.ply", "video": "gt", "prompt": "wags"}])
    seen = []
    monkeypatch.setattr(device_module, "resolve_device", lambda spec: device)
    monkeypatch.setattr(scheduler, "run_local", lambda jobs, *args, **kw: seen.extend(jobs))
    run_batch(BatchOptions(manifest=manifest, runs=tmp_path / "runs", workers=workers), device=device, seed=0)
    (job,) = seen
    assert job.options.sds_vae_keep == kept
    assert job.options.sds_cuda_graph is (kept is None)


def test_options_for_every_job_are_checked_once(assets, tmp_path):
    manifest = write_manifest(assets, [{"input": "fox.ply", "video": "gt"}])
    result = runner.invoke(
        make_batch_app(), ["--device", "cpu", "batch", str(manifest), "-o", str(tmp_path), "--", "--sds-stepz", "3"]
    )
    assert result.exit_code == 2
    assert "options for every job do not parse" in result.stderr and "--sds-stepz" in result.stderr


def test_glob_with_a_prompt_file(assets, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# name<TAB>prompt\nfox\ta fox wags its tail\ncat.ply\ta cat waves\n")
    specs, errors = glob_specs(str(assets / "*.ply"), None, prompts)
    assert errors == []
    assert {Path(s.input).name: s.prompt for s in specs} == {"cat.ply": "a cat waves", "fox.ply": "a fox wags its tail"}

    prompts.write_text("fox\ta fox wags its tail\nowl\tan owl blinks\nbroken line\n")
    specs, errors = glob_specs(str(assets / "*.ply"), None, prompts)
    messages = {e.source: e.message for e in errors}
    assert "owl" in messages["prompts.txt:2"]  # names no matched file
    assert "<TAB>" in messages["prompts.txt:3"]  # not name<TAB>prompt
    assert "no prompt" in messages[str(assets / "cat.ply")]  # cat has none and there is no --prompt

    specs, errors = glob_specs(str(assets / "*.ply"), "something moves", None)
    assert errors == [] and [s.prompt for s in specs] == ["something moves"] * 2


def test_manifest_or_glob_and_option_checks(assets, tmp_path):
    app = make_batch_app()
    assert runner.invoke(app, ["batch"]).exit_code == 2  # neither
    manifest = write_manifest(assets, [{"input": "fox.ply", "video": "gt"}])
    bad_options = (
        ["--glob", "*.ply"], ["--workers", "0"], ["--retries", "-1"], ["--shard", "2/2"], ["--ray", "auto", "--gpus", "all"],
        ["--status-every", "nan"],  # passed `<= 0`
    )  # fmt: skip
    for args in bad_options:
        result = runner.invoke(app, ["--device", "cpu", "batch", str(manifest), "-o", str(tmp_path / "r"), *args])
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error:"), args
    assert not (tmp_path / "r").exists()


# -- sharding ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 7, 20])
def test_shards_cover_every_job_exactly_once(count):
    jobs = list(range(17))
    parts = [select(jobs, (i, count)) for i in range(count)]
    assert sorted(j for part in parts for j in part) == jobs
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced


def test_shard_parsing_and_slurm_environment(tmp_path):
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "1/0", "a/b", "1"):
        with pytest.raises(OptionError):
            parse_shard(bad)
    assert shard_from_env({}) is None
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}) == (2, 4)
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "3"}) == (2, 4)
    with pytest.raises(OptionError):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "4"})
    opts = BatchOptions(manifest=Path("m.jsonl"), runs=tmp_path)
    env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"}
    assert resolve_shard(opts, env) == (1, 3)
    assert resolve_shard(BatchOptions(manifest=Path("m.jsonl"), shard="0/2"), env) == (0, 2)  # --shard wins
    assert results_path(opts, (1, 3)).name == "results.shard-1-of-3.jsonl"  # array tasks never share a file
    assert results_path(opts, None) == tmp_path.absolute() / "results.jsonl"


def test_sharded_jobs_are_validated_as_a_whole(assets, tmp_path):
    """Every array task validates the whole manifest, so a bad line stops them all alike."""
    manifest = write_manifest(assets, [{"input": "fox.ply", "video": "gt"}, {"input": "cat.ply", "video": "gt", "bogus": 1}])
    with pytest.raises(ManifestError) as info:
        load_jobs(BatchOptions(manifest=manifest, runs=tmp_path, shard="0/2"), tmp_path / "results.jsonl")
    assert [e.source for e in info.value.errors] == ["jobs.jsonl:2"]


# -- results and retries ---------------------------------------------------------------------------------------------------


def record(run_dir: str, status: str = "done", exit_code: int = 0, **kw) -> JobRecord:
    return JobRecord("m:1", run_dir, status, exit_code, "log", **kw)


def test_batch_exit_code():
    assert batch_exit_code([record("a"), record("b", "skipped")]) == 0
    assert batch_exit_code([record("a"), record("b", FAILED, 2)]) == 3  # fixable by the user
    assert batch_exit_code([record("a", FAILED, 2), record("b", FAILED, 1)]) == 1  # a3d's own failure wins


def test_results_file_appends_then_keeps_one_line_per_job(tmp_path):
    results = ResultsFile(tmp_path / "results.jsonl")
    results.append(record("/r/a", FAILED, 1))
    results.append(record("/r/b"))
    results.append(record("/r/a"))
    with open(results.path, "a") as f:
        f.write('{"run_dir": "/r/c", "sta')  # a line cut by a crash
    results.compact()
    lines = [json.loads(line) for line in results.path.read_text().splitlines()]
    assert [(r["run_dir"], r["status"]) for r in lines] == [("/r/a", "done"), ("/r/b", "done")]
    assert "retryable" not in lines[0]


def test_a_record_after_a_cut_line_is_kept(tmp_path):
    results = ResultsFile(tmp_path / "results.jsonl")
    results.append(record("/r/a"))
    with open(results.path, "a") as f:
        f.write('{"run_dir": "/r/c", "sta')  # a crash cut this line: no line break at the end
    results.append(record("/r/b"))
    results.compact()
    lines = [json.loads(line) for line in results.path.read_text().splitlines()]
    assert [r["run_dir"] for r in lines] == ["/r/a", "/r/b"]


_APPENDER = """
import sys
from a3d_cli.batch.results import JobRecord, ResultsFile

path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
results = ResultsFile(path)
for k in range(count):
    outputs = [f"/r/{name}/{k}/file_{i}.glb" for i in range(200)]  # a line of ~6 kB, past PIPE_BUF
    results.append(JobRecord("m:1", f"/r/{name}/{k}", "done", 0, "log", outputs=outputs))
    if k % 5 == 4:
        results.compact()  # a batch ending while the other still appends
"""


def test_two_batches_appending_to_one_results_file_lose_no_line(tmp_path):
    import subprocess
    import sys

    path, count = tmp_path / "results.jsonl", 60
    procs = [
        subprocess.Popen([sys.executable, "-c", _APPENDER, str(path), name, str(count)], cwd=REPO)
        for name in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses
    assert len(records) == len({r["run_dir"] for r in records})  # compaction kept one line per job
    assert {r["run_dir"] for r in records} == {f"/r/{n}/{k}" for n in ("a", "b") for k in range(count)}
    assert all(len(r["outputs"]) == 200 for r in records)


def test_only_failures_that_may_pass_are_retried():
    from collections import deque

    from a3d_cli.batch.manifest import Job

    job = Job(0, "m:1", "a", "/r/a", None, False, "log")
    pending, outcome, recorded = deque(), Outcome(), []
    user_error = record("/r/a", FAILED, 2, retryable=False)
    assert retry_or_record(job, user_error, 3, pending, outcome, recorded.append) and not pending
    crash = record("/r/a", FAILED, 1, retryable=True, attempts=1)
    assert not retry_or_record(job, crash, 1, pending, outcome, recorded.append)
    assert list(pending) == [(job, 2)] and len(recorded) == 1
    crash_again = record("/r/a", FAILED, 1, retryable=True, attempts=2)
    assert retry_or_record(job, crash_again, 1, pending, outcome, recorded.append)  # retries used up
    assert outcome.records[0] is crash_again


# -- the model cache -------------------------------------------------------------------------------------------------------


def test_model_cache_builds_each_key_once(tmp_path):
    builds = []

    def build():
        builds.append(1)
        return object()

    key = ModelKey("toy", (), "fp32", "cpu", False)
    assert cached_model(key, build) is not cached_model(key, build)  # no cache active: built each time
    assert len(builds) == 2
    cache = ModelCache()
    with using_model_cache(cache):
        a, b = cached_model(key, build), cached_model(key, build)
        c = cached_model(ModelKey("toy", (), "fp32", "cpu", True), build)  # compiled: another model
    assert a is b and c is not a and cache.builds["toy"] == 2 and len(builds) == 4
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"1")
    first = model_key("m", {"w": weights}, torch.float16, "cpu", False, seed=3)
    assert first.seed is None  # loaded weights do not depend on the seed
    os.utime(weights, ns=(0, 10**9))
    assert model_key("m", {"w": weights}, torch.float16, "cpu", False) != first  # a replaced file is a new model
    assert model_key("m", None, torch.float16, "cpu", False, seed=3).seed == 3


def test_the_cache_keeps_one_model_per_name():
    """Jobs that ask for the same network with other settings replace it: never two copies in one worker."""
    built = []
    cache = ModelCache()
    with using_model_cache(cache):
        plain = cached_model(ModelKey("mvvdm", (), "fp16", "cpu", False), lambda: built.append(1) or object())
        cached_model(ModelKey("mvvdm-sds", (), "fp16", "cpu", False), lambda: built.append(1) or object())
        cached_model(ModelKey("mvvdm", (), "fp16", "cpu", True), lambda: built.append(1) or object())
        assert len(cache) == 2  # the compiled mvvdm replaced the plain one; the sds model stays
        again = cached_model(ModelKey("mvvdm", (), "fp16", "cpu", False), lambda: built.append(1) or object())
    assert again is not plain and len(built) == 4 and cache.builds["mvvdm"] == 3


def test_a_cache_that_keeps_nothing_counts_builds_and_holds_no_model():
    """`--no-keep-models`: each request builds anew and the cache holds no reference, so a stage's model is
    freed when the stage lets go of it; the build counts still say what each job built."""
    import gc
    import weakref

    class Net:
        pass

    cache = ModelCache(keep=False)
    key = ModelKey("mvvdm", (), "fp16", "cpu", False)
    with using_model_cache(cache):
        first = cached_model(key, Net)
        gone = weakref.ref(first)
        second = cached_model(key, Net)
    assert first is not second and len(cache) == 0 and cache.builds["mvvdm"] == 2
    del first
    gc.collect()
    assert gone() is None


def test_keep_models_reaches_every_worker(tmp_path, monkeypatch):
    """`a3d batch --no-keep-models` reaches the batch options, each local worker's spec and its job runner."""
    from a3d_cli.batch import run as batch_run
    from a3d_cli.batch.worker import JobRunner

    seen = {}

    def fake_run_batch(opts, device, seed, display):  # noqa: ANN001, ARG001
        seen["opts"] = opts
        return batch_run.BatchSummary(total=0)

    monkeypatch.setattr(batch_run, "run_batch", fake_run_batch)
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("")
    for flag, keep in (("--no-keep-models", False), ("--keep-models", True)):
        result = runner.invoke(make_batch_app(), ["--device", "cpu", "batch", str(manifest), "-o", str(tmp_path), flag])
        assert result.exit_code == 0, result.output
        opts = seen.pop("opts")
        assert opts.keep_models is keep
        specs = batch_run.worker_specs(BatchOptions(manifest=manifest, workers=2, keep_models=keep), "cpu", tmp_path)
        assert [s.keep_models for s in specs] == [keep, keep]
        assert JobRunner(keep_models=keep).cache.keep is keep


@pytest.mark.parametrize(("affinity", "omp", "expected"), [(4, None, [2, 2]), (1, None, [1, 1]), (8, "1", [0, 0])])
def test_cpu_workers_share_the_cpus_granted_and_obey_omp_num_threads(tmp_path, monkeypatch, affinity, omp, expected):
    from a3d_cli.batch import run as batch_run

    # a Slurm allocation or `taskset` grants fewer CPUs than the machine has; 0 = torch reads OMP_NUM_THREADS
    monkeypatch.setattr(batch_run, "available_cpus", lambda: affinity)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    specs = batch_run.worker_specs(BatchOptions(manifest=tmp_path / "jobs.jsonl", workers=2), "cpu", tmp_path)
    assert [s.threads for s in specs] == expected


def test_stage_loaders_build_once_per_worker_cache():
    """mvvideo and sds obtain MV-VDM through the cache: two jobs in one worker, one build each."""
    from a3d_cli.stages import mvvideo, sds

    mv_opts = mvvideo.MVVideoOptions(prompt="a fox", tiny_model=True)
    sds_opts = sds.SdsOptions(prompt="a fox", tiny_model=True)
    cache = ModelCache()
    with using_model_cache(cache):
        first = mvvideo.load_model(mv_opts, None, "cpu", 0), sds.load_model(sds_opts, None, "cpu", 0)
        second = mvvideo.load_model(mv_opts, None, "cpu", 0), sds.load_model(sds_opts, None, "cpu", 0)
        other_seed = mvvideo.load_model(mv_opts, None, "cpu", 1)  # random weights depend on the seed
    assert first[0] is second[0] and first[1] is second[1] and other_seed is not first[0]
    assert dict(cache.builds) == {"mvvdm": 2, "mvvdm-sds": 1}
    assert mvvideo.load_model(mv_opts, None, "cpu", 0) is not first[0]  # outside a batch: nothing is kept


def test_compiling_blocks_twice_keeps_the_first_compilation():
    """A cached model is handed to every job; accelerating it again must not wrap its blocks again."""
    from diffusers.models.resnet import ResnetBlock2D

    from a3d_cli.models.speed.acceleration import compile_blocks

    net = torch.nn.Sequential(ResnetBlock2D(in_channels=8, out_channels=8, temb_channels=None, groups=4))
    assert compile_blocks(net, backend="eager").classes == {"ResnetBlock2D": 1}
    compiled = net[0]._compiled_call_impl
    assert compiled is not None
    assert compile_blocks(net, backend="eager").classes == {"ResnetBlock2D": 1}
    assert net[0]._compiled_call_impl is compiled


# -- the display ------------------------------------------------------------------------------------------------------------


def test_plain_progress_lines_when_not_a_terminal():
    """Off a terminal: a line per finished job and periodic status lines with the counts (no rich display)."""
    import io

    from rich.console import Console

    from a3d_cli.batch.display import BatchDisplay
    from a3d_cli.batch.manifest import Job

    console = Console(file=io.StringIO(), width=200)
    jobs = [Job(i, f"m:{i + 1}", f"job{i}", f"/r/job{i}", None, False, f"/r/logs/job{i}.log") for i in range(3)]
    with BatchDisplay(3, ["w0 cpu"], console, every_s=1e-9) as display:
        assert not display.rich
        display.job_started(0, jobs[0], 1)
        display.job_finished(0, jobs[0], record("/r/job0", seconds=2.0), final=True)
        display.job_started(0, jobs[1], 1)
        display.job_finished(0, jobs[1], record("/r/job1", FAILED, 2, error="bad input"), final=True)
        display.job_started(0, jobs[2], 1)
        display.tick()
    text = console.file.getvalue()
    assert "[1/3] job0 done in 2.0 s" in text
    assert "failed [2/3] job1 (m:2, exit code 2): bad input  log: log" in text
    assert "2/3 finished, 1 failed, 1 running, ETA" in text


def test_a_worker_turns_sigterm_into_an_interrupt():
    """A scheduler's SIGTERM reaches the job's stage as an interrupt (recorded, staging cleaned), not a kill."""
    import os
    import signal

    from a3d_cli.batch.worker import sigterm_as_interrupt
    from a3d_cli.errors import Terminated

    previous = signal.getsignal(signal.SIGTERM)
    try:
        sigterm_as_interrupt()
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
