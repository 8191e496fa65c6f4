"""What runs on a node (issue 23): the jobs an alert about the node hits, as the EKS and Slurm readers find
them. Plain data; `Workload.unknown` says why nothing could be read (the alert goes out regardless)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

#: a message carries at most this many jobs per node, each with at most this many labels (Workload.for_message)
MESSAGE_JOBS = 20
MESSAGE_LABELS = 10


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
    #: jobs on the node left out of `jobs` to keep a message small (for_message)
    more: int = 0

    def for_message(self) -> Workload:
        """This workload as a message carries it: the MESSAGE_JOBS jobs with most work on the node, each with at
        most MESSAGE_LABELS labels (routing has seen them all), so that one item always fits an SNS message."""
        kept = sorted(self.jobs, key=lambda job: -job.on_node)[:MESSAGE_JOBS]
        trimmed = tuple(replace(job, labels=dict(list(job.labels.items())[:MESSAGE_LABELS])) for job in self.jobs
                        if job in kept)
        return replace(self, jobs=trimmed, more=self.more + len(self.jobs) - len(trimmed))
