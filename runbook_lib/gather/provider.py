"""Evidence for the provider runbook: the container, its config and logs, Omni's view, Proxmox.

Three independent groups run in parallel: the provider host over SSH (container, config, logs,
probes from there), Omni through omnictl, and Proxmox from here. The names of what they gather are
documented in :mod:`runbook_lib.checks.provider`.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import yaml

from .. import redact
from ..calls import CallLog
from ..errors import NotFound, RunbookError
from ..evidence import Evidence
from ..logscan import LogScan
from ..model.provider import FLAG_ENV, PROVIDER_IMAGE, SECRET_KEYS, merged, proxmox_from_env
from ..model.provider_log import LOG_CATEGORIES, LOG_TRIGGERS, START_LINE
from ..outcome import Outcome
from ..site import Site
from ..sources import docker
from ..sources.net import curl_from
from ..sources.omni import Omnictl
from ..sources.proxmox import ProxmoxCluster
from ..sources.ssh import SSHHost
from . import in_parallel, log_window


@dataclass
class Options:
    log_tail: int | None = 5000  # lines of `docker logs` to scan (None: all)
    log_since: str | None = None  # e.g. "24h"; passed to `docker logs --since`
    probe_timeout: float = 5.0
    try_provider_login: bool = True  # log in to Proxmox with the provider's own credentials


@dataclass
class _Private:
    """What gathering must hold but evidence must not: the provider's Proxmox credentials."""

    credentials: dict = field(default_factory=dict)


def parse_flags(args: list[str], env: dict[str, str]) -> dict:
    """The provider's flags from its command line, falling back to the env vars they default to."""
    flags: dict = {}
    names = {"--omni-api-endpoint": "omni_api_endpoint", "--id": "id", "--config-file": "config_file",
             "--omni-service-account-key": "key", "--insecure-skip-verify": "insecure_skip_verify",
             "--provider-name": "provider_name"}
    i = 0
    while i < len(args):
        arg = args[i]
        name, _, value = arg.partition("=")
        if name in names:
            key = names[name]
            if key == "insecure_skip_verify":
                flags[key] = value.lower() != "false" if value else True
            elif value or "=" in arg:
                flags[key] = value
            elif i + 1 < len(args):
                flags[key] = args[i + 1]
                i += 1
        i += 1
    for key, var in FLAG_ENV.items():
        if not flags.get(key) and env.get(var):
            flags[key] = env[var]
    flags["key_set"] = bool(flags.pop("key", None))  # the key itself never becomes evidence
    return flags


def container_env(inspect: dict) -> dict[str, str]:
    """The container's environment from `docker inspect`, unmasked: never evidence as it is."""
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in (inspect.get("Config") or {}).get("Env") or [])


def summarize_container(inspect: dict) -> dict:
    """The parts of `docker inspect` the checks read, with secrets masked."""
    state = inspect.get("State") or {}
    config = inspect.get("Config") or {}
    env = container_env(inspect)
    args = list(inspect.get("Args") or config.get("Cmd") or [])
    flags = parse_flags(args, env)  # before masking: it needs to know whether the key is set
    return {
        "name": (inspect.get("Name") or "").lstrip("/"),
        "image": config.get("Image", ""),
        "state": state.get("Status", "unknown"),
        "running": bool(state.get("Running")),
        "restarting": bool(state.get("Restarting")),
        "exit_code": state.get("ExitCode"),
        "error": state.get("Error", ""),
        "started_at": state.get("StartedAt", ""),
        "finished_at": state.get("FinishedAt", ""),
        "health": (state.get("Health") or {}).get("Status"),
        "restart_count": inspect.get("RestartCount", 0),
        "args": redact.mask_args(args),
        "env": redact.mask_env(env),
        "mounts": [{"source": m.get("Source"), "destination": m.get("Destination")} for m in inspect.get("Mounts") or []],
        "flags": flags,
    }


def parse_config(text: str) -> dict:
    """The ``proxmox:`` mapping of the provider's config.yaml."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RunbookError(f"the provider's config.yaml is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    px = doc.get("proxmox") if isinstance(doc, dict) else None
    if not isinstance(px, dict):
        raise RunbookError("the provider's config.yaml has no 'proxmox:' mapping")
    return px


def summarize_settings(px: dict) -> tuple[dict, dict]:
    """The provider's Proxmox settings: (masked summary for evidence, credentials kept private)."""
    for key in SECRET_KEYS:
        redact.register(str(px.get(key) or ""))
    if px.get("username") and px.get("password"):
        login = "password"
    elif px.get("token") or (px.get("tokenID") and px.get("tokenSecret")):
        login = "token"
    else:
        login = "none"
    summary = {
        "url": px.get("url", ""),
        "login": login,
        "tokenID": px.get("tokenID", ""),
        "username": px.get("username", ""),
        "realm": px.get("realm", ""),
        "insecureSkipVerify": bool(px.get("insecureSkipVerify", False)),
    }
    creds = {k: px.get(k) for k in ("url", "username", "password", "realm", "tokenID", "tokenSecret")}
    return summary, creds


def read_settings(host: SSHHost, container: dict, env: dict[str, str]) -> tuple[dict, dict] | None:
    """The provider's Proxmox settings, from its mounted ``--config-file`` and its ``PROXMOX_*``
    variables; None when it has neither. The summary's ``path`` says where they came from."""
    path = container["flags"].get("config_file")
    from_env = proxmox_from_env(env)
    from_file, where = None, []
    if path:
        mount = next((m for m in container["mounts"] if m["destination"] == path), None)
        if mount is None:
            raise RunbookError(f"--config-file {path} is not a mount of the container; cannot read it")
        from_file = parse_config(docker.read_file(host, mount["source"]))
        where.append(f"{mount['source']} (mounted at {path})")
    if from_env:
        where.append("PROXMOX_* environment variables")
    if from_file is None and not from_env:
        return None
    summary, creds = summarize_settings(merged(from_file, from_env))
    summary["path"] = " and ".join(where)
    return summary, creds


def find_container(containers: list[dict], name: str | None, image: str) -> str | None:
    """The provider's container name: the site's name if given, else the first with the image."""
    if name:
        return name if any(c.get("Names") == name for c in containers) else None
    for c in containers:
        if image in c.get("Image", "") or PROVIDER_IMAGE in c.get("Image", ""):
            return c.get("Names")
    return None


def api_base(url: str) -> str:
    """The Proxmox URL without the /api2/json suffix the provider's config carries."""
    url = url.rstrip("/")
    return url[: -len("/api2/json")] if url.endswith("/api2/json") else url


def gather(site: Site, calls: CallLog, options: Options | None = None,
           progress: Callable[[str], None] | None = None) -> Evidence:
    opts = options or Options()
    ev = Evidence()
    ev.put("expected", {"omni_url": site.omni.url, "provider_id": site.provider.id,
                        "cluster": site.provider.cluster})
    private = _Private()
    host = SSHHost(site.hosts.provider, calls)
    try:
        in_parallel(ev, {
            "provider host": lambda e: _provider_host(e, host, site, opts, private),
            "omni": lambda e: _omni(e, site, calls),
            "proxmox": lambda e: _proxmox(e, site, calls),
        }, progress)
        if opts.try_provider_login and private.credentials.get("url"):
            ev.collect("provider_credentials", _try_credentials, private.credentials, site, calls)
        elif ev.has("provider_config"):
            ev.fail("provider_credentials", "not tried (try_provider_login is off or no URL)")
    finally:
        host.close()
    return ev


def _provider_host(ev: Evidence, host: SSHHost, site: Site, opts: Options, private: _Private) -> None:
    spec = site.hosts.provider
    containers = ev.collect("containers", docker.ps, host)
    if containers is None:
        reason = ev.error("containers")
        for name in ("container", "provider_config", "logs", "omni_probe_from_provider",
                     "proxmox_probe_from_provider"):
            ev.fail(name, f"the provider host could not be asked: {reason}")
        return
    name = find_container(containers, spec.container, spec.image)
    if name is None:
        ev.put("container", None)
        ev.fail("logs", "no provider container")
        ev.fail("provider_config", "no provider container")
    else:
        raw: dict = {}
        try:
            raw = docker.inspect(host, name)
            ev.put("container", summarize_container(raw))
        except NotFound:
            ev.put("container", None)
        except RunbookError as exc:
            ev.fail("container", str(exc))
        container = ev.optional("container")
        if container is not None:
            _config(ev, host, container, container_env(raw), private)
            _logs(ev, host, name, opts)
    omni_url = site.omni.url
    container = ev.optional("container")
    if container and container["flags"].get("omni_api_endpoint"):
        omni_url = container["flags"]["omni_api_endpoint"]
    ev.collect("omni_probe_from_provider", curl_from, host, omni_url.rstrip("/") + "/healthz",
               timeout=opts.probe_timeout)
    pve_url = private.credentials.get("url")
    if pve_url:
        ev.collect("proxmox_probe_from_provider", curl_from, host, api_base(pve_url) + "/api2/json/version",
                   timeout=opts.probe_timeout)
    else:
        ev.fail("proxmox_probe_from_provider", "the provider's Proxmox URL is unknown (no config.yaml read)")


def _config(ev: Evidence, host: SSHHost, container: dict, env: dict[str, str], private: _Private) -> None:
    try:
        settings = read_settings(host, container, env)
    except RunbookError as exc:
        ev.fail("provider_config", str(exc))
        return
    if settings is None:
        ev.put("provider_config", None)
        return
    summary, private.credentials = settings
    ev.put("provider_config", summary)


def _logs(ev: Evidence, host: SSHHost, name: str, opts: Options) -> None:
    scan = LogScan(LOG_CATEGORIES, triggers=LOG_TRIGGERS, reset=START_LINE)
    try:
        res = docker.logs(host, name, tail=opts.log_tail, since=opts.log_since, on_lines=scan.feed_lines)
        scan.replaced = getattr(res, "replaced", 0)
        summary = scan.summary()
        summary["window"] = log_window(opts.log_tail, opts.log_since)
        ev.put("logs", summary)
    except RunbookError as exc:
        ev.fail("logs", str(exc))


def _omni(ev: Evidence, site: Site, calls: CallLog) -> None:
    """The infra providers Omni lists and their health, the three listings read at once."""
    omni = Omnictl(site.omni, calls)
    kinds = ("infraproviders", "infraprovidercombinedstatuses", "infraproviderhealthstatuses")
    with ThreadPoolExecutor(max_workers=len(kinds), thread_name_prefix="omnictl") as pool:
        futures = {kind: pool.submit(omni.get, kind) for kind in kinds}
    try:
        providers = futures["infraproviders"].result()
    except RunbookError as exc:
        ev.fail("infraproviders", str(exc))
        ev.fail("provider_status", str(exc))
        return
    ev.put("infraproviders", sorted(p["metadata"]["id"] for p in providers))
    try:
        combined = futures["infraprovidercombinedstatuses"].result()
        health = {h["metadata"]["id"]: h for h in futures["infraproviderhealthstatuses"].result()}
    except RunbookError as exc:
        ev.fail("provider_status", str(exc))
        return
    status = {}
    now = time.time()
    for c in combined:
        pid = c["metadata"]["id"]
        h = (c.get("spec") or {}).get("health") or {}
        beat = ((health.get(pid) or {}).get("spec") or {}).get("lastheartbeattimestamp") or {}
        seconds = beat.get("seconds")
        status[pid] = {"connected": bool(h.get("connected")), "initialized": bool(h.get("initialized")),
                       "error": h.get("error") or "",
                       "heartbeat_age": (now - float(seconds)) if seconds else None}
    ev.put("provider_status", status)


def _proxmox(ev: Evidence, site: Site, calls: CallLog) -> None:
    cluster = ProxmoxCluster(site.provider.cluster, site.proxmox[site.provider.cluster], calls)
    ev.collect("proxmox_endpoints", lambda: [p.to_dict() for p in cluster.probe()])


def _try_credentials(creds: dict, site: Site, calls: CallLog) -> dict:
    """GET /version with the provider's own credentials, trusting what the site trusts for that cluster."""
    spec = site.proxmox[site.provider.cluster]
    url = api_base(creds["url"])
    cluster = ProxmoxCluster.with_credentials(
        "provider credentials", [url], calls,
        token_id=creds.get("tokenID"), token_secret=creds.get("tokenSecret"),
        user=_user(creds), password=creds.get("password"),
        verify=(spec.ca_file or True) if spec.verify_tls else False,
    )
    probe = cluster.probe()[0]
    return {"url": url, "ok": probe.ok, "kind": Outcome.OK if probe.ok else probe.kind, "error": probe.error}


def _user(creds: dict) -> str | None:
    if not creds.get("username"):
        return None
    user = creds["username"]
    return user if "@" in user else f"{user}@{creds.get('realm') or 'pam'}"
