"""What runs on a node (issue 23): the jobs an alert about the node hits, as the EKS and Slurm readers find
them. Plain data; `Workload.unknown` says why nothing could be read (the alert goes out regardless)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Job:
    """One job with work on the node."""

    name: str
    #: PyTorchJob, HyperPodPyTorchJob, Job, Workload (Kueue), Pod (no owner), or "slurm"
    kind: str
    #: EKS: the namespace; Slurm: None
    namespace: str | None = None
    #: Slurm: the job's user and account; EKS: None
    user: str | None = None
    account: str | None = None
    #: Kueue's LocalQueue, or the Slurm partition
    queue: str | None = None
    priority_class: str | None = None
    #: pods (EKS) or tasks/nodes (Slurm) of the job on this node, and in all (None: unknown, e.g. the job
    #: could not be read)
    on_node: int = 0
    total: int | None = None
    #: whether the job restarts by itself (HyperPod's auto-resume); None: unknown
    auto_resume: bool | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    """The work on one node: its jobs, what the orchestrator says of the node, or why it is unknown."""

    node: str
    jobs: tuple[Job, ...] = ()
    #: EKS: the node's HyperPod health label and taints in a line; Slurm: the node's state and reason
    node_state: str | None = None
    #: None: read; else "workload unknown: <why>" material (API unreachable, 403, timeout, no such node)
    unknown: str | None = None
