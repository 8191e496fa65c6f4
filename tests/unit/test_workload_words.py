"""A node's workload in words (workload/words.py, issue 23): each phrasing, what is unknown said so, the hint
an on-call reads next to the next step, and every text bounded whatever the names hold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperpod_guard.workload import words
from hyperpod_guard.workload.model import Job, Workload
from hyperpod_guard.workload.words import hint, job_line, lines

LLAMA = Job("llama-70b", "PyTorchJob", namespace="team-llm", queue="ml-high", priority_class="high", on_node=8,
            total=64, auto_resume=False)
RESUMED = Job("gpt-7b", "HyperPodPyTorchJob", namespace="team-llm", on_node=4, total=4, auto_resume=True)
SLURM = Job("train-7b (4242)", "slurm", user="alice", account="ml-research", queue="dev", on_node=1, total=16,
            labels={"state": "RUNNING", "nodes": "ip-10-1-2-[3-18]"})


# -- job_line ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("job", "line"), [
    (LLAMA, ("PyTorchJob llama-70b in team-llm (queue ml-high, priority high): 8 of 64 pods on this node, "
            "auto-resume off")),
    (RESUMED, "HyperPodPyTorchJob gpt-7b in team-llm: all 4 pods on this node, auto-resume on"),
    (Job("x", "PyTorchJob", namespace="ns", on_node=2, total=None, auto_resume=None),
     "PyTorchJob x in ns: 2 pods on this node, size unknown, auto-resume unknown"),
    (Job("x", "Job", namespace="ns", queue="q", on_node=1, total=8, auto_resume=None),
     "Job x in ns (queue q): 1 of 8 pods on this node, auto-resume unknown"),
    (Job("web-0", "Pod", namespace="default", on_node=1, total=1, auto_resume=False),
     "Pod web-0 in default: its only pod is on this node, auto-resume off"),
    (Job("api", "Deployment", namespace="svc", priority_class="low", on_node=1, total=3, auto_resume=False),
     "Deployment api in svc (priority low): 1 of 3 pods on this node, Kubernetes reschedules its pods"),
    # a job spec that asks for fewer pods than the node holds of it (scaled down): its size is not known
    (Job("x", "ReplicaSet", namespace="ns", on_node=2, total=0), ("ReplicaSet x in ns: 2 pods on this node, "
                                                                 "size unknown, Kubernetes reschedules its pods")),
    (Job("x", "MPIJob", on_node=1, total=2, auto_resume=True), "MPIJob x: 1 of 2 pods on this node, auto-resume on"),
])
def test_an_eks_job_in_a_line(job: Job, line: str) -> None:
    assert job_line(job) == line


@pytest.mark.parametrize(("job", "line"), [
    (SLURM, "Slurm job train-7b (4242) of alice, account ml-research, partition dev: 1 of 16 nodes"),
    (Job("a (7)", "slurm", on_node=1, total=1, labels={"state": "COMPLETING"}),
     "Slurm job a (7), completing: its only node is this one"),
    (Job("a (7)", "slurm", user="bob", on_node=1, total=None), "Slurm job a (7) of bob: 1 node, size unknown"),
    # auto-resume is not read from Slurm: said only when known
    (Job("a (7)", "slurm", account="acct", on_node=1, total=4, auto_resume=True),
     "Slurm job a (7), account acct: 1 of 4 nodes, auto-resume on"),
])
def test_a_slurm_job_in_a_line(job: Job, line: str) -> None:
    assert job_line(job) == line


def test_long_names_are_cut_in_the_middle_and_the_line_is_bounded() -> None:
    long = "llama-70b-pretrain-" + "x" * 220 + "-20261130-7f9c"  # 253 characters, as Kubernetes allows
    job = Job(long, "HyperPodPyTorchJob", namespace="n" * 63, queue="q" * 253, priority_class="p" * 253,
              on_node=8, total=64, auto_resume=False)
    line = job_line(job)
    assert len(line) <= words.LINE_LIMIT
    assert line.endswith("): 8 of 64 pods on this node, auto-resume off")  # the figures are never cut
    assert job_line(Job("y" * 253, "x" * 300, namespace="n" * 63, on_node=1, total=2, auto_resume=False)).endswith(
        "n: 1 of 2 pods on this node, auto-resume off")
    cut = words.name(long)
    assert len(cut) == words.NAME_LIMIT and cut.startswith("llama-70b-pretrain-") and cut.endswith("-20261130-7f9c")
    assert cut in line and "…" in cut


def test_names_become_one_line() -> None:
    job = Job("a\nb\tc  d", "slurm", user="eve\r\n", on_node=1, total=2)
    assert job_line(job) == "Slurm job a b c d of eve: 1 of 2 nodes"


@given(st.text(max_size=600), st.text(max_size=300), st.integers(0, 10_000), st.none() | st.integers(0, 10_000),
       st.sampled_from(["PyTorchJob", "slurm", "Deployment", "Pod", "x" * 300]), st.none() | st.booleans())
def test_every_line_and_hint_is_one_bounded_line(name: str, other: str, on_node: int, total: int | None, kind: str,
                                                 resume: bool | None) -> None:
    job = Job(name, kind, namespace=other, user=other, account=other, queue=other, priority_class=other,
              on_node=on_node, total=total, auto_resume=resume, labels={"state": other})
    workload = Workload("n", (job,) * 3, node_state=other * 3)
    said = [*lines(workload), hint(workload) or ""]
    assert all(len(text) <= words.LINE_LIMIT and "\n" not in text and "\r" not in text for text in said)


# -- lines --------------------------------------------------------------------------------------------------------

def test_unknown_says_why() -> None:
    assert lines(Workload("n", unknown="timeout: no answer within 3s")) == [
        "workload unknown: timeout: no answer within 3s"]
    assert lines(Workload("n", unknown="x" * 5000))[0].endswith("…")
    assert len(lines(Workload("n", unknown="x" * 5000))[0]) == words.LINE_LIMIT


def test_no_jobs_is_a_line_and_the_node_state_follows() -> None:
    assert lines(Workload("n")) == ["no jobs on this node"]
    assert lines(Workload("n", node_state="drained: GPU Xid 79")) == ["no jobs on this node",
                                                                      "node state: drained: GPU Xid 79"]


def test_jobs_at_most_limit_then_how_many_more_then_the_node_state() -> None:
    jobs = tuple(Job(f"j{n}", "PyTorchJob", namespace="ns", on_node=1, total=2, auto_resume=True) for n in range(8))
    said = lines(Workload("n", jobs, node_state="health Unhealthy"), limit=5)
    assert len(said) == 7 and said[5] == "and 3 more jobs" and said[6] == "node state: health Unhealthy"
    assert lines(Workload("n", jobs[:6]), limit=5)[-1] == "and 1 more job"
    assert len(lines(Workload("n", jobs[:5]), limit=5)) == 5  # all fit: nothing counted
    # jobs the message left out (Workload.for_message) are counted too
    assert lines(Workload("n", jobs[:2], more=30), limit=5)[-1] == "and 30 more jobs"
    assert lines(Workload("n", jobs, more=30), limit=5)[5] == "and 33 more jobs"


def test_the_jobs_that_will_not_come_back_come_first() -> None:
    unknown = Job("u", "PyTorchJob", on_node=1, total=2)
    said = lines(Workload("n", (RESUMED, unknown, LLAMA)), limit=2)
    assert said == [job_line(LLAMA), job_line(unknown), "and 1 more job"]


# -- hint ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("jobs", "node_state", "said"), [
    ((LLAMA,), None, "auto-resume is off: llama-70b will not restart by itself; restart it or turn on auto-resume"),
    ((RESUMED, LLAMA, LLAMA), None, ("auto-resume is off: llama-70b and 1 more job will not restart by themselves"
                                    "; restart them or turn on auto-resume")),
    ((RESUMED,), None, "HyperPod resumes gpt-7b from its last checkpoint once the node is replaced"),
    ((RESUMED, RESUMED, RESUMED), None,
     "HyperPod resumes gpt-7b and 2 more jobs from their last checkpoints once the node is replaced"),
    ((Job("api", "Deployment", on_node=1, total=3, auto_resume=False), RESUMED), None,
     "HyperPod resumes gpt-7b from its last checkpoint once the node is replaced"),
    ((Job("api", "Deployment", on_node=1, total=3, auto_resume=False),), None,
     "Kubernetes reschedules the pods on this node elsewhere once it is drained"),
    ((Job("x", "PyTorchJob", on_node=1, total=2), RESUMED), None,
     "auto-resume of x is unknown: check that it restarts once the node is replaced"),
    ((SLURM,), "drained: GPU Xid 79", ("Slurm has the node drained: train-7b (4242) resumes by itself only if started "
                                      "with srun --auto-resume=1; otherwise requeue it (scontrol requeue 4242) once "
                                      "the node is replaced")),
    ((SLURM,), "down*: Not responding", ("Slurm has the node down: train-7b (4242) resumes by itself only if started "
                                        "with srun --auto-resume=1; otherwise requeue it (scontrol requeue 4242) once "
                                        "the node is replaced")),
    ((SLURM, SLURM), "mixed", ("train-7b (4242) and 1 more job resume by themselves only if started with srun "
                              "--auto-resume=1; otherwise requeue them (scontrol requeue) once the node is replaced")),
])
def test_the_hint_says_the_most_useful_next_thing(jobs: tuple[Job, ...], node_state: str | None, said: str) -> None:
    assert hint(Workload("n", jobs, node_state=node_state)) == said


def test_no_hint_without_jobs_or_when_unknown() -> None:
    assert hint(Workload("n")) is None
    assert hint(Workload("n", node_state="drained: x")) is None
    assert hint(Workload("n", (LLAMA,), unknown="forbidden")) is None


def test_the_hint_is_bounded() -> None:
    job = Job("z" * 253, "PyTorchJob", on_node=1, total=2, auto_resume=False)
    said = hint(Workload("n", (job,)))
    assert said is not None and len(said) <= words.HINT_LIMIT and "z" * 40 in said and "…" in said
