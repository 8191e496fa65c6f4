"""Recognise the Cluster Event descriptions that policies act on, and HyperPod's own node repairs.

Cluster Events have no machine-readable type: the kind is only in the `Description`
text, which follows the templates of the HyperPod cluster events reference. One table
here, so a template change is a one-line fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from .events import ClusterEvent

_NAME = r"[A-Za-z0-9][A-Za-z0-9-]*"
_INSTANCE = r"[A-Za-z0-9][A-Za-z0-9_.-]*[A-Za-z0-9]"


class Kind(StrEnum):
    K8S_CONFIG_UPDATE_FAILED = "k8s-config-update-failed"
    GROUP_ROLLBACK_FAILED = "group-rollback-failed"
    GROUP_ROLLBACK_INITIATED = "group-rollback-initiated"
    BAKE_ALARM_ROLLBACK = "bake-alarm-rollback"
    INSTANCE_ROLLBACK_INITIATED = "instance-rollback-initiated"
    INSTANCE_ROLLBACK_FAILED = "instance-rollback-failed"
    # HyperPod's own node repair (the archive keeps them as repair facts, archive.RepairFact)
    NODE_REBOOT_STARTED = "node-reboot-started"
    NODE_REBOOT_FAILED = "node-reboot-failed"
    NODE_REBOOT_COMPLETED = "node-reboot-completed"
    NODE_REPLACEMENT_STARTED = "node-replacement-started"
    NODE_REPLACEMENT_FAILED = "node-replacement-failed"
    NODE_REPLACEMENT_COMPLETED = "node-replacement-completed"


RepairKind = Literal["reboot", "replacement"]
RepairPhase = Literal["started", "completed", "failed"]
#: a node repair's kind: what HyperPod did to the node and how far it got
REPAIRS: dict[Kind, tuple[RepairKind, RepairPhase]] = {
    Kind.NODE_REBOOT_STARTED: ("reboot", "started"),
    Kind.NODE_REBOOT_FAILED: ("reboot", "failed"),
    Kind.NODE_REBOOT_COMPLETED: ("reboot", "completed"),
    Kind.NODE_REPLACEMENT_STARTED: ("replacement", "started"),
    Kind.NODE_REPLACEMENT_FAILED: ("replacement", "failed"),
    Kind.NODE_REPLACEMENT_COMPLETED: ("replacement", "completed"),
}
#: "in Cluster <cluster> and IG <group>", as the instance templates end
_IN_GROUP = rf"in Cluster (?P<cluster>{_NAME}) and IG (?P<group>{_NAME})"
_REPLACEMENT = f"instance replacement {_IN_GROUP}"


_TEMPLATES: tuple[tuple[Kind, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        (Kind.K8S_CONFIG_UPDATE_FAILED,
         (rf"^Failed to update Kubernetes config for instance (?P<instance>{_INSTANCE}) "
          rf"in Cluster (?P<cluster>{_NAME}) and IG (?P<group>{_NAME})")),
        (Kind.GROUP_ROLLBACK_FAILED, rf"^Rollback failed for IG (?P<group>{_NAME}) in Cluster (?P<cluster>{_NAME})"),
        (Kind.GROUP_ROLLBACK_INITIATED,
         (rf"^UpdateClusterSoftware failed for IG (?P<group>{_NAME}) in Cluster (?P<cluster>{_NAME})\. "
          r"Initiating rollback")),
        (Kind.BAKE_ALARM_ROLLBACK,
         (rf"^Baking period failed for IG (?P<group>{_NAME}) in Cluster (?P<cluster>{_NAME})\. "
          r"Alarms \[(?P<alarms>[^\]]*)\] entered ALARM state")),
        (Kind.INSTANCE_ROLLBACK_INITIATED,
         rf"^Instance (?P<instance>{_INSTANCE}) in IG (?P<group>{_NAME}) failed to update\. Rollback initiated"),
        (Kind.INSTANCE_ROLLBACK_FAILED,
         rf"^UpdateClusterSoftware rollback failed for instance (?P<instance>{_INSTANCE}) in IG (?P<group>{_NAME})"),
        # "Instance reboot" and "Instance replacement" of the cluster events reference; the generic "Instance
        # <operation> … completed successfully / failed" counts when its operation is a reboot
        (Kind.NODE_REBOOT_STARTED,
         rf"^Reboot of EC2 Instance (?P<instance>{_INSTANCE}) is currently in progress on {_IN_GROUP[3:]}"),
        (Kind.NODE_REBOOT_FAILED,
         rf"^Failed to submit reboot request for EC2 Instance (?P<instance>{_INSTANCE}) {_IN_GROUP}"),
        (Kind.NODE_REBOOT_COMPLETED,
         rf"^Instance (?i:reboot) (?P<instance>{_INSTANCE}) {_IN_GROUP} completed successfully"),
        (Kind.NODE_REBOOT_FAILED, rf"^Instance (?i:reboot) (?P<instance>{_INSTANCE}) {_IN_GROUP} failed"),
        (Kind.NODE_REPLACEMENT_STARTED,
         rf"^Instance (?P<instance>{_INSTANCE}) is starting as part of instance replacement {_IN_GROUP}"),
        (Kind.NODE_REPLACEMENT_FAILED,
         rf"^Instance (?P<instance>{_INSTANCE}) failed to start as part of instance replacement {_IN_GROUP}"),
        (Kind.NODE_REPLACEMENT_COMPLETED,
         rf"^Instance (?P<instance>{_INSTANCE}) \S+ completed successfully as part of {_REPLACEMENT}"),
        (Kind.NODE_REPLACEMENT_FAILED, rf"^Instance (?P<instance>{_INSTANCE}) \S+ failed as part of {_REPLACEMENT}"),
    )
)


@dataclass(frozen=True)
class Classified:
    kind: Kind
    instance_group: str | None
    instance_id: str | None
    alarms: tuple[str, ...] = ()
    description: str = ""

    @property
    def repair(self) -> tuple[RepairKind, RepairPhase] | None:
        """A node repair's (kind, phase), e.g. ("replacement", "completed"); None for any other event."""
        return REPAIRS.get(self.kind)


def classify(event: object) -> Classified | None:
    """The recognised kind of a Cluster Event, or None (other event or other text)."""
    if not isinstance(event, ClusterEvent):
        return None
    info = event.info
    text = info.description.strip()
    for kind, pattern in _TEMPLATES:
        match = pattern.match(text)
        if match:
            fields = match.groupdict()
            alarms = tuple(a.strip() for a in (fields.get("alarms") or "").split(",") if a.strip())
            return Classified(
                kind=kind,
                # the structured fields win over the text when both are present
                instance_group=info.instance_group_name or fields.get("group"),
                instance_id=info.instance_id or fields.get("instance"),
                alarms=alarms,
                description=text,
            )
    return None
