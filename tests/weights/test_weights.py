"""Weights registry, resolver order, offline behaviour, fetch planning and the `a3d weights` sub-app.

Everything runs on temporary folders: a fake ``A3D_WEIGHTS_DIR`` and a fake Hugging Face cache laid out
exactly as huggingface_hub writes it (``models--org--name/{blobs,refs/main,snapshots/<rev>/...}``). Any
attempt to reach the network fails the test.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import huggingface_hub
import pytest
import typer
from typer.testing import CliRunner

from a3d_cli.commands import weights as weights_cmd
from a3d_cli.commands.common import GlobalOptions
from a3d_cli.errors import CheckpointError, InputError, OptionError, StageFailed, WeightsMissing
from a3d_cli.weights import REGISTRY, fetch, get, hf_cache_dir, locate, names, resolve
from a3d_cli.weights import download as fetch_module
from a3d_cli.weights import registry as registry_module

REV = "0123456789abcdef0123456789abcdef01234567"


def _no_network(*args, **kwargs):
    raise AssertionError("a3d tried to use the network")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every lookup at empty temp folders and make any network call fail loudly."""
    for var in ("A3D_WEIGHTS_DIR", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _no_network)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _no_network)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", _no_network)
    return tmp_path


def put_in_hf_cache(cache: Path, repo_id: str, repo_path: str, data: bytes = b"x", rev: str = REV) -> Path:
    """Write one file into a huggingface_hub-shaped cache: a blob, a snapshot symlink to it, refs/main."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    blob = repo_dir / "blobs" / f"blob-{abs(hash((repo_path, data)))}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    snap = repo_dir / "snapshots" / rev / repo_path
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.symlink_to(blob)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(rev)
    return snap


def put_model_in_hf_cache(cache: Path, name: str) -> None:
    model = get(name)
    for f in model.required:
        put_in_hf_cache(cache, model.repo_id, f.path)


def write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- registry ------------------------------------------------------------------------------------------------


def test_registry_covers_the_products_models_once():
    assert set(names()) == {
        "sv3d_u",
        "sv3d_p",
        "mvdream_sd15",
        "animatediff_v152",
        "ip_adapter_sd15",
        "ip_adapter_image_encoder",
        "animate3d_motion_modules",
    }
    assert len(names()) == len(REGISTRY)
    for m in REGISTRY:
        assert dataclasses.is_dataclass(m) and m.repo_id.count("/") == 1 and m.license
        assert bool(m.stages) == (m.name != "animatediff_v152")  # the adapter is optional (docs/mvvideo.md)
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.name = "other"  # type: ignore[misc]
    assert get("sv3d_u").gated and get("sv3d_u").filename == "sv3d_u.safetensors"
    assert get("ip_adapter_image_encoder").folder == "models/image_encoder"


def test_unknown_name_is_an_option_error_listing_names():
    with pytest.raises(OptionError) as info:
        resolve("sv3d_x")
    assert "sv3d_u" in info.value.hint


def test_folder_entry_rejects_files_outside_its_folder():
    with pytest.raises(ValueError, match="not inside folder"):
        registry_module.ModelWeights(
            name="bad",
            repo_id="a/b",
            kind="folder",
            folder="models/enc",
            files=(registry_module.RepoFile("other/config.json"),),
            stages=("x",),
            description="",
            license="",
        )


# --- resolution order ----------------------------------------------------------------------------------------


def test_missing_raises_weights_missing_with_fetch_command_and_placement():
    with pytest.raises(WeightsMissing) as info:
        resolve("sv3d_u")
    err = info.value
    assert err.exit_code == 2
    assert "stabilityai/sv3d" in err.message and "sv3d_u.safetensors" in err.message and "sv3d_u" in err.message
    assert "a3d weights fetch sv3d_u" in err.hint
    assert "$A3D_WEIGHTS_DIR/stabilityai/sv3d/sv3d_u.safetensors" in err.hint
    assert "huggingface.co/stabilityai/sv3d" in err.hint  # gated: says where to accept the license


def test_hf_cache_is_found_through_hf_home(isolated_env: Path):
    cache = isolated_env / "hf_home" / "hub"
    assert hf_cache_dir() == cache
    snap = put_in_hf_cache(cache, "yanqinJiang/animate3d", "animate3d_motion_modules.ckpt")
    res = locate("animate3d_motion_modules")
    assert res.source == "hf_cache" and res.path == snap and res.error is None


def test_hf_hub_cache_overrides_hf_home(isolated_env: Path, monkeypatch: pytest.MonkeyPatch):
    cache = isolated_env / "elsewhere"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    put_in_hf_cache(cache, "stabilityai/sv3d", "sv3d_p.safetensors")
    assert resolve("sv3d_p").parent.name == REV
    with pytest.raises(WeightsMissing):  # the other file of the same repo is not there
        resolve("sv3d_u")


def test_weights_dir_repo_layout_beats_hf_cache(isolated_env: Path, monkeypatch: pytest.MonkeyPatch):
    put_in_hf_cache(isolated_env / "hf_home" / "hub", "stabilityai/sv3d", "sv3d_u.safetensors")
    wdir = isolated_env / "weights"
    monkeypatch.setenv("A3D_WEIGHTS_DIR", str(wdir))
    assert locate("sv3d_u").source == "hf_cache"  # dir set but empty: falls through
    placed = write(wdir / "stabilityai" / "sv3d" / "sv3d_u.safetensors")
    res = locate("sv3d_u")
    assert (res.source, res.path) == ("weights_dir", placed)


def test_weights_dir_flat_layout(isolated_env: Path, monkeypatch: pytest.MonkeyPatch):
    wdir = isolated_env / "weights"
    monkeypatch.setenv("A3D_WEIGHTS_DIR", str(wdir))
    placed = write(wdir / "ip-adapter_sd15.bin")
    assert resolve("ip_adapter_sd15") == placed
    enc = wdir / "ip_adapter_image_encoder"
    write(enc / "config.json")
    write(enc / "pytorch_model.bin")  # the .bin alternative of model.safetensors is accepted
    assert resolve("ip_adapter_image_encoder") == enc


def test_explicit_path_beats_everything(isolated_env: Path, monkeypatch: pytest.MonkeyPatch):
    wdir = isolated_env / "weights"
    monkeypatch.setenv("A3D_WEIGHTS_DIR", str(wdir))
    write(wdir / "sv3d_p.safetensors")
    mine = write(isolated_env / "mine" / "renamed.safetensors")
    assert resolve("sv3d_p", explicit=mine) == mine
    assert resolve("sv3d_p", explicit=mine.parent.parent / "weights") == wdir / "sv3d_p.safetensors"


def test_explicit_missing_path_is_its_own_error(isolated_env: Path):
    put_in_hf_cache(isolated_env / "hf_home" / "hub", "stabilityai/sv3d", "sv3d_u.safetensors")
    ghost = isolated_env / "nope.safetensors"
    with pytest.raises(InputError) as info:
        resolve("sv3d_u", explicit=ghost)  # not silently replaced by the cached copy
    assert not isinstance(info.value, WeightsMissing)
    assert str(ghost) in info.value.message and "does not exist" in info.value.message


def test_explicit_folder_without_the_model_is_an_input_error(isolated_env: Path):
    empty = isolated_env / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="without sv3d_u.safetensors"):
        resolve("sv3d_u", explicit=empty)
    with pytest.raises(InputError, match="unet/"):
        resolve("mvdream_sd15", explicit=empty)


def test_diffusers_folder_from_hf_cache_needs_every_component(isolated_env: Path):
    cache = isolated_env / "hf_home" / "hub"
    model = get("mvdream_sd15")
    *most, last = model.required
    for f in most:
        put_in_hf_cache(cache, model.repo_id, f.path)
    res = locate("mvdream_sd15")
    assert res.path is None and isinstance(res.error, WeightsMissing)  # one tokenizer file short
    put_in_hf_cache(cache, model.repo_id, last.path)
    folder = resolve("mvdream_sd15")
    assert folder.name == REV and (folder / "unet" / "config.json").is_file()


def test_subfolder_model_resolves_to_the_subfolder(isolated_env: Path):
    put_model_in_hf_cache(isolated_env / "hf_home" / "hub", "ip_adapter_image_encoder")
    folder = resolve("ip_adapter_image_encoder")
    assert folder.parts[-2:] == ("models", "image_encoder") and (folder / "config.json").is_file()


def test_known_size_mismatch_is_a_checkpoint_error(isolated_env: Path, monkeypatch: pytest.MonkeyPatch):
    model = get("animate3d_motion_modules")
    sized = dataclasses.replace(model, files=(dataclasses.replace(model.files[0], size_bytes=10),))
    monkeypatch.setattr(
        registry_module, "REGISTRY", tuple(sized if m.name == model.name else m for m in registry_module.REGISTRY)
    )
    ckpt = write(isolated_env / "m.ckpt", b"12345")
    with pytest.raises(CheckpointError, match="5 bytes"):
        resolve("animate3d_motion_modules", explicit=ckpt)
    ckpt.write_bytes(b"0123456789")
    assert resolve("animate3d_motion_modules", explicit=ckpt) == ckpt


# --- offline and fetch ---------------------------------------------------------------------------------------


def test_offline_resolves_from_cache_without_network(isolated_env: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    put_model_in_hf_cache(isolated_env / "hf_home" / "hub", "animatediff_v152")
    assert (resolve("animatediff_v152") / "config.json").is_file()
    assert fetch("animatediff_v152").name == REV  # already there: no download, no network


def test_offline_fetch_refuses_before_any_network(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsMissing) as info:
        fetch("sv3d_u")
    assert "HF_HUB_OFFLINE" in info.value.message
    assert "$A3D_WEIGHTS_DIR/stabilityai/sv3d/sv3d_u.safetensors" in info.value.hint


def test_offline_refusal_names_the_variable_that_is_set(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(WeightsMissing) as info:
        fetch("sv3d_u")
    assert "TRANSFORMERS_OFFLINE is set" in info.value.message and "HF_HUB_OFFLINE" not in info.value.message
    assert info.value.hint.startswith("Unset TRANSFORMERS_OFFLINE to download.")


def test_fetch_plan_picks_available_alternatives_and_optional_files():
    model = get("mvdream_sd15")
    listing = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.bin",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.bin",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/tokenizer_config.json",
    ]
    chosen = fetch_module.plan(model, listing)
    assert "unet/diffusion_pytorch_model.bin" in chosen
    assert "vae/diffusion_pytorch_model.safetensors" in chosen and "vae/diffusion_pytorch_model.bin" not in chosen
    assert "model_index.json" in chosen and "scheduler/scheduler_config.json" not in chosen
    with pytest.raises(StageFailed):
        fetch_module.plan(model, listing[:-1])


def test_fetch_downloads_into_weights_dir_then_resolves(isolated_env: Path, monkeypatch: pytest.MonkeyPatch):
    wdir = isolated_env / "weights"
    monkeypatch.setenv("A3D_WEIGHTS_DIR", str(wdir))
    calls: list[tuple[str, str, dict]] = []

    def fake_download(repo_id: str, filename: str, **kwargs) -> str:
        calls.append((repo_id, filename, kwargs))
        return str(write(Path(kwargs["local_dir"]) / filename))

    monkeypatch.setattr(
        huggingface_hub.HfApi, "list_repo_files", lambda self, repo_id, **kw: ["models/ip-adapter_sd15.bin", "x"]
    )
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    path = fetch("ip_adapter_sd15")
    assert path == wdir / "h94" / "IP-Adapter" / "models" / "ip-adapter_sd15.bin"
    assert [(c[0], c[1]) for c in calls] == [("h94/IP-Adapter", "models/ip-adapter_sd15.bin")]
    assert fetch("ip_adapter_sd15") == path and len(calls) == 1  # second fetch finds it, downloads nothing


def test_fetch_gated_repo_gives_license_hint(monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import errors

    class FakeGated(errors.GatedRepoError):
        def __init__(self) -> None:  # skip HfHubHTTPError's response plumbing
            Exception.__init__(self, "403 gated")

    def refuse(self, repo_id, **kw):
        raise FakeGated()

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", refuse)
    with pytest.raises(WeightsMissing) as info:
        fetch("sv3d_u")
    assert "gated" in info.value.message
    assert "https://huggingface.co/stabilityai/sv3d" in info.value.hint and "hf auth login" in info.value.hint


def test_fetch_unreachable_hub_is_weights_missing(monkeypatch: pytest.MonkeyPatch):
    def unreachable(self, repo_id, **kw):
        raise OSError("connection refused")

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", unreachable)
    with pytest.raises(WeightsMissing, match="connection refused") as info:
        fetch("animate3d_motion_modules")
    assert "$A3D_WEIGHTS_DIR/yanqinJiang/animate3d/animate3d_motion_modules.ckpt" in info.value.hint


# --- CLI sub-app ---------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_list_shows_missing_and_found(isolated_env: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COLUMNS", "250")
    put_in_hf_cache(isolated_env / "hf_home" / "hub", "stabilityai/sv3d", "sv3d_p.safetensors")
    result = runner.invoke(weights_cmd.app, ["list"])
    assert result.exit_code == 0, result.output
    for name in names():
        assert name in result.output
    assert "MISSING" in result.output and "a3d weights fetch sv3d_u" in result.output
    assert "hf_cache" in result.output
    assert f"1 of {len(names())} models found" in result.output


def test_weights_table_is_plain_json_data(isolated_env: Path):
    put_in_hf_cache(isolated_env / "hf_home" / "hub", "stabilityai/sv3d", "sv3d_p.safetensors")
    rows = json.loads(json.dumps(weights_cmd.weights_table()))
    by_name = {r["name"]: r for r in rows}
    assert by_name["sv3d_p"]["status"] == "found" and by_name["sv3d_p"]["source"] == "hf_cache"
    assert by_name["sv3d_u"]["status"] == "missing" and "a3d weights fetch sv3d_u" in by_name["sv3d_u"]["fix"]


def test_cli_path_prints_resolved_path_and_raises_when_missing(isolated_env: Path, monkeypatch: pytest.MonkeyPatch):
    wdir = isolated_env / "weights"
    monkeypatch.setenv("A3D_WEIGHTS_DIR", str(wdir))
    placed = write(wdir / "animate3d_motion_modules.ckpt")
    result = runner.invoke(weights_cmd.app, ["path", "animate3d_motion_modules"])
    assert result.exit_code == 0 and result.output.strip() == str(placed)
    result = runner.invoke(weights_cmd.app, ["path", "sv3d_u"])
    assert result.exit_code != 0 and isinstance(result.exception, WeightsMissing)  # cli.py maps it to exit 2


def test_cli_fetch_needs_exactly_one_target():
    result = runner.invoke(weights_cmd.app, ["fetch"])
    assert isinstance(result.exception, OptionError)
    result = runner.invoke(weights_cmd.app, ["fetch", "sv3d_u", "--all"])
    assert isinstance(result.exception, OptionError)


def test_mounted_under_a_root_with_global_json(isolated_env: Path):
    root = typer.Typer()

    @root.callback()
    def main_options(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")) -> None:
        ctx.obj = GlobalOptions(json=json_out)

    root.add_typer(weights_cmd.app, name="weights")
    put_in_hf_cache(isolated_env / "hf_home" / "hub", "yanqinJiang/animate3d", "animate3d_motion_modules.ckpt")
    result = runner.invoke(root, ["--json", "weights", "list"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["animate3d_motion_modules"]["status"] == "found" and rows["sv3d_u"]["status"] == "missing"


def test_missing_weights_exit_2_through_the_a3d_error_mapping():
    from a3d_cli.cli import A3DGroup

    root = typer.Typer(cls=A3DGroup)

    @root.callback()
    def main_options() -> None:
        pass

    root.add_typer(weights_cmd.app, name="weights")
    result = runner.invoke(root, ["weights", "path", "sv3d_u"])
    assert result.exit_code == 2
    assert "a3d weights fetch sv3d_u" in result.output and "Traceback" not in result.output
    result = runner.invoke(root, ["weights", "fetch", "no_such_model"])
    assert result.exit_code == 2 and "Unknown model" in result.output
