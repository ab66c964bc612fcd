"""Omni's resources as omnictl prints them: enum values, labels, and reading one resource.

The enums are those of Omni's ``client/api/omni/specs/{omni,infra}.proto``; omnictl prints them
as integers. Two enums are easy to confuse and are kept apart by name here: a
MachineRequestStatus (written by the provider) has 4 stages, a ClusterMachineRequestStatus
(written by Omni, per cluster machine set) has 6.
"""

from __future__ import annotations

from .ages import epoch

# MachineRequestStatus.stage (infra.proto)
REQUEST_STAGES = {0: "UNKNOWN", 1: "PROVISIONING", 2: "PROVISIONED", 3: "FAILED"}
REQUEST_PROVISIONING, REQUEST_PROVISIONED, REQUEST_FAILED = 1, 2, 3

# ClusterMachineRequestStatus.stage (omni.proto)
CLUSTER_REQUEST_STAGES = {0: "UNKNOWN", 1: "PENDING", 2: "PROVISIONING", 3: "PROVISIONED", 4: "DEPROVISIONING",
                          5: "FAILED"}
CLUSTER_REQUEST_PROVISIONED = 3

# ClusterStatus.phase
CLUSTER_PHASES = {0: "UNKNOWN", 1: "SCALING_UP", 2: "SCALING_DOWN", 3: "RUNNING", 4: "DESTROYING"}
CLUSTER_RUNNING = 3

# MachineSetStatus.phase
SET_PHASES = {0: "Unknown", 1: "ScalingUp", 2: "ScalingDown", 3: "Running", 4: "Destroying", 5: "Failed",
              6: "Reconfiguring", 7: "Upgrading"}

# ClusterMachineStatus.stage and .configapplystatus
MACHINE_STAGES = {0: "UNKNOWN", 1: "BOOTING", 2: "INSTALLING", 3: "CONFIGURING", 4: "RUNNING", 5: "DESTROYING",
                  6: "UPGRADING", 7: "REBOOTING", 8: "SHUTTING_DOWN", 9: "BEFORE_DESTROY", 10: "POWERING_ON",
                  11: "POWERED_OFF"}
CONFIG_APPLY_FAILED = 3

# MachineStatus.role
MACHINE_ROLES = {0: "none", 1: "controlplane", 2: "worker"}

# ControlPlaneStatus conditions
CONDITION_TYPES = {0: "Unknown", 1: "Etcd", 2: "WireguardConnection"}
CONDITION_STATUS = {0: "Unknown", 1: "Ready", 2: "NotReady"}
SEVERITY = {0: "Info", 1: "Warning", 2: "Error"}
CONDITION_ETCD, CONDITION_NOT_READY = 1, 2

# MachineSetStatus.machineallocation.allocationtype
ALLOCATION_UNLIMITED = 1

# labels Omni sets
L_CLUSTER = "omni.sidero.dev/cluster"
L_MACHINE_SET = "omni.sidero.dev/machine-set"
L_CONTROL_PLANE = "omni.sidero.dev/role-controlplane"
L_WORKER = "omni.sidero.dev/role-worker"
L_CONNECTED = "omni.sidero.dev/connected"
L_HOSTNAME = "omni.sidero.dev/hostname"
L_PROVIDER = "omni.sidero.dev/infra-provider-id"
L_REQUEST_SET = "omni.sidero.dev/machine-request-set"
L_REQUEST = "omni.sidero.dev/machine-request"
# what Omni requires of a machine it allocates from a class by labels (MachineSetNodeController)
ALLOCATABLE = ("omni.sidero.dev/available", L_CONNECTED, "omni.sidero.dev/reporting-events")

TEARING_DOWN = "tearingDown"  # metadata.phase of a resource being deleted (else "running")


def meta(res: dict) -> dict:
    return res.get("metadata") or {}


def spec(res: dict) -> dict:
    return res.get("spec") or {}


def rid(res: dict) -> str:
    return str(meta(res).get("id") or "")


def labels(res: dict) -> dict:
    return meta(res).get("labels") or {}


def created(res: dict) -> float | None:
    return epoch(meta(res).get("created"))


def updated(res: dict) -> float | None:
    return epoch(meta(res).get("updated"))


def stage_name(names: dict[int, str], value) -> str:
    """An enum value as its name (an unknown value as itself)."""
    try:
        return names[int(value)]
    except (KeyError, TypeError, ValueError):
        return str(value)
