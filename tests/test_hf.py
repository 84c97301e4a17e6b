"""The Hugging Face Hub as a remote registry, exercised with the real huggingface_hub client over
real HTTP against a loopback test double of the Hub's API (``tests/hub_server.py``).

Top-level imports stay free of torch: spawned worker processes import this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from dwp_hub.errors import (
    AuthenticationError,
    DownloadInterruptedError,
    HubError,
    IntegrityError,
    InvalidNameError,
    OfflineError,
    PriorExistsError,
    RemoteNotFoundError,
    RevisionNotFoundError,
)
from dwp_hub.registry import LocalRegistry, Version, parse_ref, verify_folder
from dwp_hub.registry._hf import download_prior, list_hub_versions

if TYPE_CHECKING:
    from hub_server import HubTestServer

pytest_plugins = ["hub_server"]  # provides the `hub_server` fixture (tests/hub_server.py)

REPO = "dwp/tiny-7x7"
HUB = f"hf-hub:{REPO}"
_HEX = re.compile(r"\b[0-9a-f]{40,64}\b")


def _publish(reg: Path, name: str, version: str, to: str = HUB, folder: Path | None = None) -> str:
    from dwp_hub.training.publish import publish

    return str(publish(folder or reg / name / version, name, version, to))


def _download_worker(spec: str, barrier: Any, queue: Any) -> None:
    """Runs in a spawned process: huggingface_hub is imported afresh from the inherited env."""
    try:
        if barrier is not None:
            barrier.wait(timeout=60)
        folder, commit = download_prior(parse_ref(spec))
        card = verify_folder(folder)
        queue.put(("ok", str(folder), commit, card.spec))
    except Exception as err:  # noqa: BLE001 - reported to the parent
        queue.put(("error", type(err).__name__, str(err), ""))


def _run_workers(specs_envs: list[tuple[str, dict[str, str]]], monkeypatch: pytest.MonkeyPatch,
                 barrier: bool = False) -> list[tuple[str, str, str, str]]:
    """Start one spawned process per (spec, extra env) at once and collect their results."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    sync = ctx.Barrier(len(specs_envs)) if barrier else None
    procs = []
    for spec, env in specs_envs:
        with monkeypatch.context() as m:  # the child copies os.environ when it starts
            for k, v in env.items():
                m.setenv(k, v)
            p = ctx.Process(target=_download_worker, args=(spec, sync, queue))
            p.start()
        procs.append(p)
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return results


def _cache_is_clean(cache: Path) -> None:
    """No partial download anywhere, and every blob matches the ETag it is named after
    (git sha1 for regular files, sha256 for LFS files)."""
    leftovers = [p for p in cache.rglob("*") if p.name.endswith((".incomplete", ".tmp"))]
    assert not leftovers, leftovers
    blobs = list(cache.rglob("blobs/*"))
    assert blobs
    for blob in blobs:
        data = blob.read_bytes()
        git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert blob.name in (git_sha1, hashlib.sha256(data).hexdigest()), f"partial or wrong blob {blob}"


# -- publish, list, download, pin -------------------------------------------------------------
def test_publish_tag_download_and_pin(tiny_registry: Path, hub_server: HubTestServer, tmp_path: Path) -> None:
    import torch

    import dwp_hub

    assert _publish(tiny_registry, "tiny-7x7", "1.0.0") == f"{HUB}@v1.0.0"
    assert _publish(tiny_registry, "tiny-7x7", "1.1.0") == f"{HUB}@v1.1.0"
    # A version without latents.png: the old one is deleted in the same commit.
    lean = tmp_path / "lean"
    shutil.copytree(tiny_registry / "tiny-7x7" / "1.1.0", lean)
    (lean / "latents.png").unlink()
    _publish(tiny_registry, "tiny-7x7", "1.2.0", folder=lean)

    commits = hub_server.commits(REPO)
    assert [c["title"] for c in commits] == ["initial commit"] + [f"Publish tiny-7x7@{v}" for v in ("1.0.0", "1.1.0", "1.2.0")]
    assert {".gitattributes", "model.safetensors", "README.md", "samples.png", "latents.png",
            "checksums.json"} <= set(commits[1]["files"])
    assert "latents.png" not in commits[3]["files"]
    rows = list_hub_versions(HUB)
    assert [r["tag"] for r in rows] == ["v1.2.0", "v1.1.0", "v1.0.0"]
    assert [r["commit"] for r in rows] == [c["oid"] for c in commits[:0:-1]]

    local = dwp_hub.load("tiny-7x7@1.0.0")
    by_tag = dwp_hub.load(f"{HUB}@v1.0.0")
    assert by_tag.card.spec == "tiny-7x7@1.0.0" and by_tag.commit == commits[1]["oid"]
    assert by_tag.card.weights_sha256 == local.card.weights_sha256
    for key, value in local.vae.state_dict().items():
        assert torch.equal(value, by_tag.vae.state_dict()[key])
    by_sha = dwp_hub.load(f"{HUB}@{commits[1]['oid']}")
    assert by_sha.card.spec == "tiny-7x7@1.0.0" and by_sha.commit == commits[1]["oid"]
    newest = dwp_hub.load(HUB)
    assert newest.card.spec == "tiny-7x7@1.2.0" and newest.commit == commits[3]["oid"] and newest.source == HUB
    folder, _ = download_prior(parse_ref(f"{HUB}@v1.2.0"))
    assert not (folder / "latents.png").exists() and not (folder / ".gitattributes").exists()
    explicit = tmp_path / "explicit-cache"
    assert dwp_hub.load(f"{HUB}@v1.1.0", cache_dir=explicit).card.spec == "tiny-7x7@1.1.0"
    assert list(explicit.glob("models--dwp--tiny-7x7/snapshots/*/model.safetensors"))
    # A pinned commit that is cached needs no request at all.
    before = hub_server.count()
    dwp_hub.load(f"{HUB}@{commits[1]['oid']}")
    assert hub_server.count() == before
    _cache_is_clean(hub_server.cache)


def test_hub_versions_are_version_tags_newest_first(tiny_registry: Path, hub_server: HubTestServer) -> None:
    _publish(tiny_registry, "tiny-7x7", "1.0.0")
    tags = hub_server.repos[REPO]["tags"]
    commit = tags["v1.0.0"]
    for tag in ("v1.9.0", "v1.10.0", "v1.2.0", "v1.0.0-rc1", "v01.0.0", "v2.0", "release", "1.5.0"):
        tags[tag] = commit  # listing reads tags only; what they hold is checked on download
    rows = list_hub_versions(HUB)
    assert [(r["version"], r["tag"]) for r in rows] == [("1.10.0", "v1.10.0"), ("1.9.0", "v1.9.0"),
                                                         ("1.2.0", "v1.2.0"), ("1.0.0", "v1.0.0")]
    assert {r["commit"] for r in rows} == {commit}


def test_publish_refuses_existing_version_and_foreign_name(tiny_registry: Path, hub_server: HubTestServer) -> None:
    _publish(tiny_registry, "tiny-7x7", "1.0.0")
    with pytest.raises(PriorExistsError, match="already has version 1.0.0"):
        _publish(tiny_registry, "tiny-7x7", "1.0.0")
    with pytest.raises(InvalidNameError, match="holds the prior 'tiny-7x7'"):
        _publish(tiny_registry, "tiny-5x5", "1.0.0")
    with pytest.raises(InvalidNameError, match="without a revision"):
        _publish(tiny_registry, "tiny-5x5", "1.0.0", to="hf-hub:dwp/tiny-5x5@main")
    assert len(hub_server.commits(REPO)) == 2  # nothing was committed by the refused publishes


def test_local_and_hub_publish_write_the_same_version_folder(tiny_registry: Path, hub_server: HubTestServer,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One writer, one result type: the same folder published locally and to the Hub gives the same files,
    byte for byte, and a PublishResult either way."""
    from dwp_hub.registry import PublishResult
    from dwp_hub.training import publish as publish_module

    monkeypatch.setattr(publish_module, "_now", lambda: "2024-01-01T00:00:00+00:00")  # the only difference
    folder = tiny_registry / "tiny-7x7" / "1.1.0"
    local = publish_module.publish(folder, "tiny-7x7", "2.0.0", tmp_path / "reg", "same")
    hub = publish_module.publish(folder, "tiny-7x7", "2.0.0", HUB, "same")
    assert isinstance(local, PublishResult) and isinstance(hub, PublishResult)
    assert (local.target, hub.target) == ("local", "hub")
    assert local.files == hub.files and local.weights_sha256 == hub.weights_sha256
    assert {"model.safetensors", "README.md", "samples.png", "latents.png"} <= set(hub.files)
    commit = hub_server.commits(REPO)[-1]
    assert hub.commit == commit["oid"] and hub.ref == str(hub) == f"{HUB}@v2.0.0"
    assert hub.location == HUB and hub.path is None and hub.url is not None and hub.url.endswith(f"{REPO}/tree/v2.0.0")
    with pytest.raises(TypeError, match="no local folder"):
        Path(hub)
    snapshot, _ = download_prior(parse_ref(hub.ref))
    for name, sha in local.files.items():  # what the Hub serves is what the local registry holds
        assert hashlib.sha256((snapshot / name).read_bytes()).hexdigest() == sha
        assert (local.path / name).read_bytes() == (snapshot / name).read_bytes()


# -- offline -----------------------------------------------------------------------------------
def test_offline_loads_cached_tags_without_network(tiny_registry: Path, hub_server: HubTestServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import dwp_hub

    _publish(tiny_registry, "tiny-7x7", "1.0.0")
    _publish(tiny_registry, "tiny-7x7", "1.1.0")
    dwp_hub.load(f"{HUB}@v1.0.0")
    dwp_hub.load(HUB)  # main (1.1.0)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = hub_server.count()
    assert dwp_hub.load(f"{HUB}@v1.0.0").card.version == "1.0.0"
    assert dwp_hub.load(HUB).card.version == "1.1.0"
    assert hub_server.count() == before
    with pytest.raises(OfflineError, match="offline") as info:
        dwp_hub.load(f"{HUB}@v1.1.0")  # the tag was never resolved here
    assert "HF_HUB_OFFLINE" in str(info.value)
    with pytest.raises(OfflineError, match="needs the Hub") as info:
        list_hub_versions(HUB)
    assert "Versions in the local cache: v1.0.0." in str(info.value)  # main is a branch, not a version
    assert isinstance(info.value, ConnectionError)

    # Fresh processes that import huggingface_hub with the offline variable already set.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    results = _run_workers([(f"{HUB}@v1.0.0", {"HF_HUB_OFFLINE": "1"}), (HUB, {"DWP_HUB_OFFLINE": "1"})], monkeypatch)
    assert sorted(r[:1] + r[3:] for r in results) == [("ok", "tiny-7x7@1.0.0"), ("ok", "tiny-7x7@1.1.0")], results
    assert hub_server.count() == before

    # No network at all: cached references still load, others fail clearly.
    hub_server.stop()
    assert dwp_hub.load(f"{HUB}@v1.0.0").card.version == "1.0.0"
    with pytest.raises(OfflineError, match="Cannot reach the Hub"):
        dwp_hub.load(f"{HUB}@v1.1.0")


# -- integrity ---------------------------------------------------------------------------------
def test_tampered_cache_is_refused_not_redownloaded(tiny_registry: Path, hub_server: HubTestServer) -> None:
    import dwp_hub
    from dwp_hub._api import load_folder

    _publish(tiny_registry, "tiny-7x7", "1.0.0")
    folder, _ = download_prior(parse_ref(f"{HUB}@v1.0.0"))
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as fh:  # flips the last tensor byte, through the cache's symlink
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 0xFF]))
    published = json.loads((folder / "checksums.json").read_text())["model.safetensors"]
    tampered = hashlib.sha256(weights.read_bytes()).hexdigest()
    gets = hub_server.count("GET", "/resolve/")
    for _ in range(2):  # same verdict every time: no silent re-download loop
        with pytest.raises(IntegrityError) as info:
            dwp_hub.load(f"{HUB}@v1.0.0")
        message = str(info.value)
        assert "model.safetensors" in message and len(set(_HEX.findall(message)) - {folder.name}) >= 2
        # caught by the first layer: the LFS file's sha256 against the ETag the Hub named its blob with
        assert f"is modified: sha256 {tampered}, expected {published} (the Hub's ETag)" in message
    assert hub_server.count("GET", "/resolve/") == gets
    # The checksum and card layers catch it too (used for every local and Hub load).
    with pytest.raises(IntegrityError, match=r"model\.safetensors is modified: sha256 [0-9a-f]{64}, expected [0-9a-f]{64}"):
        load_folder(folder)

    # Editing a file *and* checksums.json consistently still contradicts the Hub's record.
    from dwp_hub._fs import sha256_file

    _publish(tiny_registry, "tiny-7x7", "1.1.0")
    folder, _ = download_prior(parse_ref(f"{HUB}@v1.1.0"))
    # A plain copy in place of the cache's symlink is checked against the cached tree listing.
    link = folder / "README.md"
    text = link.read_text()
    link.unlink()
    link.write_text(text + "\nTampered.\n")
    with pytest.raises(IntegrityError, match=r"README\.md .* git blob id [0-9a-f]{40} .* expected [0-9a-f]{40} \(the Hub's tree"):
        download_prior(parse_ref(f"{HUB}@v1.1.0"))
    link.unlink()
    folder, _ = download_prior(parse_ref(f"{HUB}@v1.1.0"))  # the pointer is re-created from the intact blob
    readme = Path(folder / "README.md").resolve()
    readme.write_text(readme.read_text() + "\nTampered.\n")
    sums_path = Path(folder / "checksums.json").resolve()
    sums = json.loads(sums_path.read_text())
    sums["README.md"] = sha256_file(readme)
    sums_path.write_text(json.dumps(sums))
    with pytest.raises(IntegrityError, match=r"README\.md .* is modified: git sha1 [0-9a-f]{40}, expected [0-9a-f]{40} "
                                             r"\(the Hub's ETag\)"):  # the regular file's git blob sha1
        download_prior(parse_ref(f"{HUB}@v1.1.0"))


def test_version_tag_must_hold_that_version(tiny_registry: Path, hub_server: HubTestServer) -> None:
    _publish(tiny_registry, "tiny-7x7", "1.0.0")
    repo = hub_server.repos[REPO]
    repo["tags"]["v2.0.0"] = repo["tags"]["v1.0.0"]  # a mis-placed tag
    with pytest.raises(IntegrityError, match="tag v2.0.0 holds the card of tiny-7x7@1.0.0"):
        download_prior(parse_ref(f"{HUB}@v2.0.0"))


# -- concurrency and broken transfers ----------------------------------------------------------
def test_concurrent_processes_share_an_empty_cache(tiny_registry: Path, hub_server: HubTestServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _publish(tiny_registry, "tiny-7x7", "1.0.0")
    assert not hub_server.cache.exists()
    hub_server.chunk_delay = 0.01  # slow transfers so the four downloads overlap
    names = ("model.safetensors", "README.md", "samples.png", "checksums.json")
    before = {name: hub_server.count("GET", f"/{name}") for name in names}
    results = _run_workers([(f"{HUB}@v1.0.0", {})] * 4, monkeypatch, barrier=True)
    assert all(r[0] == "ok" for r in results), results
    assert len({r[1:] for r in results}) == 1
    assert results[0][3] == "tiny-7x7@1.0.0"
    _cache_is_clean(hub_server.cache)
    for name in names:  # the cache's file locks: one transfer per file, the others reuse it
        assert hub_server.count("GET", f"/{name}") == before[name] + 1, name
    folder, commit = download_prior(parse_ref(f"{HUB}@v1.0.0"))
    assert str(folder) == results[0][1] and commit == results[0][2]


def test_dropped_connection_leaves_no_partial_file(tiny_registry: Path, hub_server: HubTestServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.file_download

    import dwp_hub

    monkeypatch.setattr(huggingface_hub.file_download, "time", SimpleNamespace(sleep=lambda s: None))
    _publish(tiny_registry, "tiny-7x7", "1.0.0")
    hub_server.drop_connection("model.safetensors", after_bytes=1000)
    with pytest.raises(DownloadInterruptedError, match="broke off"):
        dwp_hub.load(f"{HUB}@v1.0.0")
    _cache_is_clean(hub_server.cache)
    assert not any(p.name == "model.safetensors" for p in hub_server.cache.rglob("snapshots/*/*"))
    with monkeypatch.context() as m:
        m.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(OfflineError, match="incomplete"):
            dwp_hub.load(f"{HUB}@v1.0.0")
    # A connection that drops once is retried by huggingface_hub and ends verified.
    hub_server.drop_connection("model.safetensors", after_bytes=1000, times=1)
    gets = hub_server.count("GET", "/model.safetensors")
    assert dwp_hub.load(f"{HUB}@v1.0.0").card.spec == "tiny-7x7@1.0.0"
    assert hub_server.count("GET", "/model.safetensors") == gets + 2
    _cache_is_clean(hub_server.cache)


def test_concurrent_publish_is_refused_not_mixed(tiny_registry: Path, hub_server: HubTestServer) -> None:
    _publish(tiny_registry, "tiny-7x7", "1.0.0")

    def someone_else_pushes(repo_id: str) -> None:  # lands between our refs check and our commit
        hub_server.before_commit = None
        repo = hub_server.repos[repo_id]
        head = repo["branches"]["main"]
        repo["branches"]["main"] = hub_server._new_commit(repo, head, dict(repo["commits"][head]["files"]), "other")

    hub_server.before_commit = someone_else_pushes
    with pytest.raises(HubError, match="changed on .* while publishing"):
        _publish(tiny_registry, "tiny-7x7", "1.1.0")
    assert [c["title"] for c in hub_server.commits(REPO)][-1] == "other"
    assert list(hub_server.repos[REPO]["tags"]) == ["v1.0.0"]
    assert _publish(tiny_registry, "tiny-7x7", "1.1.0") == f"{HUB}@v1.1.0"  # a retry succeeds


# -- bad input -----------------------------------------------------------------------------------
def test_errors_are_distinct_and_never_show_the_token(tiny_registry: Path, hub_server: HubTestServer,
                                                      monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    import huggingface_hub
    from typer.testing import CliRunner

    from dwp_hub.cli import app

    import dwp_hub

    _publish(tiny_registry, "tiny-7x7", "1.0.0")
    with pytest.raises(RemoteNotFoundError, match="No Hub repository 'dwp/missing'") as info:
        dwp_hub.load("hf-hub:dwp/missing")
    assert not isinstance(info.value, RevisionNotFoundError) and isinstance(info.value, LookupError)
    assert (info.value.repo_id, info.value.revision) == ("dwp/missing", None)  # the fields a caller inspects
    with pytest.raises(RevisionNotFoundError, match="no revision 'v9.9.9'") as info:
        dwp_hub.load(f"{HUB}@v9.9.9")
    assert (info.value.repo_id, info.value.revision) == (REPO, "v9.9.9")
    with pytest.raises(RemoteNotFoundError, match="No Hub repository 'dwp/missing'") as info:
        list_hub_versions("hf-hub:dwp/missing")
    assert not isinstance(info.value, RevisionNotFoundError) and info.value.repo_id == "dwp/missing"

    monkeypatch.setenv("HF_TOKEN", "hf_not_a_valid_token_42")
    caplog.set_level(logging.DEBUG)
    for call in (lambda: dwp_hub.load(f"{HUB}@v1.0.0"), lambda: _publish(tiny_registry, "tiny-7x7", "1.1.0")):
        with pytest.raises(AuthenticationError, match="refused the token") as info:
            call()
        assert "hf_not_a_valid_token_42" not in str(info.value)
        assert isinstance(info.value, PermissionError) and isinstance(info.value, HubError)
        assert info.value.repo_id == REPO
    res = CliRunner().invoke(app, ["info", f"{HUB}@v1.0.0"])
    assert res.exit_code == 1 and "refused the token" in res.output and "hf_not_a_valid_token_42" not in res.output
    monkeypatch.setenv("HF_TOKEN", hub_server.read_token)
    with pytest.raises(AuthenticationError, match="HTTP 403: You don't have the rights to write") as info:
        _publish(tiny_registry, "tiny-7x7", "1.1.0")
    assert hub_server.read_token not in str(info.value)
    printed = "".join(capfd.readouterr()) + caplog.text  # nothing printed or logged on the way shows a token
    assert "hf_not_a_valid_token_42" not in printed and hub_server.read_token not in printed
    monkeypatch.delenv("HF_TOKEN")
    assert huggingface_hub.get_token() is None
    with pytest.raises(AuthenticationError, match="No Hugging Face token") as info:
        _publish(tiny_registry, "tiny-7x7", "1.1.0")
    assert (info.value.repo_id, info.value.revision) == (REPO, None)
    assert [t for t in hub_server.repos[REPO]["tags"]] == ["v1.0.0"]
    assert issubclass(DownloadInterruptedError, HubError) and issubclass(OfflineError, HubError)
    assert issubclass(DownloadInterruptedError, ConnectionError) and issubclass(OfflineError, ConnectionError)
    assert issubclass(HubError, OSError) and issubclass(RevisionNotFoundError, LookupError)


def test_pull_never_replaces_a_local_version_with_other_files(tiny_registry: Path, hub_server: HubTestServer,
                                                              tmp_path: Path) -> None:
    from dwp_hub.registry._hf import pull_prior

    _publish(tiny_registry, "tiny-7x7", "1.0.0")  # re-stamped on publish: other bytes than the local 1.0.0
    _publish(tiny_registry, "tiny-7x7", "1.1.0")
    folder = tiny_registry / "tiny-7x7" / "1.0.0"
    local = {f.name: f.read_bytes() for f in folder.iterdir()}
    index = (tiny_registry / "index.json").read_bytes()
    snapshot, _ = download_prior(parse_ref(f"{HUB}@v1.0.0"))
    assert (snapshot / "checksums.json").read_bytes() != local["checksums.json"]
    with pytest.raises(PriorExistsError, match="different files") as info:
        pull_prior(f"{HUB}@v1.0.0", tiny_registry)
    assert isinstance(info.value, FileExistsError)
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == local
    assert (tiny_registry / "index.json").read_bytes() == index
    mirror = tmp_path / "mirror"
    first, again = pull_prior(f"{HUB}@v1.0.0", mirror), pull_prior(f"{HUB}@v1.0.0", mirror)
    assert [(r.spec, r.added) for r in first + again] == [("tiny-7x7@1.0.0", True), ("tiny-7x7@1.0.0", False)]
    assert (mirror / "tiny-7x7" / "1.0.0" / "checksums.json").read_bytes() == (snapshot / "checksums.json").read_bytes()
    every = pull_prior(HUB, tmp_path / "all", all_versions=True)  # every version tag, oldest first
    assert [(r.spec, r.added) for r in every] == [("tiny-7x7@1.0.0", True), ("tiny-7x7@1.1.0", True)]


# -- CLI: list, info, pull, push, verify ---------------------------------------------------------
def test_cli_push_list_info_pull_verify(tiny_registry: Path, hub_server: HubTestServer, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dwp_hub.cli import app

    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        out = " ".join(result.output.split())
        assert result.exit_code == code, out
        assert "Traceback" not in out and hub_server.write_token not in out
        return out

    assert "hf-hub:dwp/tiny-7x7@v1.0.0" in run("push", "tiny-7x7@1.0.0", "--to", HUB)
    out = run("push", "tiny-7x7", "--all", "--to", HUB)
    assert "tiny-7x7@1.0.0 already" in out and "hf-hub:dwp/tiny-7x7@v1.1.0" in out
    out = run("list", HUB)
    assert "1.1.0" in out and "v1.0.0" in out
    tags = hub_server.repos[REPO]["tags"]
    out = run("info", f"{HUB}@v1.0.0")
    assert "tiny-7x7@1.0.0" in out and tags["v1.0.0"][:12] in out  # the tag's own commit
    out = run("verify", f"{HUB}@v1.1.0")
    assert "OK" in out and tags["v1.1.0"][:12] in out

    mirror = tmp_path / "mirror"
    assert "Pulled tiny-7x7@1.1.0" in run("pull", HUB, "--to", str(mirror))
    assert "Already present: tiny-7x7@1.1.0" in run("pull", HUB, "--to", str(mirror))
    run("pull", HUB, "--all", "--to", str(mirror))
    reg = LocalRegistry(mirror)
    assert reg.versions("tiny-7x7") == [Version(1, 0, 0), Version(1, 1, 0)]
    reg.verify("tiny-7x7", Version(1, 0, 0))

    out = run("info", "hf-hub:dwp/missing", code=1)
    assert "Error:" in out and "No Hub repository" in out
    out = run("push", "tiny-7x7@1.0.0", "--to", HUB, code=1)
    assert "already has version 1.0.0" in out
    out = run("pull", "tiny-7x7", code=1)
    assert "hf-hub:ORG/REPO" in out

    # a commit the Hub serves happily but whose files contradict the prior's own checksums.json: verify fails
    repo = hub_server.repos[REPO]
    files = dict(repo["commits"][tags["v1.1.0"]]["files"])
    sums = json.loads(hub_server._blob(REPO, files["checksums.json"]))
    sums["README.md"] = "0" * 64
    files["checksums.json"] = hub_server._store_blob(REPO, json.dumps(sums).encode())
    repo["tags"]["v1.1.0"] = hub_server._new_commit(repo, tags["v1.1.0"], files, "tampered")
    out = run("verify", f"{HUB}@v1.1.0", code=1)
    assert "README.md" in out and "OK" not in out

