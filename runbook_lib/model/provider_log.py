"""The Proxmox provider's log: what its lines mean.

The provider logs with zap as JSON lines (``level``, ``ts``, ``caller``, ``msg`` and call fields);
errors at start-up are printed by cobra as plain ``Error: ...`` lines. Only the lines since its last
start count: an earlier process's errors are history.
"""

from __future__ import annotations

START_LINE = '"msg":"starting infra provider"'  # the provider's first line: a new process
PROVISION_FAILED = "machine provision failed"  # a provision step failed; the provider retries it every minute
REQUEST_TAG = "machine-request."  # the tag the provider puts on a VM: machine-request.<request set>

# Registration and connectivity (the provider runbook).
# Order matters: the first category whose pattern matches a line takes it.
LOG_CATEGORIES = {
    "id_mismatch": r"must match the infra provider ID|namespace not allowed, must be one of",
    "not_registered": r"is not registered in the system",
    "omni_tls": r"code = Unavailable.*(?:x509|tls: )",
    "omni_unreachable": (
        r"code = Unavailable|name resolver error|produced zero addresses|"
        r"code = PermissionDenied desc = unexpected HTTP status|unknown service cosi"
    ),
    "key_invalid": r"code = Unauthenticated|invalid signature|missing valid signature|code = PermissionDenied",
    "proxmox_tls": r"x509: |tls: failed to verify",
    "proxmox_auth": r"not authorized to access endpoint",
    "proxmox_unreachable": (
        r"api2/json\S*\s+dial tcp|api2/json.*(?:connection refused|no such host|Client\.Timeout|"
        r"deadline exceeded|i/o timeout|no route to host)|hostname lookup '[^']*' failed"
    ),
    "insecure_proxmox": r"using insecure connection to Proxmox",
}
# Every line a category above matches contains one of these (tests/test_logscan.py checks it).
LOG_TRIGGERS = ["must match the infra provider", "namespace not allowed", "is not registered", "code = ",
                "name resolver error", "produced zero addresses", "unknown service cosi", "signature", "x509: ",
                "tls: failed to verify", "not authorized to access endpoint", "api2/json", "hostname lookup",
                "using insecure connection"]

# Supply (the cluster runbook: read only while machines are waited for).
# First match wins.
SUPPLY_CATEGORIES = {
    "rate_limited": (r"code = ResourceExhausted|429 Too Many Requests|[Tt]oo many requests|rate limit|"
                     r"can't lock file '[^']*' - got timeout|got lock request timeout"),
    "capacity": (r"no (?:online )?nodes available|Cannot allocate memory|No space left on device|"
                 r"insufficient free space|not enough (?:free )?(?:memory|space)"),
}
# Every line a category matches contains one of these (checked by the tests).
SUPPLY_TRIGGERS = ["ResourceExhausted", "429 Too Many", "oo many requests", "rate limit", "can't lock file",
                   "got lock request timeout", "nodes available", "Cannot allocate memory", "No space left",
                   "insufficient free space", "not enough "]
