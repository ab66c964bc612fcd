"""A MachineClass's provider data, read as the Proxmox provider reads it.

``autoprovision.providerdata`` is a YAML string the provider decodes into its ``Data`` struct
(snake_case keys; ``cores``, ``memory`` in MiB, ``disk_size`` in GiB and ``storage_selector`` are
required by its JSON schema). camelCase keys are silently ignored by the decoder.
"""

from __future__ import annotations

from typing import Any

import yaml

GIB = 1024**3
MIB = 1024**2

REQUIRED_KEYS = ("cores", "memory", "disk_size", "storage_selector")  # the provider schema's `required`
MINIMUMS = {"cores": 1, "memory": 2048, "disk_size": 5}  # the schema's `minimum`s
CAMEL_CASE = {"storageSelector": "storage_selector", "diskSize": "disk_size", "cpu": "cores",
              "networkBridge": "network_bridge", "cpuType": "cpu_type"}


def parse_providerdata(text: Any) -> tuple[dict | None, str]:
    """(the provider data as a mapping, or None; why not)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None, "the class has no providerdata"
    if isinstance(text, dict):
        return text, ""
    try:
        data = yaml.safe_load(str(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        return None, f"providerdata is not valid YAML{where}: {getattr(exc, 'problem', exc)}"
    if not isinstance(data, dict):
        return None, f"providerdata is a YAML {type(data).__name__}, not a mapping of settings"
    return data, ""


def class_problems(cls: dict, providers: list[str], site_provider: str = "") -> list[str]:
    """Why the provider cannot use this machine class (empty: it can).

    A class that names the site's own provider is not at fault when that provider is missing from
    Omni: that is the provider's registration (``provider.not_registered``), not the class.
    """
    out = []
    pid = cls.get("providerid") or ""
    if pid not in providers and not (site_provider and pid == site_provider):
        known = ", ".join(providers) or "none"
        out.append(f"autoprovision.providerid is '{pid}', which is not an infra provider in Omni (known: {known})")
    data, why = parse_providerdata(cls.get("providerdata"))
    if data is None:
        out.append(why)
        return out
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        out.append("providerdata lacks required key(s) " + ", ".join(missing))
    camel = [f"{k} (the provider reads {v})" for k, v in CAMEL_CASE.items() if k in data and v not in data]
    if camel:
        out.append("providerdata uses key(s) the provider ignores: " + ", ".join(camel))
    for key, low in MINIMUMS.items():
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"providerdata {key} is {value!r}, not a whole number")
        elif value < low:
            out.append(f"providerdata {key} is {value}, below the minimum {low}")
    return out


def class_needs(providerdata: Any) -> dict | None:
    """What one VM of a class takes: ``cores`` (vCPUs), ``memory`` (bytes), ``disks``
    [(selector, bytes)] and the pinned ``node`` ("" none); None when the data does not say."""
    data, _ = parse_providerdata(providerdata)
    if data is None:
        return None
    try:
        cores = int(data["cores"]) * max(int(data.get("sockets") or 1), 1)
        memory = int(data["memory"]) * MIB
        disks = [(str(data.get("storage_selector") or ""), int(data["disk_size"]) * GIB)]
        for extra in data.get("additional_disks") or []:
            disks.append((str(extra.get("storage_selector") or ""), int(extra["disk_size"]) * GIB))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return {"cores": cores, "memory": memory, "disks": disks, "node": str(data.get("node") or "")}
