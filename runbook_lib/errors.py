"""One exception family for the whole package: callers catch :class:`RunbookError`.

Source failures carry the target they were talking to and a reason a person can act on; a check
turns them into an ``unknown`` finding, never a traceback.
"""

from __future__ import annotations

from .outcome import Outcome


class RunbookError(Exception):
    """Base of every error this package raises on purpose."""


class SiteError(RunbookError):
    """The site file is missing, malformed or fails validation; the message names the field."""


class SecretRefError(SiteError):
    """A secret reference (``env:NAME`` / ``file:PATH``) cannot be resolved."""


class ScenarioError(RunbookError):
    """A lab-twin scenario file is malformed or unknown."""


class RunFailed(RunbookError):
    """The runbook itself could not be run (kernel died, notebook missing)."""


class SourceError(RunbookError):
    """A system could not answer. ``target`` says which, ``reason`` why; ``kind`` is the
    :class:`~runbook_lib.outcome.Outcome` the call log and the evidence keep."""

    kind: Outcome = Outcome.ERROR

    def __init__(self, target: str, reason: str):
        super().__init__(f"{target}: {reason}")
        self.target = target
        self.reason = reason


class Unreachable(SourceError):
    """Connection refused, no route, DNS failure: nothing answered."""

    kind = Outcome.UNREACHABLE


class TimedOut(SourceError):
    """The system accepted the request but did not finish within the deadline."""

    kind = Outcome.TIMED_OUT


class AuthFailed(SourceError):
    """Credentials were rejected (401, invalid signature, SSH auth failure)."""

    kind = Outcome.AUTH_FAILED


class PermissionDenied(SourceError):
    """Credentials were accepted but lack a privilege or role."""

    kind = Outcome.PERMISSION_DENIED


class TLSFailed(SourceError):
    """TLS or SSH host-key verification failed."""

    kind = Outcome.TLS_FAILED


class HostKeyMismatch(TLSFailed):
    """An SSH host key differs from the one in known_hosts: the host was reinstalled, or someone
    is in the middle. A security event: the verdict reports it once, as a problem
    (``security.host_key_mismatch``), not as the reason of every finding it left unchecked."""

    kind = Outcome.HOST_KEY


class NotFound(SourceError):
    """The object asked for does not exist (container, resource, file)."""

    kind = Outcome.NOT_FOUND


class CommandFailed(SourceError):
    """A remote or local command ran and exited non-zero."""

    kind = Outcome.COMMAND_FAILED

    def __init__(self, target: str, reason: str, *, rc: int | None = None, stderr: str = ""):
        super().__init__(target, reason)
        self.rc = rc
        self.stderr = stderr


class Malformed(SourceError):
    """The system answered, but not in the format expected."""

    kind = Outcome.MALFORMED
