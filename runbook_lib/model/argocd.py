"""ArgoCD on a Talos cluster: its components, the paths between them, and the messages that name a cause."""

from __future__ import annotations

import re

NAME = "app.kubernetes.io/name"
CONTROLLER = "argocd-application-controller"
# which component must reach which Service: destination -> callers
PATHS: dict[str, tuple[str, ...]] = {
    "argocd-repo-server": (CONTROLLER, "argocd-server", "argocd-applicationset-controller"),
    "argocd-redis": (CONTROLLER, "argocd-server", "argocd-repo-server"),
    "argocd-dex-server": ("argocd-server",),
}
ERROR_CONDITIONS = ("ComparisonError", "InvalidSpecError", "SyncError", "UnknownError")
DIAL = re.compile(r"dial tcp ([0-9.]+):(\d+):? ?(?:connect: )?(operation not permitted|connection refused|i/o timeout)")
PSA = re.compile(r'violates PodSecurity "(\w+):([\w.]+)": (.*)')
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
TALOS_DEFAULT_LEVEL = "baseline"
STALE_AFTER = 300.0  # seconds a recovered component is given before a lingering error counts as cached
