"""A Kubernetes cluster through the official ``kubernetes`` client (>= 37): reads, and guarded writes.

One :class:`KubeCluster` per cluster of the site file holds one ``ApiClient`` built with
``kubernetes.config.new_client_from_config`` from that cluster's kubeconfig (no global client
configuration, so several clusters can be asked at once). Every call

* goes through the typed API (``CoreV1Api``, ``AppsV1Api`` ...) so the 37.x client validates what
  the server sent, and comes back as the plain JSON-shaped dict a ``kubectl get -o json`` shows;
* has a deadline: ``_request_timeout=(connect, read)`` and no client-side retries;
* leaves one :class:`~runbook_lib.calls.Call` (``write=True`` for PATCH and DELETE);
* fails only with the :class:`~runbook_lib.errors.SourceError` family:

  ========================================  ==============================================
  what the client raised                    error
  ========================================  ==============================================
  ``ApiException`` 401                      :class:`AuthFailed`
  ``ApiException`` 403                      :class:`PermissionDenied`
  ``ApiException`` 404 (JSON ``Status``)    :class:`NotFound` (the object does not exist)
  ``ApiException`` 404 (plain text)         :class:`NotFound` (the API group is not served:
                                            a CRD that is not installed)
  other ``ApiException``                    :class:`CommandFailed` with ``.status``
  connection refused / no route / DNS       :class:`Unreachable`
  connect timeout                           :class:`Unreachable`
  read timeout                              :class:`TimedOut`
  TLS verification                          :class:`TLSFailed`
  a body the client's models reject         :class:`Malformed`
  kubeconfig missing or unusable            :class:`NotFound` / :class:`Malformed`
  ========================================  ==============================================

Pod logs are read with ``_preload_content=False`` and decoded here: the 36.x client returned
``"b'...'"`` and older ones rewrote JSON log lines into Python reprs.

The kubeconfig's bearer token (or client key) is registered for redaction as soon as it is loaded.
"""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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

__all__ = ["KubeCluster", "Kind", "KINDS", "error_for", "restart_body", "RESTARTED_AT"]

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
LOG_LIMIT = 1 << 20  # bytes of a pod log kept at most
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


@dataclass(frozen=True)
class Kind:
    """How one resource kind is reached through the typed client."""

    name: str  # "DaemonSet"
    api: str  # "AppsV1Api"
    snake: str  # the name in the client's method names: list_namespaced_<snake>
    namespaced: bool = True
    group: str = ""  # "" for the core group
    version: str = "v1"
    plural: str = ""
    custom: bool = False  # served by CustomObjectsApi (a CRD): results are plain dicts

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The REST path, for the call log: ``/apis/apps/v1/namespaces/x/daemonsets``."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return base + (f"/{name}" if name else "")


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("Namespace", "CoreV1Api", "namespace", namespaced=False, plural="namespaces"),
    Kind("Pod", "CoreV1Api", "pod", plural="pods"),
    Kind("Service", "CoreV1Api", "service", plural="services"),
    Kind("Endpoints", "CoreV1Api", "endpoints", plural="endpoints"),
    Kind("Event", "CoreV1Api", "event", plural="events"),
    Kind("Deployment", "AppsV1Api", "deployment", group="apps", plural="deployments"),
    Kind("StatefulSet", "AppsV1Api", "stateful_set", group="apps", plural="statefulsets"),
    Kind("DaemonSet", "AppsV1Api", "daemon_set", group="apps", plural="daemonsets"),
    Kind("EndpointSlice", "DiscoveryV1Api", "endpoint_slice", group="discovery.k8s.io", plural="endpointslices"),
    Kind("NetworkPolicy", "NetworkingV1Api", "network_policy", group="networking.k8s.io",
         plural="networkpolicies"),
    Kind("Application", "CustomObjectsApi", "", group="argoproj.io", version="v1alpha1",
         plural="applications", custom=True),
)}


def kind_of(kind: str | Kind) -> Kind:
    if isinstance(kind, Kind):
        return kind
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}") from None


def restart_body(at: datetime | None = None) -> dict:
    """The strategic-merge patch ``kubectl rollout restart`` sends (a new pod-template annotation)."""
    stamp = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="seconds")
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp.replace("+00:00", "Z")}}}}}


# --- errors -----------------------------------------------------------------------------------------
def _clean(text: str, limit: int = 300) -> str:
    return redact.default().text(" ".join(str(text).split()))[:limit]


def _status_message(body: str | None) -> tuple[str, bool]:
    """The ``message`` of a JSON ``Status`` body, and whether the body was JSON at all."""
    if not body:
        return "", False
    try:
        doc = json.loads(body)
    except ValueError:
        return _clean(body), False
    if isinstance(doc, dict):
        return _clean(doc.get("message") or doc.get("reason") or ""), True
    return _clean(body), True


def _tls(target: str, what: str, text: str) -> TLSFailed:
    m = re.search(r"certificate verify failed: ([^(\])'\"]+)", text)
    why = f"certificate verify failed: {m.group(1).strip()}" if m else _clean(text, 200)
    return TLSFailed(target, f"{what}: TLS failed ({why}); the kubeconfig's certificate-authority-data "
                             "must be the CA that signs the API server's certificate")


def error_for(exc: BaseException, target: str, what: str, timeouts: tuple[float, float]) -> SourceError:
    """Map what the client (or urllib3 below it) raised while doing ``what`` to the error family."""
    import urllib3
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from pydantic import ValidationError

    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status
        message, is_json = _status_message(exc.body)
        if status == 401:
            err: SourceError = AuthFailed(target, f"{what}: 401 Unauthorized: the kubeconfig's credentials "
                                                  "were rejected (expired or revoked token?)")
        elif status == 403:
            err = PermissionDenied(target, f"{what}: 403 Forbidden: {message or 'the user lacks RBAC permission'}")
        elif status == 404 and not is_json:
            err = NotFound(target, f"{what}: the API server does not serve this resource "
                                   f"({message or '404 page not found'}); is its CRD installed?")
        elif status == 404:
            err = NotFound(target, f"{what}: {message or 'not found'}")
        elif status == 0 or status is None:  # the client wraps urllib3's SSLError this way
            text = str(exc.reason or exc)
            if "SSL" in text or "CERTIFICATE" in text:
                return _tls(target, what, text)
            err = Unreachable(target, f"{what}: {_clean(text)}")
        else:
            err = CommandFailed(target, f"{what}: HTTP {status} {exc.reason or ''}: {message}".rstrip(": "))
        err.status = status
        return err
    if isinstance(exc, ValidationError):
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:3])
        return Malformed(target, f"{what}: the answer does not fit the client's model ({fields})")
    if isinstance(exc, ConfigException):
        return Malformed(target, f"kubeconfig: {_clean(exc)}")
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return error_for(exc.reason, target, what, timeouts)
    if isinstance(exc, urllib3.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return _tls(target, what, str(exc))
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
            exc, urllib3.exceptions.NewConnectionError):  # urllib3 makes one a subclass of the other
        return Unreachable(target, f"{what}: no answer to the connection within {timeouts[0]:g} s")
    if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError)):
        return TimedOut(target, f"{what}: accepted the connection but did not answer within {timeouts[1]:g} s")
    if isinstance(exc, urllib3.exceptions.NewConnectionError) or isinstance(exc, ConnectionError):
        text = str(exc)
        if "Connection refused" in text:
            why = "connection refused"
        elif "Name or service not known" in text or "getaddrinfo" in text or "nodename nor servname" in text:
            why = "cannot resolve the host name"
        elif "No route to host" in text:
            why = "no route to host"
        else:
            why = _clean(text, 200)
        return Unreachable(target, f"{what}: {why}")
    if isinstance(exc, (urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError)):
        return Unreachable(target, f"{what}: the connection failed: {_clean(exc, 200)}")
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        return Malformed(target, f"{what}: unexpected answer: {type(exc).__name__}: {_clean(exc, 200)}")
    return CommandFailed(target, f"{what}: {type(exc).__name__}: {_clean(exc, 200)}")


# --- byte counting ------------------------------------------------------------------------------------
class _Meter:
    """Wraps ``ApiClient.call_api`` to count, per thread, the bytes sent and the response it got."""

    def __init__(self, api_client) -> None:
        self._local = threading.local()
        original = api_client.call_api

        def call_api(method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
            sent = len(url or "") + (len(json.dumps(body, default=str)) if body is not None else 0)
            self._local.bytes_out = getattr(self._local, "bytes_out", 0) + sent
            response = original(method, url, header_params=header_params, body=body, post_params=post_params,
                                _request_timeout=_request_timeout)
            self._local.response = response
            return response

        api_client.call_api = call_api

    def reset(self) -> None:
        self._local.bytes_out = 0
        self._local.response = None

    def fill(self, call: Call, fallback: Any = None) -> None:
        response = getattr(self._local, "response", None)
        data = getattr(response, "data", None) if response is not None else None
        if isinstance(data, (bytes, bytearray)):
            call.bytes_in = len(data)
        elif fallback is not None:
            call.bytes_in = len(json.dumps(fallback, default=str))
        call.bytes_out = getattr(self._local, "bytes_out", 0)


# --- the cluster ----------------------------------------------------------------------------------------
class KubeCluster:
    """One cluster of the site file: ``KubeCluster("homelab", site.kubernetes["homelab"], calls)``."""

    def __init__(self, name: str, spec: site_model.KubeCluster, calls: CallLog, *,
                 connect_timeout: float | None = None, read_timeout: float | None = None):
        self.name = name
        self.spec = spec
        self.calls = calls
        self.timeouts = (
            float(connect_timeout or getattr(spec, "connect_timeout", None) or CONNECT_TIMEOUT),
            float(read_timeout or getattr(spec, "read_timeout", None) or READ_TIMEOUT),
        )
        self._api_client = None
        self._meter: _Meter | None = None
        self._server = ""
        self._lock = threading.Lock()

    # --- the client -------------------------------------------------------------------------------------
    @property
    def target(self) -> str:
        return f"kubernetes {self.name}" + (f" {self._server}" if self._server else "")

    def _client(self):
        """The cluster's ``ApiClient``, built on first use from the kubeconfig (under a deadline)."""
        with self._lock:
            if self._api_client is not None:
                return self._api_client
            path = Path(self.spec.kubeconfig).expanduser()
            if not path.is_file():
                raise NotFound(self.target, f"kubeconfig {path} does not exist (see docs/runbooks/argocd.md "
                                            "for `omnictl kubeconfig --service-account`)")
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubeconfig")
            future = pool.submit(self._load, path)
            try:
                api_client = future.result(timeout=sum(self.timeouts))
            except FutureTimeout:
                raise TimedOut(self.target, f"loading kubeconfig {path} did not finish within "
                                            f"{sum(self.timeouts):g} s (an exec credential plugin waiting "
                                            "for a browser login?)") from None
            except SourceError:
                raise
            except Exception as exc:
                raise error_for(exc, self.target, f"kubeconfig {path}", self.timeouts) from None
            finally:
                pool.shutdown(wait=False)
            self._api_client = api_client
            self._meter = _Meter(api_client)
            return api_client

    def _load(self, path: Path):
        from kubernetes import client, config

        configuration = client.Configuration()
        configuration.retries = False  # one attempt per call: the deadline is the deadline
        api_client = config.new_client_from_config(config_file=str(path), context=self.spec.context,
                                                   persist_config=False, client_configuration=configuration)
        cfg = api_client.configuration
        for value in (cfg.api_key or {}).values():
            redact.register(value)
            redact.register(value.split(" ", 1)[-1] if isinstance(value, str) else None)
        parts = urlsplit(cfg.host or "")
        self._server = parts.netloc
        return api_client

    def _api(self, name: str):
        from kubernetes import client

        return getattr(client, name)(self._client())

    def close(self) -> None:
        with self._lock:
            if self._api_client is not None:
                try:
                    self._api_client.close()
                except Exception:  # closing is best effort
                    pass
                self._api_client = None

    def __enter__(self) -> "KubeCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- one call -----------------------------------------------------------------------------------------
    def _call(self, action: str, fn, *, write: bool = False, summarize=None, truncated=None) -> Any:
        try:
            self._client()
        except SourceError as exc:
            with self.calls.record(self.target, action, write=write) as call:
                call.detail = exc.reason
                raise
        with self.calls.record(self.target, action, write=write) as call:
            assert self._meter is not None
            self._meter.reset()
            try:
                result = fn()
            except Exception as exc:
                self._meter.fill(call)
                err = error_for(exc, self.target, action, self.timeouts)
                status = getattr(err, "status", None)
                call.detail = f"HTTP {status}: {err.reason}" if status else err.reason
                raise err from None
            self._meter.fill(call, result)
            call.detail = summarize(result) if summarize else "ok"
            call.truncated = bool(truncated and truncated())
            return result

    def _plain(self, obj: Any) -> Any:
        """A client model as the JSON-shaped dict the server sent (camelCase keys, RFC 3339 times)."""
        if obj is None or isinstance(obj, (dict, list, str, int, float, bool)):
            return obj
        return self._client().sanitize_for_serialization(obj)

    def _get_raw(self, path: str, query: list[tuple[str, Any]] | None = None, accept: str = "application/json"):
        """``GET path``, the response unread (a client ``RESTResponse``); an ``ApiException`` for a
        status other than 2xx. The raw call skips the client's generated API modules (CoreV1Api alone
        is a 4.5 MB module, a second or more to import on a fresh kernel) and its models: the
        runbooks read plain dicts anyway."""
        from kubernetes.client.exceptions import ApiException

        api_client = self._client()
        method, url, headers, body, post = api_client.param_serialize(
            "GET", path, query_params=query or [], header_params={"Accept": accept}, auth_settings=["BearerToken"])
        response = api_client.call_api(method, url, header_params=headers, body=body, post_params=post,
                                       _request_timeout=self.timeouts)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=(response.data or b"").decode(
                "utf-8", errors="replace"), data=None)
        return response

    def _get_json(self, path: str, query: list[tuple[str, Any]] | None = None) -> Any:
        """``GET path`` as the JSON the server sent."""
        response = self._get_raw(path, query)
        response.read()
        return json.loads((response.data or b"").decode("utf-8", errors="replace"))

    # --- reads ------------------------------------------------------------------------------------------
    def version(self) -> dict:
        """``GET /version``: ``gitVersion``, ``platform`` ..."""
        return self._call("GET /version", lambda: self._get_json("/version"),
                          summarize=lambda v: v.get("gitVersion", "ok"))

    def list(self, kind: str | Kind, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict]:
        """Objects of one kind, in ``namespace`` or (``None``) in all namespaces."""
        k = kind_of(kind)
        query = {k2: v for k2, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        action = "GET " + k.path(namespace) + ("?" + "&".join(f"{a}={b}" for a, b in query.items()) if query else "")

        def fetch() -> list[dict]:
            doc = self._get_json(k.path(namespace), list(query.items()))
            if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
                raise Malformed(self.target, f"{action}: the answer is not a list")
            items = doc["items"]
            for item in items:  # a real server leaves kind out of list items; name it for the reader
                item.setdefault("kind", k.name)
                item.setdefault("apiVersion", k.api_version)
            return items

        return self._call(action, fetch, summarize=lambda items: f"HTTP 200, {len(items)} items")

    def get(self, kind: str | Kind, name: str, namespace: str | None = None) -> dict:
        """One object; :class:`NotFound` when it does not exist."""
        k = kind_of(kind)
        action = "GET " + k.path(namespace, name)
        return self._call(action, lambda: self._get_json(k.path(namespace, name)), summarize=lambda _: "HTTP 200")

    def pod_log(self, name: str, namespace: str, *, container: str | None = None, tail_lines: int | None = 200,
                max_bytes: int = LOG_LIMIT) -> str:
        """The last ``tail_lines`` lines of a container's log (at most ``max_bytes``, the newest kept)."""
        params = [f"container={container}"] if container else []
        if tail_lines:
            params.append(f"tailLines={tail_lines}")
        action = f"GET {KINDS['Pod'].path(namespace, name)}/log" + ("?" + "&".join(params) if params else "")
        truncated = {"value": False}

        def fetch() -> str:
            query = [(k, v) for k, v in (("container", container), ("tailLines", tail_lines)) if v]
            response = self._get_raw(f"{KINDS['Pod'].path(namespace, name)}/log", query, accept="*/*").response
            kept = bytearray()
            try:
                for chunk in response.stream(65536):
                    kept += chunk
                    if len(kept) > max_bytes:
                        del kept[: len(kept) - max_bytes]
                        truncated["value"] = True
            finally:
                response.release_conn()
            return kept.decode("utf-8", errors="replace")

        def summary(text: str) -> str:
            return f"HTTP 200, {text.count(chr(10))} lines" + (" (newest kept)" if truncated["value"] else "")

        text = self._call(action, fetch, summarize=summary, truncated=lambda: truncated["value"])
        if text and "\n" in text and truncated["value"]:
            text = text.split("\n", 1)[1]  # drop the partial first line
        return text

    # --- writes (only ever inside a guarded fix) -----------------------------------------------------
    def patch(self, kind: str | Kind, name: str, namespace: str | None, body: dict) -> dict:
        """A strategic-merge PATCH (a dict body; JSON merge for custom objects). Recorded as a write."""
        k = kind_of(kind)
        action = "PATCH " + k.path(namespace, name) + " " + json.dumps(body, sort_keys=True, separators=(",", ":"))

        def send() -> dict:
            if k.custom:
                api = self._api("CustomObjectsApi")
                return api.patch_namespaced_custom_object(k.group, k.version, namespace, k.plural, name, body,
                                                          _request_timeout=self.timeouts)
            api = self._api(k.api)
            if k.namespaced:
                return self._plain(getattr(api, f"patch_namespaced_{k.snake}")(name, namespace, body,
                                                                               _request_timeout=self.timeouts))
            return self._plain(getattr(api, f"patch_{k.snake}")(name, body, _request_timeout=self.timeouts))

        return self._call(action, send, write=True, summarize=lambda obj: "HTTP 200, resourceVersion "
                          + str(((obj or {}).get("metadata") or {}).get("resourceVersion", "?")))

    def delete(self, kind: str | Kind, name: str, namespace: str | None) -> None:
        """DELETE one object. Recorded as a write; :class:`NotFound` when it is already gone."""
        k = kind_of(kind)
        action = "DELETE " + k.path(namespace, name)

        def send() -> None:
            if k.custom:
                self._api("CustomObjectsApi").delete_namespaced_custom_object(
                    k.group, k.version, namespace, k.plural, name, _request_timeout=self.timeouts)
                return None
            api = self._api(k.api)
            if k.namespaced:
                getattr(api, f"delete_namespaced_{k.snake}")(name, namespace, _request_timeout=self.timeouts)
            else:
                getattr(api, f"delete_{k.snake}")(name, _request_timeout=self.timeouts)
            return None

        self._call(action, send, write=True, summarize=lambda _: "deleted")

    def restart(self, kind: str | Kind, name: str, namespace: str, at: datetime | None = None) -> dict:
        """``kubectl rollout restart``: PATCH the pod template's restartedAt annotation."""
        return self.patch(kind, name, namespace, restart_body(at))

