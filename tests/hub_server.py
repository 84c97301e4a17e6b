"""A loopback TEST DOUBLE of the Hugging Face Hub's HTTP API, for the tests only.

This is not the Hub and not a general-purpose server. It implements just the routes that the
installed ``huggingface_hub`` client (2.x, checked against its source) calls when dwp-hub
publishes, lists and downloads priors, so those code paths run over real HTTP on 127.0.0.1:

====================================================  =========================================
``POST /api/repos/create``                            create a model repo (initial commit with
                                                      ``.gitattributes``; 409 if it exists)
``POST /api/validate-yaml``                           README metadata check: YAML front matter
                                                      parses to a mapping; license, tags,
                                                      datasets, library_name, model-index
                                                      typed as the Hub requires (400 + errors)
``GET  /api/models/{repo}[/revision/{rev}]``          repo info: ``sha``, ``siblings``
``GET  /api/models/{repo}/tree/{rev}[/{path}]``       file listing (``oid`` = git blob sha1)
``GET  /api/models/{repo}/refs``                      branches and tags
``POST /api/models/{repo}/preupload/{rev}``           upload mode: always ``regular``
``POST /api/models/{repo}/commit/{rev}``              NDJSON commit (``file``, ``deletedFile``,
                                                      ``deletedFolder``; ``parentCommit`` -> 412)
``POST /api/models/{repo}/tag/{rev}``                 create a tag (409 if it exists)
``HEAD|GET /{repo}/resolve/{rev}/{path}``             file metadata / content: ``X-Repo-Commit``,
                                                      ``ETag``, ``X-Linked-Etag`` /
                                                      ``X-Linked-Size`` (LFS files),
                                                      ``Content-Length``, ``Range`` (206)
====================================================  =========================================

Errors carry the Hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``) and ``X-Error-Message`` headers. A bearer token the server does not know gets
401 ``Invalid credentials in Authorization header`` on any route; writes need a token with
``write`` permission (401 without a token, 403 with a read-only one).

Uploads: preupload answers ``regular`` for every file, so the client sends contents base64-encoded
in the commit (the LFS / Xet upload protocols are not implemented). Downloads: files whose names
end in one of ``lfs_suffixes`` (``.safetensors``, ``.png`` by default, as the Hub's default
``.gitattributes``) are *described* like LFS files: the tree entry carries ``lfs`` (sha256, size)
and the pointer's git oid, and the resolve response carries ``X-Linked-Etag`` (sha256) and
``X-Linked-Size``; the content is served directly (``200``/``206``, no CDN redirect, no Xet).

State (commits, branches, tags) lives in memory; blobs are stored under a temp directory. The
server answers HTTP/1.0 (one request per connection), so stopping it leaves no pooled connection
alive and the next request fails like an unreachable network.

Test hooks: :attr:`HubTestServer.requests` (every request, for "no network call" assertions),
``range_requests`` (paths fetched with a ``Range`` header), :meth:`HubTestServer.drop_connection`
(cut a download after N bytes), ``chunk_delay`` (slow downloads so concurrent clients overlap),
``before_commit`` (called with the repo id inside a commit, e.g. to simulate a concurrent push),
:meth:`HubTestServer.stop`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from dwp_hub.card import HUB_LICENSES  # the Hub's licence ids, mirrored once in the library

WRITE_TOKEN = "hf_dwphub_test_write_0123456789"
READ_TOKEN = "hf_dwphub_test_read_0123456789"
_GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
_CHUNK = 16 * 1024


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob with this content (the Hub's ETag of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file of ``data`` (what git stores for an LFS file)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n".encode()




def validate_card_metadata(content: str) -> list[str]:
    """What the Hub's ``validate-yaml`` route checks of a model card, as error strings (empty: valid).

    The YAML front matter (between the leading ``---`` lines) must parse to a mapping; ``license`` is a
    known identifier (``other`` needs ``license_name``); ``tags``, ``datasets``, ``language`` and
    ``metrics`` are strings or lists of strings; ``library_name`` and ``pipeline_tag`` are strings; and a
    ``model-index`` converts to evaluation results (huggingface_hub's own parser), every metric with a
    ``type`` and a numeric ``value``.
    """
    import yaml
    from huggingface_hub.repocard_data import model_index_to_eval_results

    text = content.lstrip("\ufeff")
    if not text.startswith("---"):
        return []
    parts = text.split("\n---", 1)
    if len(parts) < 2:
        return ["Metadata front matter is not closed by a '---' line."]
    try:
        meta = yaml.safe_load(parts[0][3:])
    except yaml.YAMLError as err:
        return [f"Invalid YAML in the metadata: {str(err).splitlines()[0]}"]
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return [f"Metadata must be a YAML mapping, got {type(meta).__name__}."]
    errors = []
    lic = meta.get("license")
    if lic is not None:
        if not isinstance(lic, str) or lic not in HUB_LICENSES:
            errors.append(f'"license" must be one of the Hub\'s licence identifiers, got {lic!r}.')
        elif lic == "other" and not meta.get("license_name"):
            errors.append('"license: other" needs a "license_name".')
    for key in ("tags", "datasets", "language", "metrics"):
        value = meta.get(key)
        if value is not None and not (isinstance(value, str)
                                      or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            errors.append(f'"{key}" must be a string or a list of strings.')
    for key in ("library_name", "pipeline_tag"):
        if key in meta and not isinstance(meta[key], str):
            errors.append(f'"{key}" must be a string.')
    if "model-index" in meta:
        index = meta["model-index"]
        try:
            if not isinstance(index, list) or not index:
                raise ValueError("it must be a non-empty list")
            _, results = model_index_to_eval_results(index)
            for r in results:
                if isinstance(r.metric_value, bool) or not isinstance(r.metric_value, (int, float)):
                    raise TypeError(f"metric {r.metric_type!r} has a non-numeric value {r.metric_value!r}")
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            errors.append(f'"model-index" is invalid: {err}.')
    return errors


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class HubTestServer:
    """The test double. ``endpoint`` is the base URL to use as ``HF_ENDPOINT``."""

    def __init__(self, root: Path, tokens: dict[str, str] | None = None,
                 lfs_suffixes: tuple[str, ...] = (".safetensors", ".png")) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tokens = tokens if tokens is not None else {WRITE_TOKEN: "write", READ_TOKEN: "read"}
        self.write_token = next((t for t, perm in self.tokens.items() if perm == "write"), None)
        self.read_token = next((t for t, perm in self.tokens.items() if perm == "read"), None)
        self.lfs_suffixes = lfs_suffixes
        self.repos: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.range_requests: list[str] = []
        self.chunk_delay = 0.0
        self.before_commit: Callable[[str], None] | None = None
        self._drops: dict[str, list[int | None]] = {}
        self._lock = threading.RLock()
        self._counter = 0
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> HubTestServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; later requests fail with a connection error."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    # -- test hooks ----------------------------------------------------------------------
    def drop_connection(self, filename: str, after_bytes: int, times: int | None = None) -> None:
        """Cut GET downloads of ``filename`` at byte offset ``after_bytes`` of the file (the next
        ``times`` downloads, or every one when None): the response announces the full length, sends
        the bytes before that offset (none for a resumed ``Range`` request past it) and closes."""
        with self._lock:
            self._drops[filename] = [after_bytes, times]

    def clear_faults(self) -> None:
        with self._lock:
            self._drops.clear()

    def count(self, method: str | None = None, contains: str = "") -> int:
        """Number of requests seen, optionally by method and path substring."""
        with self._lock:
            return sum(1 for m, p in self.requests if (method is None or m == method) and contains in p)

    def commits(self, repo_id: str) -> list[dict[str, Any]]:
        """Commits of ``main`` from the oldest, each ``{"oid", "title", "files"}``."""
        with self._lock:
            repo = self.repos[repo_id]
            out, oid = [], repo["branches"].get("main")
            while oid:
                out.append({"oid": oid, **repo["commits"][oid]})
                oid = repo["commits"][oid]["parent"]
            return out[::-1]

    # -- state ---------------------------------------------------------------------------
    def _repo(self, repo_id: str) -> dict[str, Any]:
        repo = self.repos.get(repo_id)
        if repo is None:
            raise _HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _resolve(self, repo: dict[str, Any], rev: str) -> str:
        if rev in repo["branches"]:
            return repo["branches"][rev]
        if rev in repo["tags"]:
            return repo["tags"][rev]
        if rev in repo["commits"]:
            return rev
        raise _HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _store_blob(self, repo_id: str, data: bytes) -> str:
        oid = git_blob_sha1(data)
        path = self.root / repo_id.replace("/", "--") / "blobs" / oid
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return oid

    def _blob(self, repo_id: str, oid: str) -> bytes:
        return (self.root / repo_id.replace("/", "--") / "blobs" / oid).read_bytes()

    def _describe(self, repo_id: str, path: str, oid: str) -> tuple[bytes, dict[str, Any]]:
        """Content and tree entry of a file (LFS-style for ``lfs_suffixes``)."""
        data = self._blob(repo_id, oid)
        entry: dict[str, Any] = {"type": "file", "oid": oid, "size": len(data), "path": path}
        if path.endswith(self.lfs_suffixes):
            pointer = lfs_pointer(data)
            entry["oid"] = git_blob_sha1(pointer)
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(pointer)}
        return data, entry

    def _new_commit(self, repo: dict[str, Any], parent: str | None, files: dict[str, str], title: str) -> str:
        self._counter += 1
        seed = json.dumps([parent, sorted(files.items()), title, self._counter, time.time()]).encode()
        oid = hashlib.sha1(seed, usedforsecurity=False).hexdigest()
        repo["commits"][oid] = {"parent": parent, "files": files, "title": title}
        return oid

    def create_repo(self, repo_id: str) -> bool:
        """Create ``repo_id`` with an initial commit; False if it exists."""
        with self._lock:
            if repo_id in self.repos:
                return False
            repo: dict[str, Any] = {"commits": {}, "branches": {}, "tags": {}}
            files = {".gitattributes": self._store_blob(repo_id, _GITATTRIBUTES)}
            repo["branches"]["main"] = self._new_commit(repo, None, files, "initial commit")
            self.repos[repo_id] = repo
            return True


class _Handler(BaseHTTPRequestHandler):
    """Routes one request (HTTP/1.0: the connection closes after each response)."""

    hub: HubTestServer
    protocol_version = "HTTP/1.0"
    server_version = "dwp-hub-test-double/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ------------------------------------------------------------------------
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _json_body(self) -> Any:
        try:
            return json.loads(self._body() or b"{}")
        except json.JSONDecodeError as err:
            raise _HubError(400, f"Invalid JSON body: {err}") from err

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _auth(self, need_write: bool) -> None:
        header = self.headers.get("Authorization")
        perm = None
        if header:
            token = header.removeprefix("Bearer ").strip()
            perm = self.hub.tokens.get(token)
            if perm is None:
                raise _HubError(401, "Invalid credentials in Authorization header")
        if need_write and perm is None:
            raise _HubError(401, "You must be authenticated to perform this action")
        if need_write and perm != "write":
            raise _HubError(403, "You don't have the rights to write to this repository (read-only token)")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        with self.hub._lock:
            self.hub.requests.append((method, url.path))
        segs = [unquote(s) for s in url.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            self._route(method, segs, query)
        except _HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send_json(err.status, {"error": err.message, **({"url": err.headers["X-Url"]} if "X-Url" in err.headers else {})},
                            headers)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, method: str, segs: list[str], query: dict[str, str]) -> None:
        write = method in ("POST", "DELETE") and segs[:2] != ["api", "validate-yaml"]
        self._auth(need_write=write)
        if segs == ["api", "repos", "create"] and method == "POST":
            return self._create_repo()
        if segs == ["api", "validate-yaml"] and method == "POST":
            body = self._json_body()
            errors = validate_card_metadata(str(body.get("content", "")) if isinstance(body, dict) else "")
            if errors:
                return self._send(400, "\n".join(errors).encode(), content_type="text/plain")
            return self._send_json(200, {"errors": [], "warnings": []})
        if len(segs) >= 4 and segs[:2] == ["api", "models"]:
            repo_id, rest = f"{segs[2]}/{segs[3]}", segs[4:]
            if method == "GET" and not rest:
                return self._info(repo_id, "main")
            if method == "GET" and len(rest) == 2 and rest[0] == "revision":
                return self._info(repo_id, rest[1])
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                return self._tree(repo_id, rest[1], "/".join(rest[2:]), query.get("recursive", "") in ("1", "true", "True"))
            if method == "GET" and rest == ["refs"]:
                return self._refs(repo_id)
            if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
                return self._preupload(repo_id, rest[1])
            if method == "POST" and len(rest) == 2 and rest[0] == "commit":
                return self._commit(repo_id, rest[1])
            if method == "POST" and len(rest) == 2 and rest[0] == "tag":
                return self._tag(repo_id, rest[1])
        if len(segs) >= 5 and segs[2] == "resolve" and method in ("HEAD", "GET"):
            return self._resolve_file(f"{segs[0]}/{segs[1]}", segs[3], "/".join(segs[4:]))
        raise _HubError(404, f"{method} {self.path} is not implemented by the dwp-hub test double of the Hub")

    # -- routes --------------------------------------------------------------------------
    def _create_repo(self) -> None:
        body = self._json_body()
        if body.get("type") not in (None, "model"):
            raise _HubError(400, "The test double only hosts model repositories")
        repo_id = f"{body.get('organization') or 'tester'}/{body['name']}"
        url = f"{self.hub.endpoint}/{repo_id}"
        if not self.hub.create_repo(repo_id):
            raise _HubError(409, "You already created this model repo", headers={"X-Url": url})
        self._send_json(200, {"url": url, "name": repo_id})

    def _info(self, repo_id: str, rev: str) -> None:
        with self.hub._lock:
            repo = self.hub._repo(repo_id)
            oid = self.hub._resolve(repo, rev)
            files = repo["commits"][oid]["files"]
        self._send_json(200, {"id": repo_id, "modelId": repo_id, "sha": oid, "private": False, "disabled": False,
                              "gated": False, "tags": [], "siblings": [{"rfilename": f} for f in sorted(files)]})

    def _tree(self, repo_id: str, rev: str, prefix: str, recursive: bool) -> None:
        with self.hub._lock:
            repo = self.hub._repo(repo_id)
            files = repo["commits"][self.hub._resolve(repo, rev)]["files"]
            base = f"{prefix.rstrip('/')}/" if prefix else ""
            entries: dict[str, dict[str, Any]] = {}
            for path, oid in sorted(files.items()):
                if not path.startswith(base):
                    continue
                rel = path[len(base):]
                if recursive or "/" not in rel:
                    entries[path] = self.hub._describe(repo_id, path, oid)[1]
                else:
                    folder = base + rel.split("/")[0]
                    entries[folder] = {"type": "directory", "oid": "0" * 40, "size": 0, "path": folder}
        self._send_json(200, list(entries.values()))

    def _refs(self, repo_id: str) -> None:
        with self.hub._lock:
            repo = self.hub._repo(repo_id)
            def refs(kind: str, items: dict[str, str]) -> list[dict[str, str]]:
                return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": c} for n, c in sorted(items.items())]
            payload = {"branches": refs("heads", repo["branches"]), "converts": [], "tags": refs("tags", repo["tags"]),
                       "pullRequests": []}
        self._send_json(200, payload)

    def _preupload(self, repo_id: str, rev: str) -> None:
        body = self._json_body()
        with self.hub._lock:
            repo = self.hub._repo(repo_id)
            files = repo["commits"][self.hub._resolve(repo, rev)]["files"]
            out = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": files.get(f["path"])}
                   for f in body.get("files", [])]
        self._send_json(200, {"files": out, "commitOid": None})

    def _commit(self, repo_id: str, rev: str) -> None:
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _HubError(400, "The commit payload must start with a header line")
        header = lines[0]["value"]
        with self.hub._lock:
            repo = self.hub._repo(repo_id)
            if rev not in repo["branches"]:
                raise _HubError(404, f"Invalid rev id: {rev} (commits go to a branch)", "RevisionNotFound")
            if self.hub.before_commit is not None:
                self.hub.before_commit(repo_id)
            head = repo["branches"][rev]
            if header.get("parentCommit") and header["parentCommit"] != head:
                raise _HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(repo["commits"][head]["files"])
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                if key == "file":
                    files[value["path"]] = self.hub._store_blob(repo_id, base64.b64decode(value["content"]))
                elif key == "deletedFile":
                    if files.pop(value["path"], None) is None:
                        raise _HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
                elif key == "deletedFolder":
                    files = {p: o for p, o in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
                else:
                    raise _HubError(400, f"Commit operation {key!r} is not supported by the test double (no LFS)")
            oid = self.hub._new_commit(repo, head, files, header.get("summary", ""))
            repo["branches"][rev] = oid
        self._send_json(200, {"success": True, "commitOid": oid, "commitUrl": f"{self.hub.endpoint}/{repo_id}/commit/{oid}",
                              "pullRequestUrl": None})

    def _tag(self, repo_id: str, rev: str) -> None:
        body = self._json_body()
        with self.hub._lock:
            repo = self.hub._repo(repo_id)
            oid = self.hub._resolve(repo, rev)
            tag = body["tag"]
            if tag in repo["tags"]:
                raise _HubError(409, f"Tag {tag} already exists")
            repo["tags"][tag] = oid
        self._send_json(200, {})

    def _resolve_file(self, repo_id: str, rev: str, path: str) -> None:
        with self.hub._lock:
            repo = self.hub._repo(repo_id)
            commit = self.hub._resolve(repo, rev)
            blob = repo["commits"][commit]["files"].get(path)
            if blob is None:
                raise _HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit})
            data, entry = self.hub._describe(repo_id, path, blob)
            drop = self.hub._drops.get(path.rsplit("/", 1)[-1]) if self.command == "GET" else None
            cut = None
            if drop is not None and drop[1] != 0:
                cut = drop[0]
                if drop[1] is not None:
                    drop[1] -= 1
        headers = {"X-Repo-Commit": commit, "ETag": f'"{entry["oid"]}"', "Accept-Ranges": "bytes"}
        if "lfs" in entry:
            headers.update({"X-Linked-Etag": f'"{entry["lfs"]["oid"]}"', "X-Linked-Size": str(len(data))})
        start, end, status = 0, len(data) - 1, 200
        rng = self.headers.get("Range")
        if rng and self.command == "GET":
            with self.hub._lock:
                self.hub.range_requests.append(path)
        if rng and rng.startswith("bytes=") and data:
            lo, _, hi = rng[len("bytes="):].partition("-")
            start = int(lo) if lo else 0
            end = min(int(hi), len(data) - 1) if hi else len(data) - 1
            if start > end:
                raise _HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        body = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = len(body) if cut is None else max(0, min(cut - start, len(body)))
        for i in range(0, limit, _CHUNK):
            self.wfile.write(body[i:min(i + _CHUNK, limit)])
            if self.hub.chunk_delay:
                time.sleep(self.hub.chunk_delay)
        # With a cut, returning closes the connection before Content-Length bytes were sent.


@pytest.fixture()
def hub_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubTestServer]:
    """A running test double, with huggingface_hub pointed at it.

    ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_TOKEN`` (the write token) are set in the
    environment, so subprocesses (which import huggingface_hub afresh) use them; huggingface_hub
    reads its constants at import time, so the already-imported module's constants are patched too.
    ``server.cache`` is the Hugging Face cache directory.
    """
    import huggingface_hub
    from huggingface_hub import constants as hf_constants

    server = HubTestServer(tmp_path / "hub-storage").start()
    hf_home = tmp_path / "hf-home"
    cache = hf_home / "hub"
    for key, value in {"HF_ENDPOINT": server.endpoint, "HF_HOME": str(hf_home), "HF_HUB_CACHE": str(cache),
                       "HF_TOKEN": WRITE_TOKEN, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                       "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_IMPLICIT_TOKEN": ""}.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_OFFLINE", "DWP_HUB_OFFLINE", "HF_OIDC_RESOURCE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for name, value in {
        "ENDPOINT": server.endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": server.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(hf_home), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": False,
        "HF_TOKEN_PATH": str(hf_home / "token"), "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": False,
    }.items():
        monkeypatch.setattr(hf_constants, name, value)
    huggingface_hub.close_session()  # a fresh HTTP client that sees the proxy settings above
    server.cache = cache  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()
        huggingface_hub.close_session()
