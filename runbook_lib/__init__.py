"""Executable runbooks for an Omni + Proxmox + Talos + ArgoCD stack.

The flow of one run: site file -> sources (talk to the systems, log every call) -> checks (pure
functions over evidence) -> verdict (findings with ids from the cause catalog) -> record.
"""

__version__ = "0.1.0"
