"""One notification of every kind (first, repeat, escalated, resolved, remediated, grouped, test), as
the pipeline builds them: the samples every channel's renderer (Slack, Chatbot, email) is tested
and golden-filed on, so the channels are compared on the same messages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hyperpod_guard.notify.message import FindingPayload, Notification, NotificationItem, ReceiverRef, next_step
from hyperpod_guard.workload.model import Job, Workload

SENT_AT = datetime(2026, 11, 30, 9, 30, tzinfo=timezone.utc)
FIRST_SEEN = SENT_AT - timedelta(hours=2, minutes=14)
ARN = "arn:aws:sagemaker:us-west-2:123456789012:cluster/abcd1234efgh"
RUNBOOK = "https://wiki.example.com/runbooks/hyperpod/failed-rollback"


def rollback(severity: str = "critical") -> FindingPayload:
    return FindingPayload(
        policy="failed-rollback", severity=severity, cluster="ml-prod", instance_group="p5-train",
        fingerprint="6f1c0a9e2b7d4c3a8e51", condition="rollback-failed",
        summary="Software update of instance group p5-train failed and its rollback failed too",
        details={"software_update_status": "RollbackFailed", "current_image_id": "ami-0123456789abcdef0",
                 "desired_image_id": "ami-0fedcba9876543210",
                 "failure_message": "Instance i-0a1b2c3d4e5f60718 failed health checks after the update"},
    )


def degraded() -> FindingPayload:
    return FindingPayload(
        policy="degraded-group", severity="warning", cluster="ml-prod", instance_group="p5-train",
        fingerprint="a0b1c2d3e4f5a6b7c8d9", condition="status-degraded",
        summary="Instance group p5-train is Degraded (15/16 nodes)",
        details={"group_status": "Degraded", "current_count": 15, "target_count": 16},
    )


def unhealthy_node() -> FindingPayload:
    return FindingPayload(
        policy="unhealthy-node", severity="warning", cluster="ml-prod", instance_group="p5-train",
        node="i-0a1b2c3d4e5f60718", fingerprint="9e8d7c6b5a4f3e2d1c0b", condition="unhealthy", origin="event",
        summary="Node i-0a1b2c3d4e5f60718 (p5-train) is Unhealthy",
        details={"health_status": "Unhealthy", "reason": "GPU Xid 79: fallen off the bus", "repair_action": "Replace",
                 "recommendation": "Replace the instance", "node_recovery": "Automatic"},
    )


def firing(reason: str, finding: FindingPayload, *, actions: tuple[str, ...] = (), runbook: str | None = None,
           receivers: tuple[ReceiverRef, ...] = ()) -> NotificationItem:
    return NotificationItem(reason=reason, finding=finding, first_seen=FIRST_SEEN, fired_at=FIRST_SEEN,
                            actions=actions, next_step=next_step(finding, actions), runbook_url=runbook,
                            receivers=receivers)


def resolved(finding: FindingPayload, summary_now: str, **now: object) -> NotificationItem:
    return NotificationItem(reason="resolved", finding=finding, first_seen=FIRST_SEEN, fired_at=FIRST_SEEN,
                            resolved_at=SENT_AT - timedelta(seconds=40),
                            resolved_evidence={"summary": summary_now, **now})


def message(*items: NotificationItem, **fields: object) -> Notification:
    base: dict[str, object] = {"cluster": "ml-prod", "cluster_arn": ARN, "account": "123456789012",
                               "region": "us-west-2", "sent_at": SENT_AT}
    return Notification(**{**base, **fields}, items=items)  # type: ignore[arg-type]


def on_node(item: NotificationItem, workload: Workload) -> NotificationItem:
    """`item` with what runs on its node (issue 23), as the pipeline sets it on firing items."""
    return item.model_copy(update={"workload": workload})


#: an EKS node: a training job without auto-resume, one with it, as eks.workload_of reads them
EKS_WORKLOAD = Workload(
    "hyperpod-i-0a1b2c3d4e5f60718",
    (Job("llama-70b-pretrain", "PyTorchJob", namespace="team-llm", queue="ml-high", priority_class="high",
         on_node=8, total=64, auto_resume=False, labels={"team": "llm"}),
     Job("eval-sweep", "HyperPodPyTorchJob", namespace="team-eval", on_node=1, total=4, auto_resume=True)),
    node_state="health Unhealthy · taints: node.kubernetes.io/unreachable:NoExecute")
#: a Slurm node, as slurm.workload_of reads it (squeue, sinfo -R)
SLURM_WORKLOAD = Workload(
    "ip-10-1-2-3",
    (Job("train-7b (4242)", "slurm", user="alice", account="ml-research", queue="dev", on_node=1, total=16,
         labels={"state": "RUNNING", "nodes": "ip-10-1-2-[3-18]"}),),
    node_state="drained: GPU Xid 79")
UNKNOWN_WORKLOAD = Workload("hyperpod-i-0a1b2c3d4e5f60718",
                            unknown="forbidden: grant the view access entry")

ONCALL = ReceiverRef(name="ml-oncall", mention="<!subteam^S0123ABCD>", route=0)

#: name -> notification: every message kind a channel must render
SAMPLES: dict[str, Notification] = {
    "firing": message(firing("first", rollback(), runbook=RUNBOOK, receivers=(ONCALL, ReceiverRef()))),
    "repeat": message(firing("repeat", degraded())),
    "escalated": message(firing("escalated", rollback())),
    "resolved": message(resolved(degraded(), "Instance group p5-train is back to InService, 16/16 nodes",
                                 group_status="InService", current_count=16, target_count=16)),
    "remediated": message(firing("remediated", unhealthy_node(),
                                 actions=("would replace i-0a1b2c3d4e5f60718 (dry run)",))),
    "grouped": message(firing("first", rollback(), runbook=RUNBOOK), firing("first", unhealthy_node()),
                       resolved(degraded(), "Instance group p5-train is back to InService, 16/16 nodes")),
    "test": message(firing("first", degraded()), test=True, receiver="ml-oncall"),
    # issue 23: a node alert with what runs on the node (firing items only)
    "workload-eks": message(on_node(firing("first", unhealthy_node()), EKS_WORKLOAD)),
    "workload-slurm": message(on_node(firing("repeat", unhealthy_node()), SLURM_WORKLOAD)),
    "workload-unknown": message(on_node(firing("first", unhealthy_node()), UNKNOWN_WORKLOAD)),
}
