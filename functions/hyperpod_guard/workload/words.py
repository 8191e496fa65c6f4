"""A node's workload in words (issue 23): the one place that phrases it for people. Every renderer (Slack
webhook and app mode, email, Chatbot) shows the same lines and the same hint, each with its own markup.

Plain text, one line each, bounded: a Kubernetes name may be 253 characters and a Slurm job name anything,
so names are cut in the middle (their start and their end say the most: `llama-70b-…-20261130-7f9c`), and each
line is cut to LINE_LIMIT. Unknown figures are said to be unknown ("size unknown", "auto-resume unknown"),
never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .model import Job, Workload

#: one line (a job, the node state, the unknown's why); the renderers escape it and may cut further
LINE_LIMIT = 300
#: a name (job, namespace, queue, user) before it is cut in the middle
NAME_LIMIT = 80
#: the hint: a sentence that fits a Chatbot next step (chatbot.NEXT_STEP_LIMIT)
HINT_LIMIT = 300
SLURM = "slurm"
#: controllers whose pods Kubernetes itself recreates elsewhere: HyperPod's auto-resume says nothing of them
RESCHEDULED = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})
ELLIPSIS = "…"
#: the job id at the end of a Slurm job's name ("train-7b (4242)", an array task "(4242_7)")
_SLURM_ID = re.compile(r"\(([0-9][0-9_\[\]+-]*)\)$")
#: what `sinfo -R` says of a node Slurm will not schedule on
_SLURM_OUT = ("down", "drain", "fail", "maint", "reboot")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _clip(text: str, limit: int) -> str:
    """At most `limit` characters, ending in "…" when cut."""
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def name(text: str, limit: int = NAME_LIMIT) -> str:
    """A name in at most `limit` characters, cut in the middle: the start and the end (a run's date, a job
    id) are what tell two runs apart."""
    text = _one_line(text)
    if len(text) <= limit:
        return text
    tail = (limit - 1) // 3
    return text[: limit - 1 - tail] + ELLIPSIS + text[len(text) - tail:]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _share(job: Job, unit: str, where: str = " on this node") -> str:
    """How much of the job is on this node: "8 of 64 pods on this node", "all 4 pods …", "size unknown"."""
    if job.total is None or job.total < job.on_node or job.total <= 0:
        return f"{_plural(job.on_node, unit)}{where}, size unknown"
    if job.total == 1:
        return f"its only {unit} is this one" if unit == "node" else f"its only {unit} is on this node"
    if job.on_node == job.total:
        return f"all {job.total} {unit}s{where}"
    return f"{job.on_node} of {job.total} {unit}s{where}"


def _restarts(job: Job) -> str | None:
    """What the job does once the node goes: HyperPod's auto-resume on/off/unknown, Kubernetes rescheduling."""
    if job.kind in RESCHEDULED:
        return "Kubernetes reschedules its pods"
    if job.auto_resume is None:
        return None if job.kind == SLURM else "auto-resume unknown"
    return "auto-resume on" if job.auto_resume else "auto-resume off"


def job_line(job: Job) -> str:
    """One job in a line: "PyTorchJob llama-70b in team-llm (queue ml-high, priority high): 8 of 64 pods on this
    node, auto-resume off"; "Slurm job train-7b (4242) of alice, account ml-research, partition dev: 1 of 16
    nodes"."""
    if job.kind == SLURM:
        who = f" of {name(job.user, 40)}" if job.user else ""
        where = [f"account {name(job.account, 40)}"] if job.account else []
        if job.queue:
            where.append(f"partition {name(job.queue, 40)}")
        state = job.labels.get("state")
        if state and state.upper() != "RUNNING":
            where.append(name(state.lower(), 20))
        head = f"Slurm job {name(job.name)}{who}" + (f", {', '.join(where)}" if where else "")
        facts = [_share(job, "node", "")]
    else:
        place = f" in {name(job.namespace, 40)}" if job.namespace else ""
        extra = [f"queue {name(job.queue, 40)}"] if job.queue else []
        if job.priority_class:
            extra.append(f"priority {name(job.priority_class, 40)}")
        head = f"{name(job.kind, 30)} {name(job.name)}{place}" + (f" ({', '.join(extra)})" if extra else "")
        facts = [_share(job, "pod")]
    restarts = _restarts(job)
    if restarts:
        facts.append(restarts)
    said = ", ".join(facts)  # the figures and auto-resume are what the line is for: the names give way
    return f"{_clip(head, LINE_LIMIT - len(said) - 2)}: {said}"


def _risk(job: Job) -> int:
    """0: will not come back by itself; 1: nobody knows; 2: comes back (auto-resume, rescheduled)."""
    if job.kind in RESCHEDULED or job.auto_resume:
        return 2
    return 1 if job.auto_resume is None else 0


def ordered(jobs: Iterable[Job]) -> list[Job]:
    """The jobs an on-call should read first first: those that will not come back by themselves, then the
    unknown, then the rest; the most pods on this node first within each."""
    return sorted(jobs, key=lambda job: (_risk(job), -job.on_node))


def _names(jobs: list[Job], one: str, many: str) -> tuple[str, str]:
    """("llama-70b", one) or ("llama-70b and 2 more jobs", many): the first job by name, the rest counted."""
    first = name(jobs[0].name, 60)
    if len(jobs) == 1:
        return first, one
    return f"{first} and {_plural(len(jobs) - 1, 'more job')}", many


def hint(workload: Workload) -> str | None:
    """The most useful next thing about the jobs, for the on-call; None when there is nothing to say (the
    workload is unknown, or nothing runs on the node)."""
    if workload.unknown is not None or not workload.jobs:
        return None
    jobs = ordered(workload.jobs)
    slurm = [job for job in jobs if job.kind == SLURM and job.auto_resume is None]
    off = [job for job in jobs if _risk(job) == 0]
    unknown = [job for job in jobs if _risk(job) == 1 and job.kind != SLURM]
    if off:
        who, verb = _names(off, "will not restart by itself", "will not restart by themselves")
        it = "it" if len(off) == 1 else "them"
        text = f"auto-resume is off: {who} {verb}; restart {it} or turn on auto-resume"
    elif slurm:
        text = _slurm_hint(slurm, workload.node_state)
    elif unknown:
        who, _ = _names(unknown, "", "")
        text = f"auto-resume of {who} is unknown: check that it restarts once the node is replaced"
    else:
        resumed = [job for job in jobs if job.kind not in RESCHEDULED]
        if not resumed:
            return _clip("Kubernetes reschedules the pods on this node elsewhere once it is drained", HINT_LIMIT)
        who, _ = _names(resumed, "", "")
        checkpoint = "its last checkpoint" if len(resumed) == 1 else "their last checkpoints"
        text = f"HyperPod resumes {who} from {checkpoint} once the node is replaced"
    return _clip(text, HINT_LIMIT)


def _slurm_hint(jobs: list[Job], node_state: str | None) -> str:
    """Slurm: whether a job comes back depends on how it was started (srun --auto-resume=1), which squeue does
    not say; say how to bring it back by hand."""
    who, verb = _names(jobs, "resumes by itself", "resume by themselves")
    found = _SLURM_ID.search(jobs[0].name) if len(jobs) == 1 else None
    requeue = f"scontrol requeue {found.group(1)}" if found else "scontrol requeue"
    state = (node_state or "").partition(":")[0].strip().lower().rstrip("*~#!%$@^-+")
    lead = f"Slurm has the node {name(state, 20)}: " if state.startswith(_SLURM_OUT) else ""
    return (f"{lead}{who} {verb} only if started with srun --auto-resume=1; "
            f"otherwise requeue {'it' if len(jobs) == 1 else 'them'} ({requeue}) once the node is replaced")


def fitting(render: Callable[[int], str], jobs: int, limit: int) -> str:
    """`render(n)` (a workload listing n jobs, the rest counted) with the most jobs, `jobs` at most, that fits
    `limit` characters; listing one job if none does (the caller cuts it)."""
    text = render(jobs)
    while len(text) > limit and jobs > 1:
        jobs -= 1
        text = render(jobs)
    return text


def lines(workload: Workload, limit: int = 5) -> list[str]:
    """The workload as lines: why it is unknown; or the jobs (at most `limit`, then how many more, counting those
    the message left out), "no jobs on this node" when none; then the node's state as the orchestrator sees it,
    if it said."""
    if workload.unknown is not None:
        return [_clip(f"workload unknown: {workload.unknown or 'no reason given'}", LINE_LIMIT)]
    jobs = ordered(workload.jobs)
    shown = jobs[: max(limit, 1)] if len(jobs) > limit else jobs
    hidden = len(jobs) - len(shown) + workload.more  # `more`: left out of the message already (for_message)
    out = [job_line(job) for job in shown] or ([] if hidden else ["no jobs on this node"])
    if hidden:
        out.append(f"and {_plural(hidden, 'more job')}")
    if workload.node_state:
        out.append(_clip(f"node state: {workload.node_state}", LINE_LIMIT))
    return out
