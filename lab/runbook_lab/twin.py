"""Start and stop the lab twin: every server on one asyncio loop in a background thread.

``Twin(scenario).start()`` brings up, on 127.0.0.1:

* one fakepve per Proxmox cluster of the model (several API endpoints each),
* Omni's HTTPS ``/healthz``,
* one SSH server per host (the provider LXC and the Omni VM), each with its own host key,

then writes into its work directory the site file that points at all of it, the CA, the
known_hosts file, the client key, canary secrets and the omnictl stand-in.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .latency import latencies
from .loop import BackgroundLoop
from .model import RequestLog, TwinContext, fill, load_scenario, scenario_state
from .talos_nodes import talos_addresses

HOST_ROLES = ("provider", "omni")
OMNICTL_KEY = "omnictl_key"  # the secret the runbooks' omnictl uses (not the provider's key)
RUNBOOK_TOKEN = "runbook@pve!audit"
FIX_TOKEN = "recovery@pve!fix"  # the site's fix token (guarded fixes only), where the model has it
RUNBOOK_TOKEN_SECRET, FIX_TOKEN_SECRET = "pve_runbook_token", "pve_fix_token"
SITE_SECRETS = (OMNICTL_KEY, RUNBOOK_TOKEN_SECRET, FIX_TOKEN_SECRET)  # the secret files the site file names


def _hostport(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


class Twin:
    """A running lab site. Use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self, scenario: str | Path | dict | None = None, workdir: str | Path | None = None, *,
                 hidden: bool = False):
        self.scenario = scenario if isinstance(scenario, dict) else load_scenario(scenario)
        # a drill's twin (``hidden``): nothing it writes names the scenario (site file header, secret
        # file names, canary values); the state it serves still shows the failure, by design
        self.hidden = hidden
        self._own_dir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="runbook-lab-"))
        self.site_file = self.workdir / "site.yaml"
        self.state: dict[str, Any] = {}
        self.secrets: dict[str, str] = {}
        self.clusters: dict[str, Any] = {}
        self.hosts: dict[str, Any] = {}
        self.omni = None
        self.kube = None  # the Kubernetes API server (see the kubernetes block below)
        self.now = 0.0
        self.latency: dict[str, float] = {}  # seconds per request by kind (lab/latency.py)
        self.log: RequestLog | None = None
        self._loop: BackgroundLoop | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> "Twin":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _fill(self, obj, values: dict, *, strict: bool = False):
        return fill(obj, values, strict=strict, named_secrets=not self.hidden)

    def _run(self, coro, timeout: float = 30):
        return self._loop.run(coro, timeout)

    def start(self) -> Path:
        from .certs import CA
        from .omni_server import start_omni
        from .pve import start_cluster
        from .ssh_server import start_ssh_host

        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)
        self._loop = BackgroundLoop("lab-twin")
        try:
            now = time.time()
            values: dict[str, Any] = {"now": int(now)}
            state = self._fill(scenario_state(self.scenario), values)  # secrets and ${now}; URLs come later
            self._fill(f"${{secret:{OMNICTL_KEY}}}", values)  # the runbooks' own omnictl key
            self.now = now
            ca = CA.create(self.workdir / "pki")
            self.ca_file = Path(ca.cert_path)
            self.log = RequestLog(self.workdir / "requests.jsonl")
            self.latency = latency = latencies(state)

            for name, model in state["proxmox"]["clusters"].items():
                cluster = self._run(start_cluster(name, model, ca=ca, log=self.log, latency=latency["api"]))
                self.clusters[name] = cluster
                values[f"pve_url:{name}"] = cluster.endpoints[0]
            self.omni = self._run(start_omni(state["omni"], ca=ca, log=self.log, latency=latency["api"]))
            values["omni_url"] = self.omni.url
            self.kube = self._start_kubernetes(state.get("kubernetes") or {}, ca, values)
            self.state = state = self._fill(state, values, strict=True)
            self.secrets = {k[len("secret:"):]: v for k, v in values.items() if k.startswith("secret:")}

            targets = {_hostport(self.omni.url): "omni"}
            for cluster in self.clusters.values():
                targets.update({_hostport(u): "proxmox" for u in cluster.endpoints})
            ctx = TwinContext(now=now, ca_file=self.ca_file, targets=targets, talos=talos_addresses(state))

            client_pub = self._write_client_key()
            known = []
            for role in HOST_ROLES:
                server = self._run(
                    start_ssh_host(role, state["hosts"][role], ctx=ctx, log=self.log,
                                   host_key_path=self._host_key(role), authorized_keys=[client_pub],
                                   latency=latency["ssh"])
                )
                self.hosts[role] = server
                known.append(f"[127.0.0.1]:{server.port} {server.host_key_line}")
            (self.workdir / "known_hosts").write_text("\n".join(known) + "\n")
            self._write_secrets()
            self._write_omnictl()
            self._write_site()
        except BaseException:
            self.stop()
            raise
        return self.site_file

    def stop(self) -> None:
        if self._loop is None:
            return
        for server in [*self.hosts.values(), self.omni, self.kube, *self.clusters.values()]:
            if server is not None:
                try:
                    self._run(server.stop(), timeout=10)
                except Exception:  # stopping is best effort; the loop goes away next
                    pass
        self._loop.close()
        self._loop = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- kubernetes: the workload cluster's API server (argocd runbook; lab/kube.py) -----------------
    KUBE_CLUSTER = "homelab"

    def _start_kubernetes(self, model: dict, ca, values: dict):
        """Serve the cluster of ``model`` and write ``kubeconfig`` (a service-account style token).

        ``token: stale`` gives the kubeconfig a token the server does not accept. Both tokens are
        canary secrets of this twin.
        """
        from .kube import start_kube, write_kubeconfig

        if not model:
            return None
        accepted = self._fill("${secret:kube_token}", values)
        given = accepted if model.get("token", "valid") == "valid" else self._fill("${secret:kube_token_stale}", values)
        server = self._run(start_kube(model, ca=ca, log=self.log, token=accepted, now=values["now"],
                                      name=self.KUBE_CLUSTER, latency=self.latency["api"]))
        write_kubeconfig(self.workdir / "kubeconfig", server=server.url, ca_file=Path(ca.cert_path),
                         token=given, cluster=self.KUBE_CLUSTER)
        return server

    def _kubernetes_site(self) -> dict:
        """The ``kubernetes:`` section of the generated site file (empty without a cluster)."""
        if self.kube is None:
            return {}
        return {"kubernetes": {self.KUBE_CLUSTER: {"kubeconfig": str(self.workdir / "kubeconfig")}}}
    # --- end kubernetes -------------------------------------------------------------------------------

    # --- what tests look at --------------------------------------------------------------
    def requests(self) -> list[dict]:
        return self.log.entries() if self.log else []

    def writes(self) -> list[dict]:
        return [r for r in self.requests() if r.get("write")]

    # --- files -----------------------------------------------------------------------------
    def _host_key(self, role: str) -> Path:
        from .ssh_lib import asyncssh

        path = self.workdir / f"host_key_{role}"
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(path))
        os.chmod(path, 0o600)
        return path

    def _write_client_key(self) -> str:
        from .ssh_lib import asyncssh

        key = asyncssh.generate_private_key("ssh-ed25519", comment="runbook-lab")
        path = self.workdir / "client_key"
        key.write_private_key(str(path))
        os.chmod(path, 0o600)
        return key.export_public_key().decode().strip()

    def _write_secrets(self) -> None:
        """One file per canary secret; a drill's twin writes only those its site file names (a file
        called ``stale_provider_token`` would give the scenario away)."""
        d = self.workdir / "secrets"
        d.mkdir(mode=0o700, exist_ok=True)
        for name, value in self.secrets.items():
            if self.hidden and name not in SITE_SECRETS:
                continue
            p = d / name
            p.write_text(value + "\n")
            os.chmod(p, 0o600)

    def _write_omnictl(self) -> None:
        spec = self.state["omnictl"]
        state = {"error": spec.get("error"), "hang": bool(spec.get("hang")),
                 "resources": spec.get("resources") or {}, "now": int(self.now),
                 "omni_url": self.omni.url, "latency": self.latency["omnictl"]}
        (self.workdir / "omni-state.json").write_text(json.dumps(state, indent=1))
        bindir = self.workdir / "bin"
        bindir.mkdir(exist_ok=True)
        if spec.get("missing"):  # the site still names bin/omnictl: the binary is simply not there
            return
        script = bindir / "omnictl"
        script.write_text(
            "#!/bin/sh\n# omnictl stand-in of the runbook lab twin\n"
            f'exec "{sys.executable}" -m runbook_lab.omnictl --state "{self.workdir}/omni-state.json" '
            f'--log "{self.workdir}/requests.jsonl" "$@"\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def _write_site(self) -> None:
        w = self.workdir
        ssh_common = {"host": "127.0.0.1", "user": "root", "key_file": str(w / "client_key"),
                      "known_hosts": str(w / "known_hosts"), "ssh_config": "/dev/null",
                      "connect_timeout": 5, "command_timeout": 20}
        layout = self.state.get("layout") or {}
        provider = {"port": self.hosts["provider"].port}
        if layout.get("provider_container"):  # left out: the runbooks find the container by its image
            provider["container"] = layout["provider_container"]
        site = {
            "name": self.state.get("site", "lab"),
            "omni": {
                "url": self.omni.url,
                "ca_file": str(self.ca_file),
                "omnictl": {"binary": str(w / "bin" / "omnictl"),
                            "service_account_key": f"file:{w / 'secrets' / OMNICTL_KEY}",
                            "timeout": 15},
            },
            "hosts": {
                "omni": {**ssh_common, "port": self.hosts["omni"].port,
                         "compose_dir": layout.get("omni_compose_dir", "/opt/omni")},
                "provider": {**ssh_common, **provider},
            },
            "proxmox": {},
            "provider": {"id": layout.get("provider_id", "proxmox"),
                         "cluster": layout.get("provider_cluster", "matrix")},
            **self._kubernetes_site(),
        }
        guests = layout.get("guests") or {}
        for name, cluster in self.clusters.items():
            site["proxmox"][name] = {
                "endpoints": list(cluster.endpoints),
                "token_id": RUNBOOK_TOKEN,
                "token_secret": f"file:{w / 'secrets' / RUNBOOK_TOKEN_SECRET}",
                "ca_file": str(self.ca_file),
                "connect_timeout": 3,
                "read_timeout": 10,
                "guests": guests.get(name, {}),
            }
            if FIX_TOKEN in ((self.state.get("proxmox") or {}).get("clusters", {}).get(name, {}).get("tokens") or {}):
                site["proxmox"][name].update(fix_token_id=FIX_TOKEN,
                                             fix_token_secret=f"file:{w / 'secrets' / FIX_TOKEN_SECRET}")
        which = "a drill: the scenario is not named" if self.hidden else f"scenario: {self.scenario['name']}"
        header = (f"# Site file of a runbook lab twin ({which}).\n"
                  "# Written by runbook_lab; every address is on loopback, every secret a canary.\n")
        self.site_file.write_text(header + yaml.safe_dump(site, sort_keys=False))
