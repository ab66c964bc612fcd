"""What a probe or a source call came to: one vocabulary from the sources to the checks.

A :class:`~runbook_lib.errors.SourceError`'s ``kind``, an HTTP probe's ``kind``
(:mod:`runbook_lib.sources.http`), a TCP connect or a name lookup (:mod:`runbook_lib.sources.net`),
curl's and netcat's verdicts run on a remote host, a Talos port: each is an :class:`Outcome`.

It is a :class:`~enum.StrEnum` whose values are the words the evidence has always held, so the
evidence JSON, the records and the lab twin read the same (``str``, ``format`` and ``repr`` give
the plain word), and a value read back from a record (a plain ``str``) compares equal to its member.
It lives at the top of the package, beside :mod:`runbook_lib.errors`, because every layer uses it:
the sources, which may not import the model, as much as the model and the checks.

Which outcomes a producer can give:

==========================  ===================================================================
producer                    outcomes
==========================  ===================================================================
``SourceError.kind``        ``UNREACHABLE``, ``TIMED_OUT``, ``AUTH_FAILED``, ``PERMISSION_DENIED``,
                            ``TLS_FAILED``, ``HOST_KEY``, ``NOT_FOUND``, ``COMMAND_FAILED``,
                            ``MALFORMED``; ``ERROR`` for the family's base class
HTTP probe (``http.probe``)  ``OK``, ``DNS_FAILED``, ``REFUSED``, ``TIMED_OUT``, ``TLS_FAILED``,
                            ``HTTP_ERROR``
TCP connect (``net``)       ``OK``, ``REFUSED``, ``TIMED_OUT``, ``UNREACHABLE``; ``SKIPPED`` when
                            there was no address to connect to
curl on a host (``net``)    ``OK``, ``DNS_FAILED``, ``REFUSED``, ``TIMED_OUT``, ``TLS_FAILED``, ``ERROR``
netcat on a host (``net``)  ``OK``, ``REFUSED``, ``TIMED_OUT``, ``UNREACHABLE``, ``ERROR``; ``NO_ANSWER``
                            for a port netcat printed nothing about
Proxmox ``/version`` probe  ``OK`` or the ``SourceError.kind``
omnictl's one real call     ``OK`` or the ``SourceError.kind``
a call's ``outcome``        ``OK``, ``ERROR``, ``TIMED_OUT`` (:class:`runbook_lib.calls.Call`)
==========================  ===================================================================
"""

from __future__ import annotations

import enum

__all__ = ["Outcome"]


class Outcome(enum.StrEnum):
    OK = "ok"
    """It answered as asked: connected, HTTP status below 400, the command or call succeeded."""

    # nothing answered
    DNS_FAILED = "dns"
    """The name does not resolve (or has no address)."""
    REFUSED = "refused"
    """A TCP RST came back: nothing listens there, or a REJECT rule answered for it."""
    UNREACHABLE = "unreachable"
    """No route to the host (an ICMP error), or, from a source, nothing answered at all."""
    TIMED_OUT = "timeout"
    """Nothing came back within the deadline."""
    NO_ANSWER = "no answer"
    """netcat printed no line about the port."""

    # something answered, but not to be trusted
    TLS_FAILED = "tls"
    """The TLS handshake or the certificate check failed."""
    HOST_KEY = "host_key"
    """An SSH host key differs from known_hosts: a security event."""

    # something answered no
    AUTH_FAILED = "auth"
    """The credentials were rejected."""
    PERMISSION_DENIED = "permission"
    """The credentials were accepted but lack a privilege or a role."""
    NOT_FOUND = "not_found"
    """The object (container, resource, file, binary) does not exist."""
    HTTP_ERROR = "http_error"
    """An HTTP answer with status 400 or above, or no valid HTTP answer."""
    COMMAND_FAILED = "command"
    """A command ran and exited non-zero."""
    MALFORMED = "malformed"
    """The answer is not in the format expected."""
    ERROR = "error"
    """A failure none of the above names."""

    SKIPPED = "skipped"
    """The probe was not made (a TCP connect without an address)."""

    def __repr__(self) -> str:
        """The plain word's: evidence shown as a dict or a list (a notebook cell, a log) reads as it always did."""
        return str.__repr__(self)
