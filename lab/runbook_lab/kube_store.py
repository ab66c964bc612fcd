"""The lab twin's Kubernetes objects: complete as an apiserver returns them, and how writes land.

The ``kubernetes.objects`` mapping of ``healthy.yaml`` holds objects keyed ``Kind/namespace/name``
(``Kind/name`` for cluster-scoped kinds). :class:`Store` completes them the way an apiserver and
the controllers would, so that the 37.x client (pydantic) accepts every answer:

* metadata: ``name``/``namespace`` from the key, a stable ``uid``, ``resourceVersion``,
  ``creationTimestamp`` (30 days before the twin started unless given), ``generation`` for workloads,
  the ``kubernetes.io/metadata.name`` label of a namespace;
* times given as Unix seconds (``${ago:N}``) are printed as RFC 3339;
* a pod without ``status.conditions`` is Ready since its ``startTime``; its ``containerStatuses``
  follow from its Ready condition;
* workload and DaemonSet status fields that the API always prints are filled;
* **Endpoints and EndpointSlices are derived** from Services and Pods on every read, as the
  endpoints controllers do: a scenario changes a selector or a pod's labels, ports or readiness and
  the endpoints follow.

Writes (``patch``, ``delete``) change the store and trigger what the cluster would do next:

* a pod-template change (``kubectl rollout restart``) rolls the workload's pods (new uid, start
  time now); rolling ``argocd-application-controller`` also recomputes the Applications listed in
  ``kubernetes.cached_errors``: their conditions were only in the controller's cache, so they go;
* a namespace labelled ``pod-security.kubernetes.io/enforce=privileged`` lets the DaemonSets in it
  that PodSecurity blocked create their pods.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .kube_select import labels_match, parse_fields, parse_labels

DAY = 86400
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
CONTROLLER = "argocd-application-controller"


@dataclass(frozen=True)
class Resource:
    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool = True
    derived: bool = False  # computed from other objects; the twin refuses writes to it
    crd: str = ""  # the CRD that must be installed for the group to be served

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES = [
    Resource("Namespace", "", "v1", "namespaces", namespaced=False),
    Resource("Pod", "", "v1", "pods"),
    Resource("Service", "", "v1", "services"),
    Resource("Endpoints", "", "v1", "endpoints", derived=True),
    Resource("Event", "", "v1", "events"),
    Resource("Deployment", "apps", "v1", "deployments"),
    Resource("StatefulSet", "apps", "v1", "statefulsets"),
    Resource("DaemonSet", "apps", "v1", "daemonsets"),
    Resource("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices", derived=True),
    Resource("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies"),
    Resource("Application", "argoproj.io", "v1alpha1", "applications", crd="applications.argoproj.io"),
]
BY_KIND = {r.kind: r for r in RESOURCES}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


class StoreError(Exception):
    """A request the apiserver would refuse: ``code`` and ``reason`` as in a ``Status``."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}


def rfc3339(seconds: float, micro: bool = False) -> str:
    t = datetime.fromtimestamp(float(seconds), tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def _times(obj: Any) -> Any:
    """Unix seconds under time-like keys become RFC 3339 strings (MicroTime for eventTime & co)."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key.endswith(
                    ("Time", "Timestamp", "At")):
                out[key] = rfc3339(value, micro=key in ("eventTime", "lastObservedTime"))
            else:
                out[key] = _times(value)
        return out
    if isinstance(obj, list):
        return [_times(v) for v in obj]
    return obj


def merge_patch(base: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386): mappings merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def json_patch(doc: dict, ops: list) -> dict:
    """RFC 6902 ``add``/``replace``/``remove`` (enough for what clients send to the twin)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "path" not in op:
            raise StoreError(400, "BadRequest", "json patch: every operation needs op and path")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        if op.get("op") in ("add", "replace"):
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), op.get("value"))
            else:
                parent[last] = op.get("value")
        elif op.get("op") == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif last in parent:
                del parent[last]
            else:
                raise StoreError(422, "Invalid", f"json patch: {op['path']} does not exist")
        else:
            raise StoreError(400, "BadRequest", f"json patch: unsupported op {op.get('op')!r}")
    return doc


class Store:
    """Every object of the twin's cluster; thread-safe (the server and tests may both read it)."""

    def __init__(self, model: dict, now: float):
        self.now = now
        self.crds = set(model.get("crds") or [])
        self.cached_errors = set(model.get("cached_errors") or [])
        self._rv = itertools.count(1000)
        self._lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], dict] = {}
        for key, obj in (model.get("objects") or {}).items():
            kind, ns, name = self._parse_key(key)
            self.objects[(kind, ns, name)] = self._complete(kind, ns, name, obj or {})

    # --- loading ------------------------------------------------------------------------------------
    @staticmethod
    def _parse_key(key: str) -> tuple[str, str, str]:
        parts = key.split("/")
        kind = parts[0]
        res = BY_KIND.get(kind)
        if res is None or res.derived:
            raise ValueError(f"kubernetes.objects: {key}: kind must be one of "
                             f"{', '.join(r.kind for r in RESOURCES if not r.derived)}")
        if res.namespaced and len(parts) != 3 or not res.namespaced and len(parts) != 2:
            form = "Kind/namespace/name" if res.namespaced else "Kind/name"
            raise ValueError(f"kubernetes.objects: {key}: expected {form}")
        return (kind, parts[1], parts[2]) if res.namespaced else (kind, "", parts[1])

    def _uid(self, kind: str, ns: str, name: str, salt: str = "") -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"lab/{kind}/{ns}/{name}/{salt}"))

    def _complete(self, kind: str, ns: str, name: str, obj: dict) -> dict:
        res = BY_KIND[kind]
        obj = _times(copy.deepcopy(obj))
        meta = obj.setdefault("metadata", {})
        meta["name"] = name
        if res.namespaced:
            meta["namespace"] = ns
        meta.setdefault("uid", self._uid(kind, ns, name))
        meta["resourceVersion"] = str(next(self._rv))
        meta.setdefault("creationTimestamp", rfc3339(self.now - 30 * DAY))
        if kind in WORKLOADS or kind == "Application":
            meta.setdefault("generation", 1)
        if res.crd or kind in ("Event",):
            obj.setdefault("apiVersion", res.api_version)
            obj.setdefault("kind", kind)
        fill = getattr(self, f"_fill_{kind.lower()}", None)
        if fill:
            fill(obj)
        return obj

    def _fill_namespace(self, obj: dict) -> None:
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})

    def _fill_pod(self, obj: dict) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("containers", [])
        spec.setdefault("restartPolicy", "Always")
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Running")
        start = status.setdefault("startTime", rfc3339(self.now - 7 * DAY))
        if "conditions" not in status:
            up = status["phase"] == "Running"
            status["conditions"] = [
                {"type": t, "status": "True" if up or t == "PodScheduled" else "False", "lastProbeTime": None,
                 "lastTransitionTime": start}
                for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
            ]
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status["conditions"])
        if "containerStatuses" not in status:
            status["containerStatuses"] = [
                {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": ready,
                 "restartCount": 0, "started": status["phase"] == "Running",
                 "containerID": "containerd://" + hashlib.sha256(
                     (obj["metadata"]["uid"] + c["name"]).encode()).hexdigest(),
                 "state": {"running": {"startedAt": start}} if status["phase"] == "Running"
                 else {"waiting": {"reason": "ContainerCreating"}}}
                for c in spec["containers"]
            ]
        status.setdefault("qosClass", "BestEffort")

    def _fill_workload(self, obj: dict) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        status = obj.setdefault("status", {})
        n = spec["replicas"]
        for key in ("replicas", "readyReplicas", "availableReplicas", "updatedReplicas"):
            status.setdefault(key, n)
        status.setdefault("observedGeneration", obj["metadata"]["generation"])

    _fill_deployment = _fill_workload

    def _fill_statefulset(self, obj: dict) -> None:
        self._fill_workload(obj)
        obj["status"].setdefault("currentReplicas", obj["spec"]["replicas"])
        obj["spec"].setdefault("serviceName", obj["metadata"]["name"])

    def _fill_daemonset(self, obj: dict) -> None:
        status = obj.setdefault("status", {})
        desired = status.setdefault("desiredNumberScheduled", 0)
        status.setdefault("currentNumberScheduled", desired)
        status.setdefault("numberMisscheduled", 0)
        status.setdefault("numberReady", desired)
        status.setdefault("updatedNumberScheduled", status["currentNumberScheduled"])
        if status["numberReady"]:
            status.setdefault("numberAvailable", status["numberReady"])
        if desired > status["numberReady"]:
            status.setdefault("numberUnavailable", desired - status["numberReady"])
        status.setdefault("observedGeneration", obj["metadata"]["generation"])

    def _fill_service(self, obj: dict) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        if spec.get("clusterIP"):
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})

    def _fill_event(self, obj: dict) -> None:
        obj.setdefault("type", "Normal")
        obj.setdefault("count", 1)
        obj.setdefault("involvedObject", {})

    # --- reads ----------------------------------------------------------------------------------------
    def served(self, group: str, version: str, plural: str) -> Resource | None:
        for res in RESOURCES:
            if (res.group, res.version, res.plural) == (group, version, plural):
                return None if res.crd and res.crd not in self.crds else res
        return None

    def group_served(self, group: str, version: str) -> bool:
        return any(r.group == group and r.version == version and (not r.crd or r.crd in self.crds)
                   for r in RESOURCES)

    def _all(self, res: Resource) -> list[dict]:
        if res.kind == "Endpoints":
            return self._endpoints()
        if res.kind == "EndpointSlice":
            return self._endpoint_slices()
        return [o for (k, _, _), o in sorted(self.objects.items()) if k == res.kind]

    def list(self, res: Resource, namespace: str | None, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict]:
        reqs = parse_labels(label_selector)
        fields = parse_fields(field_selector, res.kind)
        with self._lock:
            items = [o for o in self._all(res)
                     if (not namespace or o["metadata"].get("namespace") == namespace)
                     and labels_match(reqs, o["metadata"].get("labels")) and fields(o)]
            return copy.deepcopy(items)

    def get(self, res: Resource, namespace: str, name: str) -> dict:
        with self._lock:
            for obj in self._all(res):
                if obj["metadata"]["name"] == name and obj["metadata"].get("namespace", "") == (namespace or ""):
                    return copy.deepcopy(obj)
        raise self.not_found(res, name)

    @staticmethod
    def not_found(res: Resource, name: str) -> StoreError:
        what = f"{res.plural}.{res.group}" if res.group else res.plural
        return StoreError(404, "NotFound", f'{what} "{name}" not found',
                          {"name": name, "group": res.group, "kind": res.plural})

    # --- derived objects ---------------------------------------------------------------------------
    def _pods(self, namespace: str) -> list[dict]:
        return [o for (k, ns, _), o in sorted(self.objects.items()) if k == "Pod" and ns == namespace]

    @staticmethod
    def _ready(pod: dict) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (pod.get("status") or {}).get("conditions") or [])

    @staticmethod
    def _container_port(pod: dict, target: Any, protocol: str) -> int | None:
        if isinstance(target, int):
            return target
        for c in (pod.get("spec") or {}).get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == target and p.get("protocol", "TCP") == protocol:
                    return p.get("containerPort")
        return None

    def _backends(self, svc: dict) -> list[tuple[dict, list[dict]]]:
        """(pod, resolved ports) for each running pod the Service selects and whose ports resolve."""
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            return []
        out = []
        for pod in self._pods(svc["metadata"]["namespace"]):
            labels = pod["metadata"].get("labels") or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            if (pod.get("status") or {}).get("phase") != "Running" or not (pod.get("status") or {}).get("podIP"):
                continue
            ports = []
            for sp in svc["spec"].get("ports") or []:
                port = self._container_port(pod, sp.get("targetPort", sp.get("port")), sp.get("protocol", "TCP"))
                if port is not None:
                    ports.append({"name": sp.get("name"), "port": port, "protocol": sp.get("protocol", "TCP")})
            if ports:
                out.append((pod, ports))
        return out

    def _services(self) -> list[dict]:
        return [o for (k, _, _), o in sorted(self.objects.items())
                if k == "Service" and (o.get("spec") or {}).get("selector")]

    @staticmethod
    def _address(pod: dict) -> dict:
        return {"ip": pod["status"]["podIP"], "nodeName": pod["spec"].get("nodeName"),
                "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"],
                              "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}

    def _endpoints(self) -> list[dict]:
        out = []
        for svc in self._services():
            meta = svc["metadata"]
            ep: dict = {"metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                     "uid": self._uid("Endpoints", meta["namespace"], meta["name"]),
                                     "resourceVersion": meta["resourceVersion"],
                                     "creationTimestamp": meta["creationTimestamp"],
                                     "labels": dict(meta.get("labels") or {})}}
            subsets: dict[str, dict] = {}
            for pod, ports in self._backends(svc):
                key = repr(ports)
                subset = subsets.setdefault(key, {"ports": [{k: v for k, v in p.items() if v is not None}
                                                            for p in ports]})
                field = "addresses" if self._ready(pod) else "notReadyAddresses"
                subset.setdefault(field, []).append(self._address(pod))
            if subsets:  # a Service without backends has no `subsets` key at all
                ep["subsets"] = list(subsets.values())
            out.append(ep)
        return out

    def _endpoint_slices(self) -> list[dict]:
        out = []
        for svc in self._services():
            meta = svc["metadata"]
            backends = self._backends(svc)
            suffix = hashlib.sha256(meta["uid"].encode()).hexdigest()[:5]
            ports = backends[0][1] if backends else [
                {"name": p.get("name"), "port": None, "protocol": p.get("protocol", "TCP")}
                for p in svc["spec"].get("ports") or []]
            out.append({
                "metadata": {"name": f"{meta['name']}-{suffix}", "namespace": meta["namespace"],
                             "generateName": f"{meta['name']}-",
                             "uid": self._uid("EndpointSlice", meta["namespace"], meta["name"]),
                             "resourceVersion": meta["resourceVersion"],
                             "creationTimestamp": meta["creationTimestamp"],
                             "labels": {**(meta.get("labels") or {}), "kubernetes.io/service-name": meta["name"],
                                        "endpointslice.kubernetes.io/managed-by":
                                            "endpointslice-controller.k8s.io"},
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": meta["name"],
                                                  "uid": meta["uid"], "controller": True,
                                                  "blockOwnerDeletion": True}]},
                "addressType": "IPv4",
                "endpoints": [
                    {"addresses": [pod["status"]["podIP"]],
                     "conditions": {"ready": self._ready(pod), "serving": self._ready(pod), "terminating": False},
                     "nodeName": pod["spec"].get("nodeName"),
                     "targetRef": self._address(pod)["targetRef"]}
                    for pod, _ in backends] or None,
                "ports": [{k: v for k, v in p.items() if v is not None} for p in ports],
            })
        return out

    # --- writes -------------------------------------------------------------------------------------
    def _stored(self, res: Resource, namespace: str, name: str) -> tuple[tuple[str, str, str], dict]:
        if res.derived:
            raise StoreError(405, "MethodNotAllowed",
                             f"the lab twin derives {res.plural} from Services and Pods; change those instead")
        key = (res.kind, namespace if res.namespaced else "", name)
        if key not in self.objects:
            raise self.not_found(res, name)
        return key, self.objects[key]

    def patch(self, res: Resource, namespace: str, name: str, body: Any, content_type: str, now: float) -> dict:
        with self._lock:
            key, obj = self._stored(res, namespace, name)
            if "json-patch" in content_type:
                if not isinstance(body, list):
                    raise StoreError(400, "BadRequest", "a json patch must be a list of operations")
                new = json_patch(obj, body)
            elif "merge-patch" in content_type:
                if not isinstance(body, dict):
                    raise StoreError(400, "BadRequest", "a merge patch must be a JSON object")
                new = merge_patch(obj, body)
            else:
                raise StoreError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                                                              "format - accepted media types include: "
                                                              "application/json-patch+json, "
                                                              "application/merge-patch+json, "
                                                              "application/strategic-merge-patch+json")
            for immutable in ("name", "namespace", "uid"):
                new.setdefault("metadata", {})[immutable] = obj["metadata"].get(immutable)
            new["metadata"] = {k: v for k, v in new["metadata"].items() if v is not None}
            new["metadata"]["resourceVersion"] = str(next(self._rv))
            template_changed = (new.get("spec") or {}).get("template") != (obj.get("spec") or {}).get("template")
            if res.kind in WORKLOADS and (new.get("spec") != obj.get("spec")):
                new["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
                new.setdefault("status", {})["observedGeneration"] = new["metadata"]["generation"]
            self.objects[key] = new
            if res.kind in WORKLOADS and template_changed:
                self._roll(new, now)
            if res.kind == "Namespace":
                self._admit_daemonsets(new)
            return copy.deepcopy(new)

    def delete(self, res: Resource, namespace: str, name: str) -> dict:
        with self._lock:
            key, obj = self._stored(res, namespace, name)
            del self.objects[key]
            return obj

    # --- what the cluster does after a write ------------------------------------------------------
    def _roll(self, workload: dict, now: float) -> None:
        """Replace the workload's pods (a rollout restart): new uid, started and Ready now."""
        ns = workload["metadata"]["namespace"]
        selector = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        stamp = rfc3339(now)
        for pod in self._pods(ns):
            labels = pod["metadata"].get("labels") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            meta = pod["metadata"]
            meta["uid"] = self._uid("Pod", ns, meta["name"], salt=stamp)
            meta["creationTimestamp"] = stamp
            meta["resourceVersion"] = str(next(self._rv))
            status = pod["status"]
            status["startTime"] = stamp
            status.pop("conditions", None)
            status.pop("containerStatuses", None)
            status["phase"] = "Running"
            self._fill_pod(pod)
        if (workload["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == CONTROLLER \
                or workload["metadata"]["name"] == CONTROLLER:
            self._recompute_applications(ns, stamp)

    def _recompute_applications(self, namespace: str, stamp: str) -> None:
        """A fresh controller has no cache: Applications whose errors were only cached come clean."""
        for name in sorted(self.cached_errors):
            obj = self.objects.get(("Application", namespace, name))
            if obj is None:
                continue
            status = obj.setdefault("status", {})
            status.pop("conditions", None)
            status.setdefault("sync", {})["status"] = "Synced"
            status.setdefault("health", {})["status"] = "Healthy"
            status["health"]["lastTransitionTime"] = stamp
            status["reconciledAt"] = stamp
            obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.cached_errors.clear()

    def _admit_daemonsets(self, namespace: dict) -> None:
        """Pods that PodSecurity refused get created once the namespace enforces ``privileged``."""
        labels = namespace["metadata"].get("labels") or {}
        if labels.get(PSA_ENFORCE) != "privileged":
            return
        ns = namespace["metadata"]["name"]
        blocked = {(e.get("involvedObject") or {}).get("name") for (k, ens, _), e in self.objects.items()
                   if k == "Event" and ens == ns and e.get("reason") == "FailedCreate"
                   and "violates PodSecurity" in (e.get("message") or "")}
        for (kind, ons, name), ds in self.objects.items():
            if kind != "DaemonSet" or ons != ns or name not in blocked:
                continue
            status = ds["status"]
            desired = status.get("desiredNumberScheduled", 0)
            status.update({"currentNumberScheduled": desired, "numberReady": desired, "numberAvailable": desired,
                           "updatedNumberScheduled": desired})
            status.pop("numberUnavailable", None)
            ds["metadata"]["resourceVersion"] = str(next(self._rv))
