"""A Kubernetes API server for the lab twin: HTTPS on loopback, bearer-token auth, real answers.

No kube-apiserver can be installed here, so the twin serves the part of the API the runbooks use,
in the apiserver's own formats (research/k8s-ssh.md, part B):

* ``GET /version``; list and get of every kind in :data:`kube_store.RESOURCES`, namespaced
  (``/api/v1/namespaces/{ns}/pods``), across namespaces (``/api/v1/pods``) and cluster-scoped, with
  ``labelSelector`` and ``fieldSelector``; ``GET …/pods/{name}/log`` (``container``, ``tailLines``)
  as ``text/plain``;
* ``PATCH`` (strategic-merge and merge patches merge, json-patch applies operations) and
  ``DELETE``; both change the :class:`~runbook_lab.kube_store.Store`;
* errors as a real apiserver sends them: a JSON ``Status`` (401 ``Unauthorized``, 404 ``NotFound``,
  400 ``BadRequest`` for a bad selector), and a **plain-text** ``404 page not found`` for an API
  group that is not served (a CRD that is not installed).

Every request lands in the twin's request log; anything but GET/HEAD is logged with
``write=True``, whether it succeeded or not, so a read-only run can be proven read-only.

The ``kubernetes`` mapping of ``healthy.yaml`` is the model:

``apiserver``    ``up`` | ``down`` (the port refuses) | ``hang`` (accepts, never answers)
``certificate``  ``valid`` | ``untrusted`` (another CA) | ``expired``
``token``        ``valid`` | ``stale`` (the kubeconfig's token is not accepted: every call is 401)
``version``      the ``gitVersion`` ``/version`` reports
``crds``         the CRDs installed (``applications.argoproj.io``); other groups answer 404
``objects``      the objects (see :mod:`~runbook_lab.kube_store`)
``pod_logs``     ``namespace/pod`` -> log entries ``{ago, level, msg, fields}`` (logrus text lines)
``cached_errors`` Applications whose conditions only the application controller's cache holds
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from . import https
from .certs import CA
from .kube_select import SelectorError
from .kube_store import Resource, Store, StoreError, rfc3339
from .loop import BackgroundLoop
from .net import HOST

if TYPE_CHECKING:
    from .model import RequestLog

_READ = ("GET", "HEAD")
_TEXT = "text/plain; charset=utf-8"
_NEEDS_QUOTES = re.compile(r'[\s"=]')
_BOOL = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True,
         "0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False}


def _status(code: int, reason: str, message: str, details: dict | None = None) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if details:
        body["details"] = details
    return web.json_response(body, status=code)


def _page_not_found() -> web.Response:
    """What the apiserver's mux answers for a path no API group serves: plain text, not a Status."""
    return web.Response(status=404, text="404 page not found\n",
                        headers={"Content-Type": _TEXT, "X-Content-Type-Options": "nosniff"})


def _list_kind(res: Resource) -> str:
    return f"{res.kind}List"


def logrus_line(entry: dict, now: float) -> str:
    """An Argo CD (logrus text) log line: ``time="…" level=info msg="…" key=value``."""
    t = rfc3339(now - float(entry.get("ago", 0)))
    parts = [f'time="{t}"', f"level={entry.get('level', 'info')}", f"msg={json.dumps(str(entry.get('msg', '')))}"]
    for key, value in (entry.get("fields") or {}).items():
        text = str(value)
        parts.append(f"{key}={json.dumps(text) if _NEEDS_QUOTES.search(text) else text}")
    return " ".join(parts)


class KubeApp:
    """The request handler: routing, auth, selectors, the write log."""

    def __init__(self, model: dict, store: Store, token: str, log: "RequestLog", target: str, now: float):
        self.model = model
        self.store = store
        self.token = token
        self.log = log
        self.target = target
        self.now = now

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 << 20)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        write = request.method not in _READ
        try:
            response = self.route(request, body)
        except StoreError as exc:
            response = _status(exc.code, exc.reason, exc.message, exc.details)
        except SelectorError as exc:
            response = _status(400, "BadRequest", str(exc))
        self.log.add("kubernetes", self.target, f"{request.method} {request.path_qs}", write=write,
                     status=response.status)
        return response

    # --- routing -----------------------------------------------------------------------------------
    def route(self, request: web.Request, body: bytes) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        path = request.path.rstrip("/") or "/"
        if path == "/version":
            return self.version()
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
            if not self.store.group_served(group, version):
                return _page_not_found()
        else:
            return _page_not_found()
        return self.resource(request, body, group, version, rest)

    def version(self) -> web.Response:
        git = str(self.model.get("version", "v1.32.3"))
        major, minor = git.lstrip("v").split(".")[:2]
        return web.json_response({
            "major": major, "minor": minor, "emulationMajor": major, "emulationMinor": minor,
            "minCompatibilityMajor": major, "minCompatibilityMinor": str(max(int(minor) - 1, 0)),
            "gitVersion": git, "gitCommit": "32cc146f75aad04beaaa245a7157eb35063a9f99",
            "gitTreeState": "clean", "buildDate": "2025-03-11T19:52:21Z", "goVersion": "go1.23.6",
            "compiler": "gc", "platform": "linux/amd64"})

    def resource(self, request: web.Request, body: bytes, group: str, version: str, rest: list[str]):
        namespace = None
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return _page_not_found()
        res = self.store.served(group, version, rest[0])
        if res is None or (namespace is not None and not res.namespaced):
            return _page_not_found()
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None:
            if res.kind == "Pod" and sub == "log" and request.method == "GET":
                return self.pod_log(namespace or "", name or "", request.query)
            return _page_not_found()
        if res.namespaced and name and namespace is None:
            return _page_not_found()  # /api/v1/pods/x is not a path
        method = request.method
        if name is None:
            if method != "GET":
                return _status(405, "MethodNotAllowed", f"the lab twin does not {method} a collection")
            if _BOOL.get(request.query.get("watch", "false"), False):
                return _status(400, "BadRequest", "the lab twin does not serve watches")
            items = self.store.list(res, namespace, request.query.get("labelSelector"),
                                    request.query.get("fieldSelector"))
            if not res.crd:  # built-in list items carry no kind/apiVersion; custom objects keep theirs
                for item in items:
                    item.pop("kind", None)
                    item.pop("apiVersion", None)
            return web.json_response({"kind": _list_kind(res), "apiVersion": res.api_version,
                                      "metadata": {"resourceVersion": str(next(self.store._rv))},
                                      "items": items})
        if method == "GET":
            return self._object(res, self.store.get(res, namespace or "", name))
        if method == "PATCH":
            try:
                patch = json.loads(body or b"null")
            except ValueError:
                return _status(400, "BadRequest", "the body of the request was not valid JSON")
            obj = self.store.patch(res, namespace or "", name, patch,
                                   request.headers.get("Content-Type", ""), time.time())
            return self._object(res, obj)
        if method == "DELETE":
            obj = self.store.delete(res, namespace or "", name)
            return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                      "details": {"name": name, "group": res.group, "kind": res.plural,
                                                  "uid": obj["metadata"].get("uid")}})
        return _status(405, "MethodNotAllowed", f"the lab twin does not serve {method} for {res.plural}")

    @staticmethod
    def _object(res: Resource, obj: dict) -> web.Response:
        return web.json_response({"kind": res.kind, "apiVersion": res.api_version, **obj})

    def pod_log(self, namespace: str, name: str, query) -> web.Response:
        res = self.store.served("", "v1", "pods")
        pod = self.store.get(res, namespace, name)
        containers = [c["name"] for c in pod["spec"].get("containers") or []]
        container = query.get("container")
        if container is None and len(containers) > 1:
            return _status(400, "BadRequest", f"a container name must be specified for pod {name}, choose one "
                                              f"of: [{' '.join(containers)}]")
        if container is not None and container not in containers:
            return _status(400, "BadRequest", f"container {container} is not valid for pod {name}")
        entries = (self.model.get("pod_logs") or {}).get(f"{namespace}/{name}") or []
        lines = [logrus_line(e, self.now) for e in entries]
        tail = query.get("tailLines")
        if tail is not None:
            n = int(tail)
            lines = lines[-n:] if n > 0 else []
        return web.Response(text="".join(line + "\n" for line in lines), content_type="text/plain")


@dataclass
class KubeServer(https.Endpoint):
    """A running twin apiserver: ``url`` is ``https://127.0.0.1:PORT``; ``store`` holds its objects."""

    store: Store | None = None


async def start_kube(model: dict, *, ca: CA, log: "RequestLog", token: str, now: float,
                     name: str = "homelab", latency: float = 0.0) -> KubeServer:
    """Serve the cluster ``model`` describes on loopback; ``token`` is the bearer token it accepts;
    every request waits ``latency`` seconds (:mod:`.latency`)."""
    store = Store(model, now)
    target = f"kubernetes {name}"
    mode = model.get("apiserver", "up")
    if mode not in ("up", "down", "hang"):
        raise ValueError(f"kubernetes.apiserver: expected up, down or hang, got {mode!r}")
    port, parts = await https.start(
        mode, lambda: KubeApp(model, store, token, log, target, now).app(),
        lambda: https.certificate(ca, model.get("certificate", "valid"), "kube-apiserver",
                                  [HOST, "localhost", "kubernetes", "kubernetes.default.svc"],
                                  field_name="kubernetes.certificate", untrusted_dir="kube-untrusted-ca"),
        lambda: log.add("kubernetes", target, "CONNECT (never answered)"), latency)
    return KubeServer(port, store=store, **parts)


def write_kubeconfig(path: Path, *, server: str, ca_file: Path, token: str, cluster: str = "homelab",
                     user: str = "runbook") -> Path:
    """A kubeconfig like ``omnictl kubeconfig --service-account`` writes: one context, a bearer token."""
    ca_data = base64.b64encode(Path(ca_file).read_bytes()).decode()
    context = f"{user}@{cluster}"
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "namespace": "default", "user": context}}],
        "current-context": context,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(yaml.safe_dump(doc, sort_keys=False))
    return path


class StandaloneKube:
    """Only the twin's Kubernetes API server, on a loop of its own (for tests and benchmarks).

    ``model`` is a ``kubernetes`` mapping (placeholders such as ``${ago:N}`` allowed); the
    kubeconfig, CA and request log are written into ``workdir``.
    """

    def __init__(self, model: dict, workdir: Path):
        self.model = model
        self.workdir = Path(workdir)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.server: KubeServer | None = None
        self.log: "RequestLog | None" = None
        self.token = ""
        self._loop: BackgroundLoop | None = None

    def start(self) -> Path:
        from .model import RequestLog, fill

        self.workdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        values: dict[str, Any] = {"now": int(now)}
        model = fill(self.model, values)
        accepted = fill("${secret:kube_token}", values)
        given = accepted if model.get("token", "valid") == "valid" else fill("${secret:kube_token_stale}", values)
        self.token = given
        ca = CA.create(self.workdir / "pki")
        self.ca_file = Path(ca.cert_path)
        self.log = RequestLog(self.workdir / "requests.jsonl")
        self._loop = BackgroundLoop("lab-kube")
        self.server = self._loop.run(start_kube(model, ca=ca, log=self.log, token=accepted, now=now))
        write_kubeconfig(self.kubeconfig, server=self.server.url, ca_file=self.ca_file, token=given)
        return self.kubeconfig

    def stop(self) -> None:
        if self._loop is None:
            return
        if self.server is not None:
            self._loop.run(self.server.stop(), timeout=10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> "StandaloneKube":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def writes(self) -> list[dict]:
        return self.log.writes() if self.log else []
