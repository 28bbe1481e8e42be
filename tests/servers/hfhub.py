"""A stand-in for the Hugging Face hub on 127.0.0.1, for the hf store family's tests.

It answers the routes huggingface_hub (HfApi, hf_hub_url downloads, HfFileSystem) uses, the way
huggingface.co answers them: repo info, paginated tree listings (cursor in a `Link: <...>;
rel="next"` header with an absolute URL, as the hub sends), paths-info, and `resolve` downloads
with HTTP Range, LFS files redirected to a "CDN" route as the hub does. It counts every request by
kind so tests can assert how many tree pages were fetched and that no object bytes were read.

Nothing here is a faithful hub: no Xet (tree entries never carry `xetHash`, so clients take the
plain HTTP path), no commits API, no uploads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

#: The page size huggingface.co uses for tree listings (and the smaller one with expand=true).
HUB_PAGE_SIZE = 1000
HUB_EXPANDED_PAGE_SIZE = 50

_KIND_PREFIX = {"models": "", "datasets": "datasets/", "spaces": "spaces/"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob: what the hub reports as a file's `oid` and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's own object id


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file git stores in place of an LFS file's bytes."""
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


@dataclass
class HubRepo:
    """One repository: commits (sha -> files), refs (branch or tag -> sha), which paths are LFS,
    and who may read it.

    `gated`: every route answers 401 (no token) or 403 (a token not in `allowed_tokens`) with
    `X-Error-Code: GatedRepo`. `private`: 401 without a token, 404 `RepoNotFound` with a token not
    allowed, as the hub does so as not to reveal that the repo exists.
    """

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    lfs: set[str] = field(default_factory=set)
    default_branch: str = "main"
    gated: bool = False
    private: bool = False
    allowed_tokens: set[str] = field(default_factory=set)

    def resolve(self, revision: str | None) -> str | None:
        """The commit sha a branch, tag or sha names (None: no such revision)."""
        rev = revision or self.default_branch
        if rev in self.refs:
            return self.refs[rev]
        return rev if rev in self.commits else None


class HubStandIn:
    """The server and its in-memory repositories; start() binds a free port on 127.0.0.1.

    Repository keys are what `Location.container` holds: `org/name` for models,
    `datasets/org/name` and `spaces/org/name` for the other kinds.
    """

    def __init__(self, page_size: int = HUB_PAGE_SIZE, lfs_redirect: bool = True) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.page_size = page_size
        #: Answer LFS downloads with a 302 to <cdn>/_cdn/<sha256>, as the hub redirects to its CDN.
        self.lfs_redirect = lfs_redirect
        #: Answer ranged GETs with the whole file (200), as a misconfigured mirror or proxy might.
        self.ignore_range = False
        self.lock = threading.Lock()
        #: Requests by kind: info, tree, paths-info, resolve-head, resolve-get, cdn-head, cdn-get.
        self.counts: Counter[str] = Counter()
        #: Every request in order: (kind, method, path and query, Range header or None, status).
        self.log: list[tuple[str, str, str, str | None, int]] = []
        #: Bytes of file content sent in GET responses (resolve and cdn).
        self.bytes_served = 0
        #: Called with the kind of each request before it is answered (tests use it to pause).
        self.on_request: Any = None
        self._server: _Server | None = None
        self._cdn: _Server | None = None
        #: CDN requests that carried an Authorization header (a client leaking the token off the hub).
        self.cdn_authorized = 0
        self._blobs: dict[str, bytes] = {}  # sha256 -> bytes, what the CDN route serves

    # ----------------------------------------------------------------- repositories

    def add_repo(self, repo_id: str, files: dict[str, bytes], *, lfs: set[str] | frozenset[str] = frozenset(),
                 branch: str = "main", **options: Any) -> str:
        """Create a repository with one commit on `branch`; returns the commit sha."""
        self.repos[repo_id] = HubRepo(lfs=set(lfs), default_branch=branch, **options)
        return self.commit(repo_id, files, branch=branch)

    def commit(self, repo_id: str, files: dict[str, bytes], *, branch: str = "main",
               lfs: set[str] | frozenset[str] = frozenset()) -> str:
        """Add a commit holding exactly `files` and point `branch` at it; returns its sha."""
        repo = self.repos[repo_id]
        repo.lfs |= set(lfs)
        digest = hashlib.sha1(repo_id.encode())  # a commit id
        digest.update(str(len(repo.commits)).encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
        sha = digest.hexdigest()
        repo.commits[sha] = dict(files)
        repo.refs[branch] = sha
        for path, data in files.items():
            if path in repo.lfs:
                self._blobs[hashlib.sha256(data).hexdigest()] = data
        return sha

    def reset_counts(self) -> None:
        with self.lock:
            self.counts.clear()
            self.log.clear()
            self.bytes_served = 0

    def ranges(self, kinds: tuple[str, ...] = ("resolve-get", "cdn-get")) -> list[str | None]:
        """The Range header of each content GET so far (None: a whole-file GET)."""
        with self.lock:
            return [rng for kind, method, _, rng, _ in self.log if kind in kinds and method == "GET"]

    # ----------------------------------------------------------------- server

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cdn(self) -> str:
        """Where LFS downloads are redirected: another origin, as the hub's CDN is, so clients
        drop the Authorization header and huggingface_hub reads metadata off the 302 itself."""
        assert self._cdn is not None, "not started"
        host, port = self._cdn.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubStandIn:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._cdn = _Server(("127.0.0.1", 0), handler)
        for server in (self._server, self._cdn):
            # A short poll so stop() returns at once (the default 0.5 s adds up over a suite).
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                             name="hf-standin", daemon=True).start()
        return self

    def stop(self) -> None:
        for server in (self._server, self._cdn):
            if server is not None:
                server.shutdown()
                server.server_close()
        self._server = self._cdn = None

    def __enter__(self) -> HubStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- entries

    def entries(self, repo: HubRepo, sha: str) -> list[dict[str, Any]]:
        """Every file and directory of a commit as the tree API shows them, in path order."""
        files = repo.commits[sha]
        dirs = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}
        out: list[dict[str, Any]] = []
        for d in dirs:
            oid = hashlib.sha1(f"{sha}:{d}".encode()).hexdigest()
            out.append({"type": "directory", "oid": oid, "size": 0, "path": d})
        for path, data in files.items():
            entry: dict[str, Any] = {"type": "file", "size": len(data), "path": path}
            if path in repo.lfs:
                pointer = lfs_pointer(data)
                entry["oid"] = git_blob_oid(pointer)
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                "pointerSize": len(pointer)}
            else:
                entry["oid"] = git_blob_oid(data)
            out.append(entry)
        return sorted(out, key=lambda e: e["path"])


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hang up (a reader cutting off a body it did not ask for)."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandIn
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read hub.log instead
        pass

    # ----------------------------------------------------------------- plumbing

    def _record(self, kind: str, status: int) -> None:
        with self.hub.lock:
            self.hub.counts[kind] += 1
            self.hub.log.append((kind, self.command, self.path, self.headers.get("Range"), status))

    def _send(self, kind: str, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self._record(kind, status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: its choice
                self.close_connection = True

    def _json(self, kind: str, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(kind, 200, json.dumps(payload).encode(), headers)

    def _error(self, kind: str, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(kind, status, json.dumps({"error": message}).encode(), headers)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        return auth[7:] if auth.startswith("Bearer ") else None

    def _repo(self, kind: str, repo_id: str) -> HubRepo | None:
        """The repository, or None after answering the error the hub would."""
        repo = self.hub.repos.get(repo_id)
        token = self._token()
        if repo is None:
            self._error(kind, 404, "RepoNotFound", "Repository not found")
            return None
        if repo.private and token not in repo.allowed_tokens:
            if token is None:
                self._error(kind, 401, "RepoNotFound", "Invalid username or password.")
            else:
                self._error(kind, 404, "RepoNotFound", "Repository not found")
            return None
        if repo.gated and token not in repo.allowed_tokens:
            status = 401 if token is None else 403
            self._error(kind, status, "GatedRepo", f"Access to model {repo_id} is restricted.")
            return None
        return repo

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        raw = [p for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        if self.hub.on_request is not None:
            self.hub.on_request(self._kind(raw))
        if raw[:1] == ["api"] and len(raw) >= 4 and raw[1] in _KIND_PREFIX:
            repo_id = _KIND_PREFIX[raw[1]] + unquote(raw[2]) + "/" + unquote(raw[3])
            rest = raw[4:]
            if not rest and self.command == "GET":
                return self._info(repo_id, None, query)
            if len(rest) == 2 and rest[0] == "revision" and self.command == "GET":
                return self._info(repo_id, unquote(rest[1]), query)
            if len(rest) >= 2 and rest[0] == "tree" and self.command == "GET":
                path = "/".join(unquote(p) for p in rest[2:])
                return self._tree(repo_id, unquote(rest[1]), path, query, url.query)
            if len(rest) == 2 and rest[0] == "paths-info" and self.command == "POST":
                return self._paths_info(repo_id, unquote(rest[1]))
        if raw[:1] == ["_cdn"] and len(raw) == 2 and self.command in ("GET", "HEAD"):
            if self.headers.get("Authorization"):
                with self.hub.lock:
                    self.hub.cdn_authorized += 1
            data = self.hub._blobs.get(raw[1])
            if data is None:
                return self._error("cdn-" + self.command.lower(), 404, None, "no such object")
            return self._content("cdn-" + self.command.lower(), data, {"ETag": f'"{raw[1]}"'})
        kind_prefix = ""
        if raw and raw[0] in ("datasets", "spaces"):
            kind_prefix, raw = raw[0] + "/", raw[1:]
        if len(raw) >= 5 and raw[2] == "resolve" and self.command in ("GET", "HEAD"):
            repo_id = kind_prefix + unquote(raw[0]) + "/" + unquote(raw[1])
            return self._resolve(repo_id, unquote(raw[3]), "/".join(unquote(p) for p in raw[4:]))
        self._error("other", 404, None, f"no route for {self.command} {url.path}")

    def _kind(self, raw: list[str]) -> str:
        if raw[:1] == ["api"]:
            return "tree" if "tree" in raw else "paths-info" if "paths-info" in raw else "info"
        if raw[:1] == ["_cdn"]:
            return "cdn-" + self.command.lower()
        return "resolve-" + self.command.lower()

    # ----------------------------------------------------------------- routes

    def _info(self, repo_id: str, revision: str | None, query: dict[str, list[str]]) -> None:
        repo = self._repo("info", repo_id)
        if repo is None:
            return
        sha = repo.resolve(revision)
        if sha is None:
            return self._error("info", 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        org_name = repo_id.split("/", 1)[1] if repo_id.startswith(("datasets/", "spaces/")) else repo_id
        payload: dict[str, Any] = {
            "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
            "id": org_name,
            "sha": sha,
            "private": repo.private,
            "gated": "auto" if repo.gated else False,
            "siblings": [{"rfilename": p} for p in sorted(repo.commits[sha])],
        }
        expand = query.get("expand") or query.get("expand[]")
        if expand:  # the hub returns only what was asked for (and the ids)
            payload = {k: v for k, v in payload.items() if k in ("_id", "id", *expand)}
        self._json("info", payload)

    def _tree(self, repo_id: str, revision: str, path: str, query: dict[str, list[str]], raw_query: str) -> None:
        repo = self._repo("tree", repo_id)
        if repo is None:
            return
        sha = repo.resolve(revision)
        if sha is None:
            return self._error("tree", 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        expand = query.get("expand", ["false"])[0].lower() == "true"
        entries = self.hub.entries(repo, sha)
        prefix = path + "/" if path else ""
        if path and not any(e["path"] == path and e["type"] == "directory" for e in entries):
            return self._error("tree", 404, "EntryNotFound", f"{path} does not exist on {revision}")
        inside = [e for e in entries if e["path"].startswith(prefix)]
        if not recursive:
            inside = [e for e in inside if "/" not in e["path"][len(prefix):]]
        page_size = min(self.hub.page_size, HUB_EXPANDED_PAGE_SIZE) if expand else self.hub.page_size
        cursor = query.get("cursor", [""])[0]
        start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        page = inside[start : start + page_size]
        headers = {}
        if start + page_size < len(inside):
            # The hub's next link: an absolute URL repeating the query with an opaque cursor.
            kept = "&".join(p for p in raw_query.split("&") if p and not p.startswith("cursor="))
            token = quote(base64.urlsafe_b64encode(str(start + page_size).encode()).decode(), safe="")
            host = self.headers.get("Host") or self.hub.endpoint.split("://", 1)[1]
            next_url = f"http://{host}{urlsplit(self.path).path}?{kept + '&' if kept else ''}cursor={token}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._json("tree", page, headers)

    def _paths_info(self, repo_id: str, revision: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode()) if length else {}
        repo = self._repo("paths-info", repo_id)
        if repo is None:
            return
        sha = repo.resolve(revision)
        if sha is None:
            return self._error("paths-info", 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        wanted = set(form.get("paths", []))
        self._json("paths-info", [e for e in self.hub.entries(repo, sha) if e["path"] in wanted])

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        kind = "resolve-" + self.command.lower()
        repo = self._repo(kind, repo_id)
        if repo is None:
            return
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(kind, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        data = repo.commits[sha].get(path)
        if data is None:
            return self._error(kind, 404, "EntryNotFound", f"{path} does not exist on {revision}")
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if path in repo.lfs:
            sha256 = hashlib.sha256(data).hexdigest()
            headers.update({"X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data)),
                            "ETag": f'"{sha256}"'})
            if self.hub.lfs_redirect:
                headers["Location"] = f"{self.hub.cdn}/_cdn/{sha256}"
                return self._send(kind, 302, b"", headers)
        else:
            headers["ETag"] = f'"{git_blob_oid(data)}"'
        self._content(kind, data, headers)

    def _content(self, kind: str, data: bytes, headers: dict[str, str]) -> None:
        """The file, or the part a Range header asks for (206), as the hub and its CDN send it."""
        headers = {**headers, "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        size = len(data)
        if rng is None or self.hub.ignore_range:
            body, status = data, 200
        else:
            m = _RANGE.match(rng.strip())
            first, last = (m.group(1), m.group(2)) if m else ("", "")
            if not m or (not first and not last):
                return self._error(kind, 416, None, "bad range")
            if not first:  # suffix range: the last N bytes
                start, end = max(0, size - int(last)), size - 1
            else:
                start, end = int(first), min(int(last) if last else size - 1, size - 1)
            if start >= size or start > end:
                headers["Content-Range"] = f"bytes */{size}"
                return self._send(kind, 416, b"", headers)
            body, status = data[start : end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if self.command == "GET":
            with self.hub.lock:
                self.hub.bytes_served += len(body)
        self._send(kind, status, body, headers, content_type="application/octet-stream")
