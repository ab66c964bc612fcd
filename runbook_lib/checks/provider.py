"""Provider registration (guide: "Provider Registration Issues"): one check per ``provider.*`` id.

Evidence names (filled by :mod:`runbook_lib.gather.provider`):

``expected``                  site values: ``omni_url``, ``provider_id``, ``cluster``
``container``                 the provider container from ``docker inspect`` (``None``: no such container)
``provider_config``           the provider's Proxmox ``config.yaml``, secrets masked (``None``: not mounted)
``logs``                      :meth:`LogScan.summary` of the provider's ``docker logs`` (``LOG_CATEGORIES`` of
                              :mod:`runbook_lib.model.provider_log`)
``infraproviders``            ids from ``omnictl get infraproviders``
``provider_status``           id -> ``connected``, ``initialized``, ``error``, ``heartbeat_age``
``omni_probe_from_provider``  curl of Omni's ``/healthz`` run on the provider host
``proxmox_probe_from_provider`` curl of the provider's Proxmox URL run on the provider host
``proxmox_endpoints``         ``GET /version`` on every endpoint of the site's cluster, from here
``provider_credentials``      ``GET /version`` with the provider's own Proxmox credentials, from here
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..evidence import Evidence
from ..outcome import Outcome
from . import check, ok, problem, skipped, unknown

DEFAULT_ID = "proxmox"


def _log_examples(ev: Evidence, category: str) -> tuple[int, list[str]]:
    cat = ev.get("logs")["categories"][category]
    return cat["count"], cat["examples"]


def _lines(count: int, examples: list[str], what: str) -> list[str]:
    return [f"{count} {what} line(s) in the provider's log since its last start:", *examples]


def normalize_url(url: str) -> str:
    """scheme://host:port with the default port made explicit and no trailing path or slash."""
    parts = urlsplit(url.strip())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}{path}"


def provider_flags(container: dict) -> dict:
    """The provider's effective flags: command line first, then the env vars they default to."""
    return container.get("flags") or {}


@check("provider.container_down",
       fix="Start the provider (`docker compose up -d` in its project directory) and read the last lines "
           "of `docker logs` for the error that stopped it.")
def container_down(ev: Evidence):
    c = ev.get("container")
    if c is None:
        ps = ev.optional("containers") or []
        return problem("no provider container exists on the provider host",
                       ["docker ps -a lists: " + (", ".join(x.get("Names", "?") for x in ps) or "no containers")])
    facts = [f"docker inspect {c['name']}: State.Status={c['state']}, ExitCode={c['exit_code']}, "
             f"RestartCount={c['restart_count']}, StartedAt={c['started_at']}"]
    if c.get("running") and not c.get("restarting"):
        return ok(f"container {c['name']} is running", facts)
    logs = ev.optional("logs") or {}
    last_error = next((line for line in reversed(logs.get("tail", [])) if line.startswith("Error:")), None)
    if last_error:
        facts.append(f"last error printed: {last_error}")
    state = "restarting in a loop" if c.get("restarting") else c["state"]
    return problem(f"container {c['name']} is {state}", facts)


@check("provider.not_registered",
       fix="Create the provider in Omni (`omnictl infraprovider create <id>`), put the new key in the provider's "
           "environment, and restart it.")
def not_registered(ev: Evidence):
    ids = ev.get("infraproviders")
    want = ev.get("expected")["provider_id"]
    facts = [f"omnictl get infraproviders: {', '.join(ids) or 'none'}"]
    logs = ev.optional("logs")
    if logs and logs["categories"]["not_registered"]["count"]:
        n, lines = _log_examples(ev, "not_registered")
        facts += _lines(n, lines, "not-registered")
    if want not in ids:
        return problem(f"Omni has no infra provider '{want}'", facts)
    status = (ev.optional("provider_status") or {}).get(want)
    if status is not None and not status.get("initialized"):
        return problem(f"infra provider '{want}' exists but has never connected",
                       facts + [f"infraprovidercombinedstatuses {want}: health.initialized=false"])
    return ok(f"Omni lists infra provider '{want}'", facts)


@check("provider.key_invalid",
       fix="Regenerate the key (`omnictl infraprovider renewkey <id>` or the Omni UI), set it as "
           "OMNI_SERVICE_ACCOUNT_KEY for the provider, and restart the container.")
def key_invalid(ev: Evidence):
    n, lines = _log_examples(ev, "key_invalid")
    if n:
        return problem("Omni rejects the provider's service-account key", _lines(n, lines, "authentication"))
    c = ev.optional("container")
    if c and not provider_flags(c).get("key_set"):
        return problem("the provider has no service-account key",
                       ["neither --omni-service-account-key nor OMNI_SERVICE_ACCOUNT_KEY is set"])
    return ok("no authentication errors from Omni in the provider's log")


@check("provider.omni_unreachable",
       fix="From the provider host, check DNS and the route to Omni (Tailscale up? `curl <omni>/healthz`); "
           "add `extra_hosts:` when the name does not resolve inside the container.")
def omni_unreachable(ev: Evidence):
    n, lines = _log_examples(ev, "omni_unreachable")
    facts = _lines(n, lines, "connection-error") if n else []
    probe = ev.optional("omni_probe_from_provider")
    if probe is not None:
        facts.append(_probe_line("Omni", probe))
    if n or (probe is not None and probe["kind"] in (Outcome.REFUSED, Outcome.TIMED_OUT, Outcome.DNS_FAILED)):
        return problem("the provider cannot reach the Omni API", facts)
    if probe is None and ev.error("omni_probe_from_provider"):
        return unknown("could not probe Omni from the provider host",
                       [ev.error("omni_probe_from_provider")] + facts)
    return ok("the provider host reaches Omni", facts)


@check("provider.omni_url_wrong",
       fix="Set --omni-api-endpoint (or OMNI_ENDPOINT) to the site's Omni URL and recreate the container.")
def omni_url_wrong(ev: Evidence):
    c = ev.get("container")
    if c is None:
        return skipped("no provider container to read the endpoint from")
    want = ev.get("expected")["omni_url"]
    got = provider_flags(c).get("omni_api_endpoint")
    if not got:
        return problem("the provider has no Omni endpoint configured",
                       ["neither --omni-api-endpoint nor OMNI_ENDPOINT is set on the container"])
    facts = [f"container: {got}", f"site file: {want}"]
    if normalize_url(got) != normalize_url(want):
        return problem("the provider points at a different Omni URL than the site's", facts)
    return ok("the provider's Omni endpoint matches the site", facts)


@check("provider.omni_tls",
       fix="Give the container the CA that signs Omni's certificate (mount it into /etc/ssl/certs), or, only "
           "as a stopgap, pass --insecure-skip-verify.")
def omni_tls(ev: Evidence):
    n, lines = _log_examples(ev, "omni_tls")
    probe = ev.optional("omni_probe_from_provider")
    facts = _lines(n, lines, "certificate") if n else []
    if probe is not None and probe["kind"] == Outcome.TLS_FAILED:
        facts.append(_probe_line("Omni", probe))
    if facts:
        return problem("the provider does not trust Omni's certificate", facts)
    return ok("no certificate errors between the provider and Omni")


@check("provider.id_mismatch",
       fix="Start the provider with --id equal to the infra provider's name in Omni (or create a provider "
           "with that id).")
def id_mismatch(ev: Evidence):
    n, lines = _log_examples(ev, "id_mismatch")
    if n:
        return problem("Omni refuses the provider's id", _lines(n, lines, "id"))
    c = ev.optional("container")
    ids = ev.get("infraproviders")
    if c is not None and ids:
        got = provider_flags(c).get("id") or DEFAULT_ID
        if got not in ids:
            return problem(f"the provider runs with --id {got}, which Omni does not know",
                           [f"container --id: {got}", f"omnictl get infraproviders: {', '.join(ids)}"])
    return ok("the provider's id matches an infra provider in Omni")


@check("provider.unhealthy",
       fix="Read the provider's log for the error behind the missed heartbeats; restart it once the cause "
           "is fixed.")
def unhealthy(ev: Evidence):
    want = ev.get("expected")["provider_id"]
    status = ev.get("provider_status").get(want)
    if status is None:
        return skipped(f"Omni has no status for '{want}' (see provider.not_registered)")
    facts = [f"infraprovidercombinedstatuses {want}: connected={status.get('connected')}, "
             f"error={status.get('error') or '-'}, initialized={status.get('initialized')}"]
    if status.get("heartbeat_age") is not None:
        facts.append(f"last heartbeat {status['heartbeat_age']:.0f} s ago (Omni expects one every 30 s)")
    if not status.get("connected") or status.get("error"):
        return problem(f"Omni reports provider '{want}' as not connected", facts)
    return ok(f"Omni reports provider '{want}' as connected", facts)


@check("provider.proxmox_unreachable",
       fix="Check the Proxmox URL in the provider's config.yaml and the route from the provider host to "
           "port 8006 (firewall, node down, DNS inside the container).")
def proxmox_unreachable(ev: Evidence):
    endpoints = ev.get("proxmox_endpoints")
    down = [p for p in endpoints if not p["ok"] and p["kind"] in (Outcome.UNREACHABLE, Outcome.TIMED_OUT)]
    facts = [f"from here: {p['url']} {'answers' if p['ok'] else p['kind'] + ' - ' + p['error']}" for p in endpoints]
    probe = ev.optional("proxmox_probe_from_provider")
    if probe is not None:
        facts.append(_probe_line("Proxmox", probe))
    n, lines = _log_examples(ev, "proxmox_unreachable")
    if n:
        facts += _lines(n, lines, "Proxmox connection-error")
    from_provider_down = probe is not None and probe["kind"] in (Outcome.REFUSED, Outcome.TIMED_OUT, Outcome.DNS_FAILED)
    if from_provider_down or n or (endpoints and len(down) == len(endpoints)):
        return problem("the Proxmox API cannot be reached", facts)
    if down:
        return ok(f"the provider's Proxmox URL answers ({len(down)} other endpoint(s) down; see health.proxmox_api)",
                  facts)
    return ok("every Proxmox endpoint answers", facts)


@check("provider.proxmox_auth",
       fix="Fix the credentials in the provider's config.yaml (tokenID user@realm!name plus tokenSecret, or "
           "username/password/realm) and restart the provider; API tokens avoid expiring tickets.")
def proxmox_auth(ev: Evidence):
    cfg = ev.get("provider_config")
    if cfg is None:
        return unknown("the provider's config.yaml could not be found through its mounts")
    facts = [f"config.yaml: login={cfg['login']}" + (f", tokenID={cfg['tokenID']}" if cfg.get("tokenID") else "")
             + (f", username={cfg['username']}" if cfg.get("username") else "")]
    if cfg["login"] == "none":
        return problem("the provider's config.yaml holds no Proxmox credentials", facts)
    probe = ev.optional("provider_credentials")
    if probe is not None:
        facts.append(f"GET {probe['url']}/version with the provider's credentials: "
                     + ("accepted" if probe["ok"] else f"{probe['kind']} - {probe['error']}"))
    n, lines = _log_examples(ev, "proxmox_auth")
    if n:
        facts += _lines(n, lines, "authorization")
    if probe is not None and probe["kind"] == Outcome.AUTH_FAILED:
        return problem("Proxmox rejects the provider's credentials", facts)
    if n and probe is not None and probe["ok"]:
        # go-proxmox logs the same words for a 403 as for a 401: the login works, a privilege is missing
        return ok("Proxmox accepts the provider's credentials; the 'not authorized' lines are missing "
                  "privileges (see provisioning.permission_denied)", facts)
    if n:
        return problem("Proxmox rejects the provider's credentials", facts)
    if probe is None or probe["kind"] in (Outcome.UNREACHABLE, Outcome.TIMED_OUT, Outcome.TLS_FAILED):
        return unknown("the provider's credentials could not be tried", facts + [ev.error("provider_credentials") or ""])
    return ok("Proxmox accepts the provider's credentials", facts)


@check("provider.proxmox_tls",
       fix="Give the provider a certificate it can verify (a CA-signed certificate on the Proxmox nodes, or "
           "the cluster CA in the container) and set insecureSkipVerify: false.")
def proxmox_tls(ev: Evidence):
    cfg = ev.get("provider_config")
    facts = []
    n, lines = _log_examples(ev, "proxmox_tls")
    if n:
        facts += _lines(n, lines, "certificate")
    if cfg is not None and cfg.get("insecureSkipVerify"):
        facts.insert(0, "config.yaml: insecureSkipVerify: true (the provider does not verify Proxmox's certificate)")
        return problem("the provider talks to Proxmox without verifying its certificate", facts)
    if n:
        return problem("the provider fails to verify Proxmox's certificate", facts)
    if cfg is None:
        return unknown("the provider's config.yaml could not be found through its mounts")
    return ok("certificate verification is on and no certificate errors were logged",
              ["config.yaml: insecureSkipVerify: false"])


def _probe_line(what: str, probe: dict) -> str:
    where = f"curl {probe['url']} on the provider host"
    if probe["kind"] == Outcome.OK:
        return f"{where}: HTTP {probe['code']}"
    return f"{where}: {probe['kind']} ({probe.get('error') or 'rc ' + str(probe.get('rc'))})"
