"""What the site's state means, written once.

Gathering (:mod:`runbook_lib.gather`) reduces what the sources return with these definitions, and
the checks (:mod:`runbook_lib.checks`) judge with them, so a fact about a real system (an Omni
enum, the ports a Talos role serves, when a Proxmox storage can hold a VM disk) has one home.
Nothing here talks to a system or imports ``sources``, ``gather`` or ``checks``. Some functions
read a section's evidence: they take it as ``ev`` (anything with ``get``, ``optional`` and ``has``);
what several checks of a run share, the checks register with ``@derive``, and it is built once a run.

======================  ===================================================================
``omni``                Omni's resources: enum values, labels, reading ``metadata``/``spec``
``join``                a machine request followed to its VM and its machine, with history; VM locks
``talos``               Talos node roles, the ports each serves, what a port probe means
``machineclass``        a MachineClass's provider data as the Proxmox provider reads it
``storage``             Proxmox storage rules: content types, which pools hold VM disks
``storage_selectors``   the classes' storage selectors, run on every node as the provider runs them
``capacity``            node capacity against what a machine class asks for
``privileges``          the Proxmox privileges the provider needs, and which a user holds
``network``             addresses and segments
``labels``              Omni label queries (MachineClass ``matchlabels``)
``machinesets``         what a machine set asks for, the clusters in scope, a healthy machine
``provider_log``        the provider's log vocabulary: start line, categories, step failures
``recovery``            deletion (tearingDown, finalizers), the provider's record of a VM's node, VM marks, disks
``drift``               each request followed to its VM cluster-wide: stuck, moved, orphaned VMs and Links
``argocd``              Argo CD's components, the paths they need (judged by ``runbook_lib.netpol``), PodSecurity
``ages``                ages and versions, shown and compared the same way everywhere
======================  ===================================================================
"""
