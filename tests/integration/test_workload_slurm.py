"""The Slurm workload reader (workload/slurm.py) on moto in server mode plus the SSM stand-in
(hyperpod_guard/local/ssm_standin.py): moto's GetCommandInvocation has no real output, so the stand-in answers
SendCommand, GetCommandInvocation and CancelCommand with what a test put for the target, records the commands
sent, and validates every request and answer against botocore's SSM model. The reader's client is the
runtime's own (aws_clients.client("ssm")), so botocore serializes and parses exactly as with AWS. Time is an
injected clock: the tests assert what was sent and read, never how long it took."""

from __future__ import annotations

import pytest

from hyperpod_guard import aws_clients
from hyperpod_guard.local import ssm_standin as standin
from hyperpod_guard.workload.model import Job, Workload
from hyperpod_guard.workload.slurm import read_slurm_workload, workload_of

CLUSTER_ID = "abc123def456"
TARGET = f"sagemaker-cluster:{CLUSTER_ID}_controller-machine-i-0123456789abcdef0"
HOST = "ip-10-1-0-16"
COMMANDS = ["set -e",
            "squeue -w ip-10-1-0-16 -h -o '%i|%j|%u|%a|%P|%T|%D|%N'",
            "echo '--- hyperpod-guard sinfo ---'",
            "sinfo -R -h -n ip-10-1-0-16 -o '%T|%E'"]
# recorded on a HyperPod Slurm controller: two jobs with work on the node, the node drained with a reason
SQUEUE = ("4211|llama-70b-pretrain|alice|research|dev|RUNNING|16|ip-10-1-0-[16-31]\n"
          "4230|eval|nightly|bob|platform|batch|RUNNING|1|ip-10-1-0-16\n")
SINFO = "drained|Kill task failed [root@2026-11-30T04:10:02]\n"
STDOUT = SQUEUE + "--- hyperpod-guard sinfo ---\n" + SINFO


@pytest.fixture(autouse=True)
def served(aws: str) -> None:
    standin.serve()


class Clock:
    """A clock that moves only when the reader sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds


def read(host: str = HOST, clock: Clock | None = None) -> Workload:
    clock = clock or Clock()
    return workload_of(aws_clients.client("ssm"), cluster_id=CLUSTER_ID, controller_group="controller-machine",
                       controller_instance="i-0123456789abcdef0", host=host, timeout=10, poll=1,
                       clock=clock, sleep=clock.sleep)


def test_two_jobs_on_a_drained_node() -> None:
    standin.put_output(TARGET, STDOUT)

    workload = read()

    assert workload == Workload(HOST, (
        Job("llama-70b-pretrain (4211)", "slurm", user="alice", account="research", queue="dev", on_node=1,
            total=16, labels={"state": "RUNNING", "nodes": "ip-10-1-0-[16-31]"}),
        Job("eval|nightly (4230)", "slurm", user="bob", account="platform", queue="batch", on_node=1, total=1,
            labels={"state": "RUNNING", "nodes": "ip-10-1-0-16"}),
    ), node_state="drained: Kill task failed [root@2026-11-30T04:10:02]")
    assert standin.rejections() == []


def test_the_command_sent_is_exactly_the_read_only_one() -> None:
    standin.put_output(TARGET, STDOUT)

    read()

    [request] = standin.sent()
    assert request["DocumentName"] == "AWS-RunShellScript"
    assert request["Targets"] == [{"Key": "InstanceIds", "Values": [TARGET]}]
    assert request["Parameters"]["commands"] == COMMANDS
    assert request["TimeoutSeconds"] == 30
    assert request["Comment"] == f"hyperpod-guard: read-only workload of {HOST}"
    # only squeue and sinfo run; nothing that changes Slurm's state (scontrol, scancel, sbatch...)
    programs = {line.split()[0] for line in COMMANDS}
    assert programs == {"set", "squeue", "echo", "sinfo"}


def test_a_node_without_jobs_or_reason() -> None:
    standin.put_output(TARGET, "--- hyperpod-guard sinfo ---\n")

    assert read() == Workload(HOST)


@pytest.mark.parametrize("host", ["ip-10-1-0-16; scancel -u alice", "$(reboot)", "ip-10-1-0-16 -o x", "", "-w"])
def test_a_bad_host_is_refused_before_any_call(host: str) -> None:
    standin.put_output(TARGET, STDOUT)

    workload = read(host)

    assert workload.jobs == () and workload.unknown is not None and workload.unknown.startswith("not a hostname")
    assert standin.sent() == []


def test_access_denied_is_unknown() -> None:
    standin.put_output(TARGET, STDOUT)
    standin.deny("SendCommand")

    workload = read()

    assert workload.jobs == ()
    assert workload.unknown == "SSM SendCommand: AccessDeniedException: not authorized to perform: ssm:SendCommand"


def test_an_unknown_target_is_unknown() -> None:
    workload = read()

    assert workload.unknown is not None and workload.unknown.startswith("SSM SendCommand: InvalidInstanceId")


def test_a_failed_command_is_unknown_with_its_stderr() -> None:
    standin.put_output(TARGET, "", "squeue: error: Invalid node name specified: ip-10-1-0-16\n", "Failed")

    workload = read()

    assert workload.unknown == (f"command Failed on {TARGET} (exit 1): "
                                "squeue: error: Invalid node name specified: ip-10-1-0-16")


def test_a_command_that_never_finishes_is_unknown_after_the_timeout_and_cancelled() -> None:
    standin.put_output(TARGET, status="InProgress")
    clock = Clock()

    workload = read(clock=clock)

    assert workload.unknown == f"no answer from {TARGET} within 10s (last status InProgress)"
    assert clock.sleeps == 10  # poll 1 within timeout 10
    [cancel] = standin.cancelled()
    assert cancel["InstanceIds"] == [TARGET]
    assert cancel["CommandId"] in standin.state().commands
    assert standin.rejections() == []


def test_output_that_is_not_squeue_and_sinfo_is_unknown() -> None:
    standin.put_output(TARGET, "slurm_load_jobs error: Unable to contact slurm controller\n")

    assert read().unknown == ("unexpected output (no sinfo part): "
                              "'slurm_load_jobs error: Unable to contact slurm controller\\n'")


def test_the_reader_raises_what_workload_of_turns_into_unknown() -> None:
    standin.put_output(TARGET, "", "boom", "Failed")
    clock = Clock()

    with pytest.raises(Exception, match="command Failed"):
        read_slurm_workload(aws_clients.client("ssm"), cluster_id=CLUSTER_ID, controller_group="controller-machine",
                            controller_instance="i-0123456789abcdef0", host=HOST, timeout=10, clock=clock,
                            sleep=clock.sleep)


def test_the_stand_in_refuses_what_the_model_does_not_allow() -> None:
    from botocore.exceptions import ClientError

    standin.put_output(TARGET, STDOUT)
    ssm = aws_clients.client("ssm")

    with pytest.raises(ClientError, match="StandInModelMismatch"):  # Comment's max is 100 (botocore sends it)
        ssm.send_command(DocumentName="AWS-RunShellScript", Targets=[{"Key": "InstanceIds", "Values": [TARGET]}],
                         Comment="x" * 101, Parameters={"commands": ["true"]})

    [rejection] = standin.rejections()
    assert "Comment" in rejection and "max 100" in rejection
    assert standin.sent() == []
