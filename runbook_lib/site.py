"""The site file: what the runbooks talk to and how, with credentials only as references.

A site file is YAML. Every credential is a *reference*, ``env:NAME`` or ``file:PATH``, resolved at
the moment a source needs it (and registered with :mod:`runbook_lib.redact`), so no secret value is
ever a parameter, an output or part of a record. Validation errors name the exact field
(``proxmox.matrix.endpoints[1]``) and what was expected, and never echo the offending value.

``examples/site.yaml`` describes every field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import redact
from .errors import SecretRefError, SiteError

# the environment variable naming the site file when none is given (`runbook lab jupyter` sets it)
SITE_ENV = "RUNBOOK_SITE"

_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")


def _secret_ref(value: str) -> str:
    if not isinstance(value, str) or not _REF.match(value):
        raise ValueError(
            "expected a secret reference 'env:NAME' or 'file:PATH' (a literal secret is not allowed)"
        )
    return value


SecretRef = Annotated[str, AfterValidator(_secret_ref)]


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("expected a URL such as https://host:port")
    return value


URL = Annotated[str, AfterValidator(_https_url)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SSHTarget(_Model):
    """How to reach a host over SSH. ``alias`` is looked up in ``ssh_config`` like ``ssh ALIAS``."""

    alias: str | None = None
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = None
    key_file: str | None = None
    key_passphrase: SecretRef | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    ssh_config: str = "~/.ssh/config"
    strict_host_keys: bool = True
    connect_timeout: float = Field(10.0, gt=0)
    command_timeout: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _alias_or_host(self):
        if not (self.alias or self.host):
            raise ValueError("give 'alias' (a Host in ssh_config) or 'host'")
        return self

    @property
    def label(self) -> str:
        return self.alias or f"{self.user + '@' if self.user else ''}{self.host}"


class ProviderHost(SSHTarget):
    """The host (an LXC in the guide's layout) where the provider's container runs."""

    container: str | None = None  # container name; found by image when empty
    image: str = "ghcr.io/siderolabs/omni-infra-provider-proxmox"
    compose_dir: str | None = None
    compose_service: str | None = None


class OmniHost(SSHTarget):
    """The host (a VM in the guide's layout) where Omni runs with docker compose."""

    compose_dir: str = "/opt/omni"
    omni_service: str = "omni"
    tailscale_service: str = "omni-tailscale"


class Omnictl(_Model):
    binary: str = "omnictl"  # a path, or a name looked up on PATH
    config: str | None = None  # OMNICONFIG
    context: str | None = None
    service_account_key: SecretRef | None = None  # OMNI_SERVICE_ACCOUNT_KEY
    insecure_skip_tls_verify: bool = False
    timeout: float = Field(30.0, gt=0)


class Omni(_Model):
    url: URL  # the endpoint omnictl and the provider should use
    ca_file: str | None = None  # CA bundle that signs Omni's certificate; None: system store
    verify_tls: bool = True
    omnictl: Omnictl = Omnictl()


class ProxmoxCluster(_Model):
    """One Proxmox VE cluster: its API endpoints (one per node) and the runbooks' credentials."""

    endpoints: list[URL] = Field(min_length=1)
    token_id: str | None = None  # user@realm!name
    token_secret: SecretRef | None = None
    user: str | None = None  # user@realm, for password login
    password: SecretRef | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(15.0, gt=0)
    guests: dict[str, int] = {}  # role -> VMID or CT id, e.g. omni_vm: 101, provider_lxc: 200
    # An API token only guarded fixes use (the recovery runbook's plans: migrate, stop, destroy a VM);
    # without it those plans are shown but cannot be applied. The read-only token above stays the
    # one every diagnosis uses.
    fix_token_id: str | None = None
    fix_token_secret: SecretRef | None = None

    @model_validator(mode="after")
    def _fix_token(self):
        if (self.fix_token_id is None) != (self.fix_token_secret is None):
            raise ValueError("a fix token needs both fix_token_id and fix_token_secret")
        if self.fix_token_id and not re.match(r"^[^@!\s]+@[^@!\s]+![^@!\s]+$", self.fix_token_id):
            raise ValueError("fix_token_id must look like user@realm!tokenname")
        return self

    @model_validator(mode="after")
    def _one_auth(self):
        token = self.token_id is not None or self.token_secret is not None
        password = self.user is not None or self.password is not None
        if token and password:
            raise ValueError("give either token_id/token_secret or user/password, not both")
        if token and not (self.token_id and self.token_secret):
            raise ValueError("token auth needs both token_id and token_secret")
        if password and not (self.user and self.password):
            raise ValueError("password auth needs both user and password")
        if not (token or password):
            raise ValueError("give token_id/token_secret or user/password")
        if self.token_id and not re.match(r"^[^@!\s]+@[^@!\s]+![^@!\s]+$", self.token_id):
            raise ValueError("token_id must look like user@realm!tokenname")
        return self


class Provider(_Model):
    id: str = "proxmox"  # the infra provider id in Omni (the provider's --id)
    cluster: str  # the Proxmox cluster (key of 'proxmox') it creates VMs on


class KubeCluster(_Model):
    kubeconfig: str
    context: str | None = None


class Hosts(_Model):
    omni: OmniHost
    provider: ProviderHost


class Site(_Model):
    name: str
    omni: Omni
    hosts: Hosts
    proxmox: dict[str, ProxmoxCluster] = Field(min_length=1)
    provider: Provider
    kubernetes: dict[str, KubeCluster] = {}

    @model_validator(mode="after")
    def _references(self):
        if self.provider.cluster not in self.proxmox:
            raise ValueError(
                f"provider.cluster names '{self.provider.cluster}', which is not a key of 'proxmox' "
                f"({', '.join(sorted(self.proxmox))})"
            )
        return self

    # --- conveniences used by sources and notebooks -------------------------------------
    def cluster_hosting(self, role: str) -> tuple[str, int] | None:
        """The (cluster, id) of a guest by its role, e.g. 'omni_vm' or 'provider_lxc'."""
        for name, cluster in self.proxmox.items():
            if role in cluster.guests:
                return name, cluster.guests[role]
        return None

    def insecure_settings(self) -> list[str]:
        """Verification this site turns off; shown in every verdict."""
        out = []
        if not self.omni.verify_tls or self.omni.omnictl.insecure_skip_tls_verify:
            out.append("TLS verification of Omni is off")
        for name, c in self.proxmox.items():
            if not c.verify_tls:
                out.append(f"TLS verification of Proxmox cluster '{name}' is off")
        for role in ("omni", "provider"):
            if not getattr(self.hosts, role).strict_host_keys:
                out.append(f"SSH host-key checking for the {role} host is off")
        return out


def resolve_secret(ref: str, *, field: str = "secret") -> str:
    """Resolve ``env:NAME`` or ``file:PATH`` to its value, register it for redaction, return it."""
    if ref.startswith("env:"):
        name = ref[4:]
        value = os.environ.get(name)
        if value is None:
            raise SecretRefError(f"{field}: environment variable {name} is not set")
    elif ref.startswith("file:"):
        path = Path(os.path.expanduser(ref[5:]))
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretRefError(f"{field}: cannot read {path}: {exc.strerror or exc}") from None
        if not value:
            raise SecretRefError(f"{field}: {path} is empty")
    else:
        raise SecretRefError(f"{field}: not a secret reference (expected env:NAME or file:PATH)")
    redact.register(value)
    return value


def secret_refs(site: Site) -> dict[str, str]:
    """Every secret reference in a site, by dotted field path."""
    found: dict[str, str] = {}

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                walk(getattr(obj, name), f"{path}.{name}" if path else name)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}.{k}")
        elif isinstance(obj, str) and _REF.match(obj) and redact.looks_secret(path.rsplit(".", 1)[-1]):
            found[path] = obj

    walk(site, "")
    return found


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after[_https_url(), str]", "function-after[_secret_ref(), str]"}:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(err: dict) -> str:
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; see examples/site.yaml)"
    elif err["type"] == "missing":
        msg = "required field is missing"
    return msg


def parse_site(data: Any, *, source: str = "site file", base_dir: Path | None = None) -> Site:
    """Validate a site mapping. Relative file paths are taken relative to ``base_dir``."""
    if not isinstance(data, dict):
        raise SiteError(f"{source}: expected a YAML mapping at the top level, got {type(data).__name__}")
    if base_dir is not None:
        data = _absolutize(data, base_dir)
    try:
        return Site.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {len(exc.errors())} problem(s)"]
        for err in exc.errors():
            lines.append(f"  {_field_path(err['loc'])}: {_describe(err)}")
        raise SiteError("\n".join(lines)) from None


def load_site(path: str | os.PathLike) -> Site:
    """Read and validate a site file; errors name the file, the line (for YAML) and the field."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SiteError(f"site file {p}: cannot read it: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SiteError(f"site file {p}: not valid YAML{where}: {problem}") from None
    return parse_site(data, source=f"site file {p}", base_dir=p.parent.resolve())


_PATH_KEYS = {"key_file", "known_hosts", "ssh_config", "ca_file", "config", "kubeconfig"}


def _absolutize(obj: Any, base: Path) -> Any:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in _PATH_KEYS and isinstance(v, str) and not v.startswith("~") and not os.path.isabs(v):
                out[k] = str(base / v)
            elif isinstance(v, str) and v.startswith("file:") and not os.path.isabs(v[5:]) and not v[5:].startswith("~"):
                out[k] = "file:" + str(base / v[5:])
            else:
                out[k] = _absolutize(v, base)
        return out
    if isinstance(obj, list):
        return [_absolutize(v, base) for v in obj]
    return obj
