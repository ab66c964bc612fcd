"""The lab twin: a simulated Omni + Proxmox site on loopback that speaks the real protocols.

Needs the ``lab`` extra. ``Twin(scenario).start()`` returns the path of a site file that points at
it; ``runbook lab up`` keeps one running for JupyterLab; ``runbook run SECTION --lab`` uses one
for a single run. Scenarios (``scenarios/*.yaml``, documented in ``docs/scenarios.md``) inject the
failures of the operators' guide into the healthy site (``healthy.yaml``).
"""
