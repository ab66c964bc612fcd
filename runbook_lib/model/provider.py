"""The Proxmox provider's settings: its flags, the environment variables behind them, its config.

Flags default to environment variables (``--omni-api-endpoint`` to ``OMNI_ENDPOINT``,
``--omni-service-account-key`` to ``OMNI_SERVICE_ACCOUNT_KEY``). Its Proxmox connection comes from
the ``proxmox:`` mapping of ``--config-file``; newer releases (the v0.2/v0.3 ``main.go``) make the
file optional and read ``PROXMOX_*`` variables instead, with surrounding quotes stripped. Which one
wins when both are set is not known from the source we read: here the file's values are taken and
the variables fill what it leaves out.
"""

from __future__ import annotations

PROVIDER_IMAGE = "omni-infra-provider-proxmox"
FLAG_ENV = {"omni_api_endpoint": "OMNI_ENDPOINT", "key": "OMNI_SERVICE_ACCOUNT_KEY"}
# PROXMOX_* variable -> the config file's key under `proxmox:`
PROXMOX_ENV = {"PROXMOX_URL": "url", "PROXMOX_USERNAME": "username", "PROXMOX_PASSWORD": "password",
               "PROXMOX_REALM": "realm", "PROXMOX_TOKEN_ID": "tokenID", "PROXMOX_TOKEN_SECRET": "tokenSecret",
               "PROXMOX_TOKEN": "token", "PROXMOX_INSECURE_SKIP_VERIFY": "insecureSkipVerify"}
SECRET_KEYS = ("password", "tokenSecret", "token")


def proxmox_from_env(env: dict[str, str]) -> dict:
    """The ``proxmox:`` settings the provider's environment gives (empty: none)."""
    out: dict = {}
    for var, key in PROXMOX_ENV.items():
        value = str(env.get(var) or "").strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if value:
            out[key] = value.lower() in ("1", "true", "yes") if key == "insecureSkipVerify" else value
    return out


def merged(file_settings: dict | None, env_settings: dict) -> dict:
    """The file's settings, with what it leaves out filled from the environment."""
    return {**env_settings, **{k: v for k, v in (file_settings or {}).items() if v not in (None, "")}}
