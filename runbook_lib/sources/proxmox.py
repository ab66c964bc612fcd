"""The Proxmox VE API of one cluster (proxmoxer over HTTPS), with endpoint failover.

A cluster has one API endpoint per node. :meth:`ProxmoxCluster.get` tries them in order, starting
with the one that answered last, and moves on only when an endpoint is unreachable or times out:
an endpoint that answers with an error (401, 403, 500) speaks for the whole cluster. Every
attempt is a :class:`~runbook_lib.calls.Call`.

proxmoxer raises three unrelated families, told apart here:

* ``AuthenticationError`` (password login refused) and HTTP 401 → :class:`AuthFailed`;
  HTTP 403 → :class:`PermissionDenied`; other HTTP errors → :class:`NotFound` (404, or a 500
  saying something "does not exist") or :class:`CommandFailed`, all carrying ``.status``;
* ``requests`` errors: ``SSLError`` → :class:`TLSFailed`, ``ConnectTimeout`` and
  ``ConnectionError`` → :class:`Unreachable`, ``ReadTimeout`` → :class:`TimedOut`;
* a 2xx answer whose body is not JSON → :class:`Malformed`.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException

from .. import redact
from .. import site as site_model
from ..calls import Call, CallLog
from ..errors import (
    AuthFailed,
    CommandFailed,
    Malformed,
    NotFound,
    PermissionDenied,
    SourceError,
    TimedOut,
    TLSFailed,
    Unreachable,
)
from ..outcome import Outcome

__all__ = ["ProxmoxCluster", "EndpointProbe", "Credentials", "error_for"]

DEFAULT_PORT = 8006
FAILOVER = (Unreachable, TimedOut)


@dataclass(frozen=True)
class Credentials:
    """How to log in: an API token (``user@realm!name`` + secret) or a user and password."""

    token_id: str | None = None
    token_secret: str | None = None
    user: str | None = None
    password: str | None = None
    verify: bool | str = True  # True, False, or the path of a CA bundle
    connect_timeout: float = 5.0
    read_timeout: float = 15.0

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        who = self.token_id or self.user
        return f"Credentials({who!r}, verify={self.verify!r})"

    def proxmoxer_kwargs(self) -> dict:
        if self.token_id:
            user, _, name = self.token_id.partition("!")
            auth = dict(user=user, token_name=name, token_value=self.token_secret)
        else:
            auth = dict(user=self.user, password=self.password)
        return dict(auth, verify_ssl=self.verify, timeout=(self.connect_timeout, self.read_timeout))

    def problem(self) -> str | None:
        """Why these credentials cannot be used, or None."""
        if self.token_id and self.user:
            return "both an API token and a user/password were given"
        if self.token_id:
            if "!" not in self.token_id or "@" not in self.token_id.partition("!")[0]:
                return "the token ID does not look like user@realm!tokenname"
            return None if self.token_secret else "the API token has no secret"
        if self.user:
            return None if self.password else f"user {self.user} has no password"
        return "no API token and no user/password"

    @property
    def who(self) -> str:
        return f"token {self.token_id}" if self.token_id else f"user {self.user}"


@dataclass
class EndpointProbe:
    """What ``GET /version`` on one endpoint gave: ok, or why not (``kind`` is an error kind)."""

    url: str
    ok: bool
    status: int | None  # HTTP status when there was an answer
    seconds: float
    error: str = ""
    kind: Outcome = Outcome.OK  # ok, or the SourceError's kind: unreachable, timeout, auth, permission, tls, ...
    version: str | None = None  # the PVE version reported when ok

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Endpoint:
    url: str
    host: str
    port: int
    path_prefix: str | None

    @classmethod
    def parse(cls, url: str) -> "_Endpoint":
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        prefix = parts.path.strip("/")
        if prefix.endswith("api2/json"):
            prefix = prefix[: -len("api2/json")].strip("/")
        return cls(url=url, host=host, port=parts.port or DEFAULT_PORT, path_prefix=prefix or None)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


# --- errors ---------------------------------------------------------------------------------------
def _with_status(err: SourceError, status: int | None) -> SourceError:
    err.status = status
    return err


def _reason(text: str) -> str:
    return redact.default().text(text.strip())


_VERIFY = re.compile(r"certificate verify failed: ([^(\]')\"]+)")


def error_for(exc: Exception, target: str, creds: Credentials) -> SourceError:
    """Map what proxmoxer or requests raised to the package's error family."""
    timeouts = f"{creds.connect_timeout:g} s to connect, {creds.read_timeout:g} s to answer"
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, AuthenticationError):  # password login; proxmoxer keeps only the status
        m = re.search(r"code: (\d+)", str(exc))
        status = int(m.group(1)) if m else None
        return _with_status(AuthFailed(target, f"login as {creds.who} was rejected (HTTP {status})"), status)
    if isinstance(exc, ResourceException):
        status = exc.status_code
        detail = _reason(str(exc))
        if status == 401:
            return _with_status(AuthFailed(target, f"{creds.who} was rejected: {detail}"), status)
        if status == 403:
            return _with_status(PermissionDenied(target, f"{creds.who} lacks a privilege: {detail}"), status)
        if status == 404 or (status == 500 and "does not exist" in str(exc.content)):
            return _with_status(NotFound(target, detail), status)
        return _with_status(CommandFailed(target, detail, rc=None, stderr=detail), status)
    if isinstance(exc, requests.exceptions.SSLError):
        m = _VERIFY.search(str(exc))
        why = f"certificate verify failed: {m.group(1).strip()}" if m else _short(exc)
        return TLSFailed(target, f"TLS failed ({why}); set ca_file to the CA that signs the API certificate")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Unreachable(target, f"no answer to the connection within {creds.connect_timeout:g} s")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return TimedOut(target, f"accepted the connection but did not answer in time ({timeouts})")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return Unreachable(target, _connection_reason(exc))
    if isinstance(exc, requests.exceptions.RequestException):
        return Unreachable(target, _short(exc))
    if isinstance(exc, (ValueError, KeyError)):  # a login answer that is not the JSON expected
        return Malformed(target, f"unexpected answer: {type(exc).__name__}: {_reason(str(exc))}")
    return CommandFailed(target, f"{type(exc).__name__}: {_reason(str(exc))}")


def _short(exc: Exception) -> str:
    return _reason(str(exc))[:300]


def _connection_reason(exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "cannot resolve the host name"
    if "No route to host" in text:
        return "no route to host"
    if "Network is unreachable" in text:
        return "network is unreachable"
    if "RemoteDisconnected" in text or "Connection aborted" in text or "reset by peer" in text:
        return "the connection was closed without an answer"
    return _short(exc)


# --- the cluster ----------------------------------------------------------------------------------
class _Meter:
    """Counts the bytes of the responses seen by one session, per thread."""

    def __init__(self):
        self._local = threading.local()

    def reset(self) -> None:
        self._local.bytes_in = 0
        self._local.bytes_out = 0

    def hook(self, response: requests.Response, *args, **kwargs) -> requests.Response:
        request = response.request
        body = request.body if request is not None else None
        sent = len(request.url or "") + (len(body) if isinstance(body, (bytes, str)) else 0) if request else 0
        self._local.bytes_in = getattr(self._local, "bytes_in", 0) + len(response.content or b"")
        self._local.bytes_out = getattr(self._local, "bytes_out", 0) + sent
        return response

    def counts(self) -> tuple[int, int]:
        return getattr(self._local, "bytes_in", 0), getattr(self._local, "bytes_out", 0)


class ProxmoxCluster:
    """The API of one Proxmox VE cluster, reached through any of its endpoints."""

    def __init__(self, name: str, spec: site_model.ProxmoxCluster, calls: CallLog):
        self._setup(name, spec.endpoints, calls, spec=spec, creds=None)

    def _setup(self, name: str, endpoints: list[str], calls: CallLog, *,
               spec: site_model.ProxmoxCluster | None, creds: Credentials | None) -> None:
        self.name = name
        self.spec = spec
        self.calls = calls
        self.endpoints = [_Endpoint.parse(url) for url in endpoints]
        self._creds = creds  # resolved from the site's references on first use when None
        self._apis: dict[int, ProxmoxAPI] = {}
        self._meter = _Meter()
        self._preferred = 0  # the endpoint that answered last is tried first
        self._lock = threading.Lock()

    @classmethod
    def with_credentials(cls, name: str, endpoints: list[str], calls: CallLog, *,
                         token_id: str | None = None, token_secret: str | None = None,
                         user: str | None = None, password: str | None = None,
                         verify: bool | str = True, connect_timeout: float = 5.0,
                         read_timeout: float = 15.0) -> "ProxmoxCluster":
        """A cluster reached with credentials that are not in the site file (the provider's own).

        ``verify`` is True, False or a CA bundle path. Secrets are registered for redaction first.
        Incomplete credentials are not an exception here: every call then fails with
        ``AuthFailed`` (and ``probe()`` reports kind ``auth``), which is what they are.
        """
        redact.register(token_secret)
        redact.register(password)
        creds = Credentials(
            token_id=token_id, token_secret=token_secret, user=user, password=password,
            verify=verify, connect_timeout=connect_timeout, read_timeout=read_timeout,
        )
        cluster = cls.__new__(cls)
        cluster._setup(name, list(endpoints), calls, spec=None, creds=creds)
        return cluster

    # --- credentials and clients -----------------------------------------------------------------
    def _credentials(self) -> Credentials:
        if self._creds is None:
            spec = self.spec
            field = f"proxmox.{self.name}"
            verify: bool | str = spec.ca_file or True
            if not spec.verify_tls:
                verify = False
            if spec.token_id:
                secret = site_model.resolve_secret(spec.token_secret, field=f"{field}.token_secret")
                self._creds = Credentials(token_id=spec.token_id, token_secret=secret, verify=verify,
                                          connect_timeout=spec.connect_timeout,
                                          read_timeout=spec.read_timeout)
            else:
                secret = site_model.resolve_secret(spec.password, field=f"{field}.password")
                self._creds = Credentials(user=spec.user, password=secret, verify=verify,
                                          connect_timeout=spec.connect_timeout,
                                          read_timeout=spec.read_timeout)
        return self._creds

    def _api(self, index: int) -> ProxmoxAPI:
        """The client of one endpoint, built on first use (password login happens here)."""
        with self._lock:
            api = self._apis.get(index)
        if api is not None:
            return api
        ep = self.endpoints[index]
        api = ProxmoxAPI(ep.host, port=ep.port, path_prefix=ep.path_prefix,
                         **self._credentials().proxmoxer_kwargs())
        session = getattr(api, "_store", {}).get("session")
        if isinstance(session, requests.Session):
            session.hooks["response"].append(self._meter.hook)
        with self._lock:
            self._apis[index] = api
        return api

    def target(self, index: int) -> str:
        return f"proxmox {self.name} {self.endpoints[index].address}"

    # --- calls -----------------------------------------------------------------------------------
    def _order(self) -> list[int]:
        n = len(self.endpoints)
        first = self._preferred
        return [(first + i) % n for i in range(n)]

    def get(self, path: str, **params: Any) -> Any:
        """``GET /api2/json<path>`` on the first endpoint that answers; the ``data`` it returned.

        Unreachable or timed-out endpoints are skipped (each attempt is recorded); the last of
        those errors is raised when no endpoint answers.
        """
        if not self.endpoints:
            raise NotFound(f"proxmox {self.name}", "no API endpoint is configured")
        last: SourceError | None = None
        for index in self._order():
            try:
                data = self._get_on(index, path, params)
            except FAILOVER as exc:
                last = exc
                continue
            self._preferred = index
            return data
        assert last is not None
        raise last

    def _get_on(self, index: int, path: str, params: dict) -> Any:
        """One GET on one endpoint; with the site's credentials, made once per run when reads are shared
        (another's credentials, the provider's own, are never shared)."""
        if self.spec is None:
            return self._get_once(index, path, params)
        key = ("proxmox", self.name, index, "/" + path.strip("/"), tuple(sorted(params.items())))
        return copy.deepcopy(self.calls.once(key, lambda: self._get_once(index, path, params)))

    def _get_once(self, index: int, path: str, params: dict) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        action = f"GET {'/' + path.strip('/')}" + (f"?{urlencode(query)}" if query else "")

        def check(call: Call, data: Any) -> None:
            if isinstance(data, dict) and set(data) == {"errors"} and isinstance(data["errors"], bytes):
                raise Malformed(call.target, f"{action} answered with a body that is not JSON")
            call.detail = _summary(data)

        return self._request(index, action, lambda api: api(path.strip("/")).get(**query), check)

    # --- writes (only ever inside a guarded fix) -----------------------------------------------------
    def write(self, method: str, path: str, **params: Any) -> Any:
        """``POST`` or ``DELETE /api2/json<path>``, recorded as a write; the ``data`` PVE returned (a
        task's UPID for migrate, stop and destroy).

        Sent to one endpoint only, the one that answered last: a write that timed out may have
        happened, so it is never repeated on another endpoint. Never shared between callers.
        """
        if method not in ("POST", "DELETE"):
            raise ValueError(f"write method must be POST or DELETE, got {method}")
        query = {k: v for k, v in params.items() if v is not None}
        action = f"{method} {'/' + path.strip('/')}" + (f" {json.dumps(query, sort_keys=True)}" if query else "")

        def send(api):
            resource = api(path.strip("/"))
            return resource.post(**query) if method == "POST" else resource.delete(**query)

        def check(call: Call, data: Any) -> None:
            is_task = isinstance(data, str) and data.startswith("UPID:")
            call.detail = f"HTTP 200, task {data}" if is_task else _summary(data)

        return self._request(self._preferred, action, send, check, write=True)

    def _request(self, index: int, action: str, send, check, *, write: bool = False) -> Any:
        """One call on one endpoint, recorded: ``send(api)`` makes it, ``check(call, data)`` judges
        what came back; a failure becomes the source's error family."""
        creds = self._credentials()
        target = self.target(index)
        with self.calls.record(target, action, write=write) as call:
            self._meter.reset()
            if problem := creds.problem():
                raise AuthFailed(target, f"credentials not usable: {problem}")
            try:
                data = send(self._api(index))
            except Exception as exc:
                self._count(call)
                err = error_for(exc, target, creds)
                call.detail = f"HTTP {err.status}: {err.reason}" if getattr(err, "status", None) else err.reason
                raise err from None
            self._count(call, data)
            check(call, data)
            return data

    def wait_task(self, upid: str, timeout: float = 300.0, interval: float = 1.0) -> str:
        """Poll a task (``/nodes/{node}/tasks/{upid}/status``, never from the shared reads) until it
        stops; its exit status (``OK``). :class:`CommandFailed` when it failed, :class:`TimedOut` when
        it still runs after ``timeout`` seconds."""
        node = upid.split(":")[1] if upid.count(":") > 2 else ""
        deadline = time.monotonic() + timeout
        while True:
            status = self._get_once(self._preferred, f"/nodes/{node}/tasks/{upid}/status", {})
            if (status or {}).get("status") == "stopped":
                exit_status = str(status.get("exitstatus") or "")
                if exit_status != "OK":
                    raise CommandFailed(self.target(self._preferred), f"task {upid} failed: {exit_status}",
                                        rc=None, stderr=exit_status)
                return exit_status
            if time.monotonic() >= deadline:
                raise TimedOut(self.target(self._preferred), f"task {upid} still running after {timeout:g} s")
            time.sleep(interval)

    def _count(self, call: Call, data: Any = None) -> None:
        bytes_in, bytes_out = self._meter.counts()
        if not bytes_in and data is not None:  # no raw response seen: approximate from the data
            bytes_in = len(json.dumps(data, default=str))
        call.bytes_in, call.bytes_out = bytes_in, bytes_out

    def probe(self) -> list[EndpointProbe]:
        """``GET /version`` on every endpoint, in order; never raises for an endpoint's failure."""
        out = []
        for index, ep in enumerate(self.endpoints):
            start = time.monotonic()
            try:
                data = self._get_on(index, "/version", {})
            except SourceError as exc:
                out.append(EndpointProbe(
                    url=ep.url, ok=False, status=getattr(exc, "status", None),
                    seconds=round(time.monotonic() - start, 4), error=exc.reason, kind=exc.kind,
                ))
                continue
            version = data.get("version") if isinstance(data, dict) else None
            out.append(EndpointProbe(url=ep.url, ok=True, status=200,
                                     seconds=round(time.monotonic() - start, 4), version=version))
        return out


def _summary(data: Any) -> str:
    if isinstance(data, list):
        return f"HTTP 200, {len(data)} items"
    return "HTTP 200"
