"""What the site's state means, written once.

Gathering (:mod:`runbook_lib.gather`) reduces what the sources return with these definitions, and
the checks (:mod:`runbook_lib.checks`) judge with them, so a fact about a real system (an Omni
enum, the ports a Talos role serves, when a Proxmox storage can hold a VM disk) has one home.
Nothing here talks to a system or imports ``sources``, ``gather`` or ``checks``.

====================  ===================================================================
``omni``              Omni's resources: enum values, labels, reading ``metadata``/``spec``
``join``              a machine request followed to its VM and its machine, with history
``talos``             Talos node roles, the ports each serves, what a port probe means
``machineclass``      a MachineClass's provider data as the Proxmox provider reads it
``storage``           Proxmox storage rules: content types, which pools hold VM disks
``capacity``          node capacity against what a machine class asks for
``privileges``        the Proxmox privileges the provider needs, and which a user holds
``network``           addresses and segments
``labels``            Omni label queries (MachineClass ``matchlabels``)
``provider_log``      the provider's log vocabulary: start line, categories, step failures
``recovery``          deletion (tearingDown, finalizers), the provider's record of a VM's node, VM marks
``ages``              ages and versions, shown and compared the same way everywhere
====================  ===================================================================
"""
