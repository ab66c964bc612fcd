"""What the notebooks show besides the verdict: tables, lines and plots, one module per runbook,
so that a notebook cell is a call and holds no logic of its own.

A view reads the evidence with the definitions the checks judge with (:mod:`runbook_lib.model`,
:mod:`runbook_lib.cel`), so a table never disagrees with the verdict. Views import neither
``gather`` nor ``sources`` (``tests/test_layout.py``): they show what was gathered, they fetch
nothing. A view never judges either (the checks do); a piece of evidence that could not be
gathered becomes one row, or one line, that says why.

====================  ===================================================================
``provisioning``      requests joined to VMs and machines, capacity (table and plot), privileges,
                      failed steps and tasks, registration
``storage``           what each storage selector makes of every pool, node by node
``recovery``          every machine request, Omni's view against Proxmox's
====================  ===================================================================
"""

from __future__ import annotations

from ..evidence import Evidence


def or_reason(rows: list[dict], ev: Evidence, piece: str, column: str, empty: str = "none") -> list[dict]:
    """``rows``, or when there are none, one row whose ``column`` says why: the reason ``piece``
    could not be gathered, else ``empty``."""
    return rows or [{column: ev.error(piece) or empty}]
