"""The Slurm workload reader's pure parts (workload/slurm.py): the command lines for a host, the hostname check
that keeps anything else out of the shell, and the parsing of squeue's and sinfo's output. The SSM round trip
is in tests/integration/test_workload_slurm.py."""

from __future__ import annotations

import pytest

from hyperpod_guard.workload.model import Job, Workload
from hyperpod_guard.workload.slurm import MARKER, SlurmUnreadable, commands, parse, ssm_target


def test_ssm_target() -> None:
    assert (ssm_target("abc123def456", "controller-machine", "i-0123456789abcdef0")
            == "sagemaker-cluster:abc123def456_controller-machine-i-0123456789abcdef0")


def test_commands_are_read_only_and_name_the_host() -> None:
    assert commands("ip-10-1-0-16.ec2.internal") == [
        "set -e",
        "squeue -w ip-10-1-0-16.ec2.internal -h -o '%i|%j|%u|%a|%P|%T|%D|%N'",
        f"echo '{MARKER}'",
        "sinfo -R -h -n ip-10-1-0-16.ec2.internal -o '%T|%E'",
    ]


@pytest.mark.parametrize("host", [
    "", "-w", "ip-10-1-0-16;reboot", "ip 10", "$(id)", "`id`", "ip-10-1-0-16\nreboot", "a..b", "-leading",
    "trailing-", "x" * 64, "a." * 127 + "a", "ip_10", "ip-10-1-0-16'",
])
def test_a_host_that_is_not_a_hostname_is_refused(host: str) -> None:
    with pytest.raises(SlurmUnreadable, match="not a hostname"):
        commands(host)


@pytest.mark.parametrize("host", ["ip-10-1-0-16", "node001", "gpu-st-p5-1.cluster.local", "A1", "x" * 63])
def test_hostnames_are_taken(host: str) -> None:
    assert f"squeue -w {host} " in commands(host)[1]


@pytest.mark.parametrize("stdout, expected", [
    (f"{MARKER}\n", Workload("n1")),
    ("7|train|alice|res|dev|RUNNING|4|n[1-4]\n" + MARKER + "\n",
     Workload("n1", (Job("train (7)", "slurm", user="alice", account="res", queue="dev", on_node=1, total=4,
                         labels={"state": "RUNNING", "nodes": "n[1-4]"}),))),
    # a name with '|' in it; an empty account
    ("8|a|b|carol||cpu|PENDING|2|\n" + MARKER + "\n",
     Workload("n1", (Job("a|b (8)", "slurm", user="carol", queue="cpu", on_node=1, total=2,
                         labels={"state": "PENDING", "nodes": ""}),))),
    (f"{MARKER}\ndrained|Kill task failed\n", Workload("n1", node_state="drained: Kill task failed")),
    (f"{MARKER}\ndown*|Not responding\nfail|\n", Workload("n1", node_state="down*: Not responding; fail")),
])
def test_parse(stdout: str, expected: Workload) -> None:
    assert parse("n1", stdout) == expected


@pytest.mark.parametrize("stdout, why", [
    ("", "no sinfo part"),
    ("7|train|alice\n" + MARKER + "\n", "unexpected squeue line"),
    ("7|train|alice|res|dev|RUNNING|many|n1\n" + MARKER + "\n", "unexpected squeue line"),
])
def test_parse_refuses_other_output(stdout: str, why: str) -> None:
    with pytest.raises(SlurmUnreadable, match=why):
        parse("n1", stdout)
