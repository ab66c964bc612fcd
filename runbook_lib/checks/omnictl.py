"""omnictl itself (guide: "omnictl Issues"): one check per ``omnictl.*`` id.

omnictl reports every failure as one ``Error:`` line; the gRPC code in it names the family
(research notes, omni.md 4.6). How each line maps to a finding:

=========================================================  ============================
omnictl's line                                             finding
=========================================================  ============================
``code = Unauthenticated`` (bad, expired or revoked key)    ``omnictl.unauthorized``
``code = PermissionDenied ... insufficient role``          ``omnictl.unauthorized``
``code = PermissionDenied ... unexpected HTTP status``     ``omnictl.connection_refused`` (a proxy)
``code = Unavailable`` (refused, DNS), ``x509``, deadline   ``omnictl.connection_refused``
``is too old`` / ``is newer than this Omni``               ``omnictl.missing`` (no usable binary)
``context "X" has not been configured``                    ``omnictl.missing`` (no usable config)
binary not found or not executable                          ``omnictl.missing``
=========================================================  ============================

Evidence names (filled by :mod:`runbook_lib.gather.omnictl`):

``expected``        ``omni_url``, ``endpoint`` (what omnictl connects to), ``binary``, ``context``,
                    ``key`` (the site's reference, never a value), ``insecure``, ``timeout``
``binary``          ``configured``, ``path``, ``found``, ``error``, ``searched`` (PATH, for a bare name)
``client_version``  ``omnictl --version``
``omnictl``         the one real call: ``command``, ``ok``, ``kind``, ``detail``, ``line``, ``count``
``config``          the omniconfig: ``path``, ``source``, ``site_set``, ``exists``, ``contexts``,
                    ``current``, ``url``, ``identity``, ``error``
``key``             ``kind``, ``where``, ``identity``, ``readable``, ``created``, ``expires``,
                    ``days_left``, ``note`` (why the expiry is not readable)
``endpoint``        ``url``, ``host``, ``port``
``dns``             ``host``, ``addresses``, ``seconds``, ``error``
``tcp``             ``address``, ``ok``, ``kind`` (ok, refused, timeout, unreachable, skipped), ``error``
``healthz``         :class:`runbook_lib.sources.http.HttpProbe` as a dict, TLS details included
"""

from __future__ import annotations

from ..evidence import Evidence
from ..outcome import Outcome
from . import check, ok, problem, unknown

KEY_WARN_DAYS = 7  # a key that expires sooner than this is called out in the evidence
_CONNECTION_KINDS = (Outcome.UNREACHABLE, Outcome.TLS_FAILED, Outcome.TIMED_OUT)


def _run(ev: Evidence) -> dict | None:
    """The real omnictl call, or None when omnictl could not be run at all."""
    return ev.optional("omnictl")


def _line(run: dict) -> str:
    return f"{run['command']}: Error: {run['line']}"


# ----------------------------------------------------------------------------- the network


def probe_lines(ev: Evidence) -> list[str]:
    """DNS, TCP, TLS and /healthz, one line each, in the order a connection is made."""
    lines = []
    dns = ev.optional("dns")
    if dns is not None:
        if dns["addresses"] == [dns["host"]]:
            lines.append(f"DNS: {dns['host']} is an address, nothing to look up")
        else:
            lines.append(f"DNS {dns['host']}: " + (", ".join(dns["addresses"]) + f" ({dns['seconds']:g} s)"
                                                   if dns["addresses"] else dns["error"]))
    tcp = ev.optional("tcp")
    if tcp is not None and tcp["kind"] != Outcome.SKIPPED:
        lines.append(f"TCP {tcp['address']}: " + (f"connected ({tcp['seconds']:g} s)" if tcp["ok"] else tcp["error"]))
    hz = ev.optional("healthz")
    if hz is not None:
        tls = hz.get("tls")
        if tls:
            lines.append(tls_line(tls))
        if hz["status"] is not None:
            lines.append(f"GET {hz['url']}: HTTP {hz['status']} ({hz['seconds']:g} s)")
        elif hz["kind"] != Outcome.TLS_FAILED:
            lines.append(f"GET {hz['url']}: {hz['kind']} - {hz['error']}")
    return lines


def tls_line(tls: dict) -> str:
    who = f"certificate {tls['subject'] or '?'} issued by {tls['issuer'] or '?'}"
    when = ""
    if tls.get("not_after"):
        left = tls.get("days_left")
        when = (f", expired {-left:.0f} days ago ({tls['not_after'][:10]})" if left is not None and left < 0
                else f", valid until {tls['not_after'][:10]} ({left:.0f} days left)")
    if tls.get("error"):
        return f"TLS: verification failed ({tls['error']}); {who}{when}"
    return f"TLS: {who}{when}" + ("" if tls.get("verified") else " (not verified: verification is off)")


def failing_layer(ev: Evidence) -> str | None:
    """The first layer that fails: dns, refused, timeout, unreachable, tls, healthz, or None."""
    dns = ev.optional("dns")
    if dns is not None and not dns["addresses"]:
        return Outcome.DNS_FAILED
    tcp = ev.optional("tcp")
    if tcp is not None and not tcp["ok"] and tcp["kind"] != Outcome.SKIPPED:
        return tcp["kind"]
    hz = ev.optional("healthz")
    if hz is not None and hz["kind"] != Outcome.OK:
        return "healthz" if hz["kind"] == Outcome.HTTP_ERROR else hz["kind"]
    return None


def _network_fix(layer: str | None, ev: Evidence) -> str:
    ep = ev.optional("endpoint") or {}
    where = f"{ep.get('host', 'Omni')}:{ep.get('port', '')}".rstrip(":")
    fixes = {
        Outcome.DNS_FAILED: f"{ep.get('host')} does not resolve here: check DNS or Tailscale MagicDNS (`tailscale status`), "
               "or put an address that resolves into omni.url / the omniconfig.",
        Outcome.REFUSED: f"nothing listens on {where}: check that Omni runs on its host (`docker compose ps` in its "
                   "project directory, `runbook run health`) and that the URL's port is the one Omni binds.",
        Outcome.UNREACHABLE: f"there is no route to {where}: check the network path (Tailscale up on both ends?) "
                       "and any firewall in between.",
        Outcome.TIMED_OUT: f"{where} does not answer in time: check the route (Tailscale up on both ends?) and "
                   "firewalls that drop instead of refusing.",
        Outcome.TLS_FAILED: "omnictl does not trust the certificate Omni presents: install the CA that signs it into this "
               "machine's trust store, or renew the certificate if it expired; `--insecure-skip-tls-verify` "
               "only as a stopgap.",
        "healthz": "Omni answers but reports itself unhealthy (its state store fails): read Omni's log "
                   "(`docker compose logs omni` on its host).",
        "slow": "Omni accepts connections and answers /healthz, but omnictl's call does not finish: read Omni's "
                "log for stalled requests (`docker compose logs omni` on its host) and check its load; raise "
                "omni.omnictl.timeout only if Omni is merely slow.",
        "proxy": "a reverse proxy in front of Omni answers gRPC with an HTTP error page: route gRPC (HTTP/2) "
                 "to Omni's API listener, or point omnictl at Omni directly.",
    }
    return fixes.get(layer or "", "")


# --------------------------------------------------------------------------------- the key


def key_lines(ev: Evidence) -> list[str]:
    key = ev.optional("key")
    if key is None:
        reason = ev.error("key")
        return [f"credential: {reason}"] if reason else []
    if key["kind"] == "none":
        return [f"credential: {key['note']}"]
    who = f" for {key['identity']}" if key.get("identity") else ""
    where = f" ({key['where']})" if key.get("where") else ""
    if not key["readable"]:
        return [f"{key['kind']}{who}{where}: {key['note']}"]
    if key["expires"] == "never":
        return [f"{key['kind']}{who}{where}: created {key['created']}, never expires"]
    left = key["days_left"]
    state = f"expired {-left:.1f} days ago" if left < 0 else f"{left:.1f} days left"
    return [f"{key['kind']}{who}{where}: created {key['created']}, expires {key['expires']} ({state})"]


def key_expired(ev: Evidence) -> bool:
    key = ev.optional("key") or {}
    return bool(key.get("readable")) and key.get("days_left") is not None and key["days_left"] < 0


# -------------------------------------------------------------------------------- the checks


@check("omnictl.missing",
       fix="Install omnictl (download it from Omni's UI, or the GitHub release with Omni's version) and set "
           "omni.omnictl.binary to its path; give it a context (`omnictl config` / OMNICONFIG) or a service "
           "account key (omni.omnictl.service_account_key).")
def missing(ev: Evidence):
    binary = ev.get("binary")
    if not binary["found"]:
        facts = [binary["error"]]
        if binary.get("searched"):
            facts.append(f"searched PATH: {binary['searched']}")
        return problem(f"no usable omnictl binary at '{binary['configured']}'", facts)
    run = ev.get("omnictl")
    version = ev.optional("client_version") or "?"
    cfg = ev.get("config")
    facts = [f"binary {binary['path']}, version {version}", _config_line(cfg)]
    if run["detail"] == "version_skew":
        return problem(f"omnictl {version} does not match this Omni's API version", [_line(run), *facts],
                       fix="Install the omnictl release that matches Omni's version (Omni's UI offers it under "
                           "Download omnictl) and point omni.omnictl.binary at it.")
    if run["detail"] == "no_context":
        return problem("omnictl has no configured context to talk to Omni", [_line(run), *facts],
                       fix="Merge a config that has the context (`omnictl config merge <file>` with the file "
                           "Omni's UI offers), choose it with `omnictl config context <name>` or "
                           "omni.omnictl.context, or give omnictl a service account key.")
    if run["ok"]:
        return ok(f"omnictl {version} runs and talks to Omni", facts)
    expected = ev.get("expected")
    if cfg["site_set"] and not cfg["exists"]:
        return problem(f"the omniconfig the site names does not exist: {cfg['path']}", facts,
                       fix="Fix omni.omnictl.config (or copy the config there), or give a service account key.")
    if not expected["key"] and not cfg["exists"]:
        return problem("omnictl has neither an omniconfig nor a service account key", facts)
    return ok(f"omnictl {version} is installed and configured (its call failed for another reason)",
              facts + [_line(run)])


def _config_line(cfg: dict) -> str:
    if not cfg["exists"]:
        return f"omniconfig ({cfg['source']}): {cfg['path']} does not exist"
    if cfg["error"]:
        return f"omniconfig {cfg['path']}: {cfg['error']}"
    return (f"omniconfig {cfg['path']}: context '{cfg['current']}' -> {cfg['url'] or '?'}"
            + (f" as {cfg['identity']}" if cfg["identity"] else "") + f" (contexts: {', '.join(cfg['contexts'])})")


@check("omnictl.unauthorized",
       fix="Log in again (run any omnictl command interactively: it starts the browser login), or issue a new "
           "service account key (`omnictl serviceaccount renew <name>` / `create`) and store it where "
           "omni.omnictl.service_account_key points; check the account's role in Omni.")
def unauthorized(ev: Evidence):
    run = _run(ev)
    keys = key_lines(ev)
    if run is not None and run["kind"] == Outcome.AUTH_FAILED:
        expired = key_expired(ev)
        summary = ("Omni rejects omnictl's credentials: the key has expired" if expired
                   else "Omni rejects omnictl's credentials (invalid signature: a bad, expired or revoked key)")
        return problem(summary, [_line(run), *keys], fix=_auth_fix(ev))
    if run is not None and run["kind"] == Outcome.PERMISSION_DENIED and run["detail"] != "proxy":
        role = run["line"].rsplit("insufficient role:", 1)[-1].strip() if "insufficient role" in run["line"] else ""
        return problem("omnictl's identity is known to Omni but lacks the role for this call"
                       + (f" (it has {role})" if role else ""), [_line(run), *keys],
                       fix="Give the identity a higher role: for a service account, create one with "
                           "`omnictl serviceaccount create --role=Operator <name>` (or Admin); for a user, set the "
                           "role in Omni's UI (Users).")
    if key_expired(ev):
        return problem("omnictl's key has expired", keys, fix=_auth_fix(ev))
    if run is not None and run["ok"]:
        key = ev.optional("key") or {}
        soon = key.get("readable") and key.get("days_left") is not None and key["days_left"] < KEY_WARN_DAYS
        summary = "Omni accepts omnictl's credentials" + (
            f" (the key expires in {key['days_left']:.1f} days: renew it soon)" if soon else "")
        return ok(summary, [f"{run['command']}: ok, {run['count']} resource(s)", *keys])
    reason = (ev.error("omnictl") if run is None
              else f"omnictl stopped before authenticating: {run['line']}")
    return unknown("omnictl's credentials could not be tried", [reason or "omnictl did not run", *keys])


def _auth_fix(ev: Evidence) -> str:
    key = ev.optional("key") or {}
    if key.get("kind") == "service account key":
        who = f" {key['identity']}" if key.get("identity") else ""
        return (f"Issue a new key for the service account{who} (`omnictl serviceaccount renew <name>`, or "
                f"`create`), then store it where the site's reference points ({key.get('where')}).")
    return ("Log in again: run any omnictl command interactively (it opens the browser login) or delete the "
            "stale key under ~/.talos/keys; for unattended runs use a service account key.")


@check("omnictl.connection_refused",
       fix="Check that Omni runs on its host, that Tailscale is up, and that the URL answers: "
           "`curl https://<omni>/healthz`.")
def connection_refused(ev: Evidence):
    run = _run(ev)
    probes = probe_lines(ev)
    layer = failing_layer(ev)
    if run is not None and run["detail"] == "proxy":
        return problem("a proxy in front of Omni answers omnictl with an HTTP error page", [_line(run), *probes],
                       fix=_network_fix("proxy", ev))
    if run is not None and run["kind"] in _CONNECTION_KINDS:
        what = {Outcome.TLS_FAILED: "omnictl does not trust Omni's certificate",
                Outcome.TIMED_OUT: "Omni does not answer omnictl in time"}.get(run["kind"], "omnictl cannot connect to Omni")
        layer = Outcome.TLS_FAILED if run["kind"] == Outcome.TLS_FAILED else layer
        if layer is None and run["kind"] == Outcome.TIMED_OUT:
            layer = "slow"
        return problem(what, [_line(run), *probes], fix=_network_fix(layer, ev))
    ep = (ev.optional("endpoint") or {}).get("url", "Omni")
    if run is not None and run["ok"]:
        extra = "" if layer is None else f" (its /healthz probe: {layer}; see runbook `health`)"
        return ok(f"omnictl reaches Omni at {ep}{extra}", probes)
    if layer in (Outcome.DNS_FAILED, Outcome.REFUSED, Outcome.TIMED_OUT, Outcome.UNREACHABLE, Outcome.TLS_FAILED):
        reason = [f"omnictl itself did not get to connect: {_why_not(ev, run)}"]
        return problem(f"Omni at {ep} cannot be reached from here ({layer})", probes + reason,
                       fix=_network_fix(layer, ev))
    if not probes:
        return unknown("the path to Omni could not be probed", [ev.error("healthz") or "no probe ran"])
    return ok(f"Omni at {ep} answers: DNS, TCP, TLS and /healthz", probes)


def _why_not(ev: Evidence, run: dict | None) -> str:
    if run is not None:
        return run["line"]
    return ev.error("omnictl") or "omnictl did not run"
