"""SSM Run Command as the Slurm workload reader (workload/slurm.py) uses it, answered in moto's server.

moto 5.2.5 has SendCommand, but its GetCommandInvocation answers every command "Success" with an empty
output (and only for EC2 instances it knows), and it has no CancelCommand. `serve()` replaces these three
actions of moto's SSM responses in this process (its server runs here, as sagemaker_standin.py's do), so the
code under test reaches them through AWS_ENDPOINT_URL with its own client: botocore serializes the request
and parses the answer exactly as with AWS. moto is then only the HTTP and protocol layer for these three.

A test puts what the node answers with `put_output(target, stdout, stderr, status, command=...)`: per
target, optionally only for one command text (the shell lines joined by newlines). A target nobody put
anything for answers SendCommand InvalidInstanceId (the node is not a managed instance). Status "InProgress"
never finishes (a hung controller). `sent()` gives every SendCommand request as sent (to assert the exact,
read-only command line); `cancelled()` the CancelCommand requests; `deny(operation)` makes an operation
answer AccessDeniedException.

Validated against botocore's SSM model with sagemaker_standin.problems (ParamValidator, then enums, max
and patterns): every request and every answer; a mismatch answers the error StandInModelMismatch (400) and
is kept in `rejections()`. Deviation, on purpose: an InstanceId may be a HyperPod SSM target
(`sagemaker-cluster:<cluster-id>_<group>-<instance-id>`), which the model's pattern (`i-...|mi-...`) does not
allow; whether AWS's Run Command accepts it there is not verified here (see workload/slurm.py).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .sagemaker_standin import ACCOUNT, MISMATCH, REGION, problems

#: the actions this stand-in answers in place of moto's
OPERATIONS = ("SendCommand", "GetCommandInvocation", "CancelCommand")
STATUSES = ("Success", "Failed", "TimedOut", "Cancelled", "InProgress")
_HYPERPOD_TARGET = re.compile(r"sagemaker-cluster:[a-z0-9]{1,64}_[A-Za-z0-9\-]{1,63}-i-[0-9a-f]{8,17}")
#: an InstanceId the model accepts, validated in place of a HyperPod target
_MODEL_INSTANCE_ID = "i-0123456789abcdef0"


@dataclass(frozen=True)
class Output:
    """What the node answers a command: GetCommandInvocation's Status, ResponseCode and contents."""

    stdout: str = ""
    stderr: str = ""
    status: str = "Success"
    response_code: int = 0


@dataclass
class SsmState:
    """Kept on moto's SSM backend, so moto's reset between tests forgets it."""

    #: (target, command text or None) -> Output
    outputs: dict[tuple[str, str | None], Output] = field(default_factory=dict)
    #: CommandId -> (the SendCommand request, its targets)
    commands: dict[str, tuple[dict[str, Any], list[str]]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[dict[str, Any]] = field(default_factory=list)
    denied: set[str] = field(default_factory=set)
    rejected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_ATTRIBUTE = "_hyperpod_guard_ssm_standin"


def state(*, region: str = REGION, account: str = ACCOUNT) -> SsmState:
    from moto.ssm.models import ssm_backends

    backend = ssm_backends[account][region]
    found = getattr(backend, _ATTRIBUTE, None)
    if found is None:
        found = SsmState()
        setattr(backend, _ATTRIBUTE, found)
    return found


@functools.cache
def _model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("ssm")


# -- put helpers and records (tests) -------------------------------------------------------------------


def put_output(target: str, stdout: str = "", stderr: str = "", status: str = "Success", *,
               command: str | None = None, response_code: int | None = None, region: str = REGION,
               account: str = ACCOUNT) -> None:
    """What `target` answers (every command, or only `command`: the shell lines joined by newlines)."""
    if status not in STATUSES:
        raise AssertionError(f"{status!r} is not one of {STATUSES}")
    code = response_code if response_code is not None else (0 if status == "Success" else 1)
    standin = state(region=region, account=account)
    with standin.lock:
        standin.outputs[(target, command)] = Output(stdout, stderr, status, code)


def deny(*operations: str, region: str = REGION, account: str = ACCOUNT) -> None:
    standin = state(region=region, account=account)
    with standin.lock:
        standin.denied.update(operations)


def sent(*, region: str = REGION, account: str = ACCOUNT) -> list[dict[str, Any]]:
    """Every SendCommand request (the JSON body as sent), in order."""
    return copy.deepcopy(state(region=region, account=account).sent)


def cancelled(*, region: str = REGION, account: str = ACCOUNT) -> list[dict[str, Any]]:
    return copy.deepcopy(state(region=region, account=account).cancelled)


def rejections(*, region: str = REGION, account: str = ACCOUNT) -> list[str]:
    return list(state(region=region, account=account).rejected)


# -- the answers ---------------------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _for_model(value: Any) -> Any:
    """`value` with HyperPod targets in InstanceId members replaced by a model-valid id (the deviation)."""
    if isinstance(value, dict):
        return {k: (_MODEL_INSTANCE_ID if k == "InstanceId" and isinstance(v, str) and _HYPERPOD_TARGET.fullmatch(v)
                    else [_MODEL_INSTANCE_ID if isinstance(i, str) and _HYPERPOD_TARGET.fullmatch(i) else i
                          for i in v] if k == "InstanceIds" and isinstance(v, list) else _for_model(v))
                for k, v in value.items()}
    return value


def _check(value: Any, model_shape: Any, what: str) -> None:
    found = problems(_for_model(value), model_shape)
    if found:
        raise _Refused(MISMATCH, f"{what} does not match botocore's model: {'; '.join(found)}")


def _targets(params: dict[str, Any]) -> list[str]:
    return list(params.get("InstanceIds") or []) + [value for target in params.get("Targets") or []
                                                    if target.get("Key") == "InstanceIds"
                                                    for value in target.get("Values") or []]


def _output(standin: SsmState, target: str, text: str) -> Output | None:
    return standin.outputs.get((target, text)) or standin.outputs.get((target, None))


def _answer(standin: SsmState, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    if operation == "SendCommand":
        targets = _targets(params)
        text = "\n".join((params.get("Parameters") or {}).get("commands") or [])
        unknown = [t for t in targets if _output(standin, t, text) is None]
        if not targets or unknown:
            raise _Refused("InvalidInstanceId", f"Instances {unknown} not in a valid state for account {ACCOUNT}")
        command_id = str(uuid.uuid4())
        standin.sent.append(copy.deepcopy(params))
        standin.commands[command_id] = (copy.deepcopy(params), targets)
        now = datetime.now(UTC)
        return {"Command": {"CommandId": command_id, "DocumentName": params["DocumentName"],
                            "Comment": params.get("Comment", ""), "Parameters": params.get("Parameters") or {},
                            "Targets": params.get("Targets") or [], "InstanceIds": params.get("InstanceIds") or [],
                            "RequestedDateTime": now, "Status": "Pending", "StatusDetails": "Pending",
                            "TimeoutSeconds": params.get("TimeoutSeconds", 3600), "TargetCount": len(targets)}}
    command = standin.commands.get(params["CommandId"])
    if command is None:
        raise _Refused("InvalidCommandId", f"Command {params['CommandId']} not found")
    request, targets = command
    if operation == "CancelCommand":
        standin.cancelled.append(copy.deepcopy(params))
        return {}
    target = params["InstanceId"]
    if target not in targets:
        raise _Refused("InvocationDoesNotExist", f"No invocation of {params['CommandId']} on {target}")
    output = _output(standin, target, "\n".join(request["Parameters"]["commands"])) or Output()
    return {"CommandId": params["CommandId"], "InstanceId": target, "Comment": request.get("Comment", ""),
            "DocumentName": request["DocumentName"], "PluginName": "aws:runShellScript",
            "ResponseCode": output.response_code if output.status != "InProgress" else -1,
            "Status": output.status, "StatusDetails": output.status,
            "StandardOutputContent": output.stdout, "StandardErrorContent": output.stderr}


def _respond(response: Any, operation: str) -> Any:
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import ActionResult

    standin = state(region=response.region, account=response.current_account)
    model = _model().operation_model(operation)
    with standin.lock:
        try:
            if operation in standin.denied:
                raise _Refused("AccessDeniedException", f"not authorized to perform: ssm:{operation}")
            params = json.loads(response.body or "{}")
            _check(params, model.input_shape, f"{operation} request")
            answer = _answer(standin, operation, params)
            _check(answer, model.output_shape, f"{operation} answer")
        except _Refused as refused:
            if refused.code == MISMATCH:
                standin.rejected.append(refused.message)
            raise JsonRESTError(refused.code, refused.message) from None
    return ActionResult(answer)


_served = threading.Lock()


def serve() -> None:
    """Answer OPERATIONS in this process's moto server (idempotent)."""
    from botocore import xform_name
    from moto.ssm.responses import SimpleSystemManagerResponse

    with _served:
        for operation in OPERATIONS:
            method = xform_name(operation)
            if not getattr(getattr(SimpleSystemManagerResponse, method, None), "standin", False):
                def respond(self: Any, _operation: str = operation) -> Any:
                    return _respond(self, _operation)

                respond.standin = True  # type: ignore[attr-defined]
                setattr(SimpleSystemManagerResponse, method, respond)
