"""What the notebooks show besides the verdict: tables and plots, one module per section.

A view reads the evidence with the definitions the checks judge with (:mod:`runbook_lib.model`,
:mod:`runbook_lib.cel`), so a table never disagrees with the verdict. Views import neither
``gather`` nor ``sources`` (``tests/test_layout.py``): they show what was gathered, they fetch nothing.

====================  ===================================================================
``provisioning``      requests joined to VMs and machines, capacity (table and plot), privileges,
                      failed steps and tasks, registration
``storage``           what each storage selector makes of every pool, node by node
``recovery``          every machine request, Omni's view against Proxmox's
====================  ===================================================================
"""
