"""Workload.for_message: what a message carries of a node's workload stays small whatever runs on the node."""

from __future__ import annotations

from hyperpod_guard.notify.message import NotificationItem
from hyperpod_guard.workload.model import MESSAGE_JOBS, MESSAGE_LABELS, Job, Workload


def job(index: int, on_node: int, labels: int = 0) -> Job:
    return Job(name=f"job-{index:03}", kind="PyTorchJob", namespace="team", on_node=on_node, total=64,
               labels={f"label-{n}": "x" * 60 for n in range(labels)})


def test_a_node_with_many_jobs_keeps_those_with_most_work_on_it() -> None:
    jobs = tuple(job(i, on_node=1 + (i % 7)) for i in range(60))
    carried = Workload("hyperpod-i-0abc", jobs).for_message()
    assert len(carried.jobs) == MESSAGE_JOBS and carried.more == 60 - MESSAGE_JOBS
    assert min(j.on_node for j in carried.jobs) >= max(j.on_node for j in jobs if j not in carried.jobs)
    assert [j.name for j in carried.jobs] == sorted(j.name for j in carried.jobs)  # the reader's order kept


def test_labels_are_cut_and_a_small_workload_is_unchanged() -> None:
    many = Workload("n", (job(1, 2, labels=40),)).for_message()
    assert len(many.jobs[0].labels) == MESSAGE_LABELS and many.more == 0
    small = Workload("n", (job(1, 2, labels=3), job(2, 1)), node_state="Ready")
    assert small.for_message() == small


def test_the_message_carries_it_within_its_item_budget() -> None:
    """Each item's texts stay within a few kilobytes (notify/message.py's one-item-always-fits argument)."""
    jobs = tuple(job(i, on_node=2, labels=40) for i in range(500))
    item_json = NotificationItem.model_validate({
        "reason": "first", "finding": {"policy": "unhealthy-node", "severity": "critical", "cluster": "c",
                                       "condition": "unhealthy", "summary": "s", "fingerprint": "f"},
        "workload": Workload("n", jobs).for_message(),
    }).model_dump_json()
    assert len(item_json) < 20_000
