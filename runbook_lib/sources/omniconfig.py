"""omnictl's files on this machine: its configuration (the omniconfig) and the keys a browser login saved.

Local files, read as omnictl reads them: no call log entry (nothing is asked of another system), and
a failure is a value or a :class:`~runbook_lib.errors.SourceError`, never an ``OSError``. A saved
key is registered for redaction before it is returned.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from .. import redact
from ..errors import SourceError

__all__ = ["DEFAULT_CONFIG", "KEY_DIRS", "config_path", "read_config", "saved_login_key", "read_saved_key"]

DEFAULT_CONFIG = "~/.talos/omni/config"
# where omnictl keeps the key a browser (OIDC) login created: <context>-<identity>.pgp
KEY_DIRS = ("$SIDEROV1_KEYS_DIR", "~/.talos/keys", "$XDG_DATA_HOME/omni/keys", "~/.local/share/omni/keys")


def config_path(configured: str | None) -> tuple[Path, str]:
    """The omniconfig omnictl reads and why: the site's, ``$OMNICONFIG``, or the default."""
    if configured:
        return Path(os.path.expanduser(configured)), "site file (omni.omnictl.config)"
    if os.environ.get("OMNICONFIG"):
        return Path(os.path.expanduser(os.environ["OMNICONFIG"])), "$OMNICONFIG"
    return Path(os.path.expanduser(DEFAULT_CONFIG)), "default"


def read_config(configured: str | None, context: str | None = None) -> dict:
    """The omniconfig's contexts (it holds URLs and identities, no secrets)."""
    path, source = config_path(configured)
    out = {"path": str(path), "source": source, "site_set": bool(configured), "exists": path.is_file(),
           "contexts": [], "current": "", "url": "", "identity": "", "error": ""}
    if not out["exists"]:
        return out
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        out["error"] = f"cannot read it: {getattr(exc, 'strerror', None) or getattr(exc, 'problem', None) or exc}"
        return out
    contexts = doc.get("contexts") if isinstance(doc, dict) else None
    if not isinstance(contexts, dict):
        out["error"] = "it has no 'contexts:' mapping"
        return out
    out["contexts"] = sorted(str(c) for c in contexts)
    out["current"] = context or str(doc.get("context") or "")
    chosen = contexts.get(out["current"])
    if not isinstance(chosen, dict):
        out["error"] = f"context '{out['current']}' is not in the file"
        return out
    out["url"] = str(chosen.get("url") or "")
    auth = chosen.get("auth") or {}
    out["identity"] = str(((auth.get("siderov1") or {}) if isinstance(auth, dict) else {}).get("identity") or "")
    return out


def saved_login_key(context: str, identity: str) -> Path | None:
    """The key file a browser login left for ``context``/``identity``, if any."""
    name = f"{context}-{identity}.pgp"
    for d in KEY_DIRS:
        if d.startswith("$XDG_DATA_HOME") and not os.environ.get("XDG_DATA_HOME"):
            continue
        if d.startswith("$SIDEROV1") and not os.environ.get("SIDEROV1_KEYS_DIR"):
            continue
        path = Path(os.path.expanduser(os.path.expandvars(d))) / name
        if path.is_file():
            return path
    return None


def read_saved_key(path: Path) -> str:
    """The armored key in ``path``, registered for redaction; a :class:`SourceError` whose reason is
    ``cannot read it (...)`` when it cannot be read."""
    try:
        armored = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(str(path), f"cannot read it ({exc.strerror})") from None
    redact.register(armored)
    return armored
