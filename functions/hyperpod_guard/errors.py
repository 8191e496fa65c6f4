"""The project's own error types. Each carries a one-line message meant for a person."""


class HyperPodGuardError(Exception):
    """Base class: anything the CLI reports as `error: ...` (exit 2) instead of a traceback."""


class InvalidEventError(HyperPodGuardError):
    """An EventBridge event that cannot be understood (not an object, no detail, wrong types)."""


class InvalidSnapshotError(HyperPodGuardError):
    """A DescribeCluster response (or State Change detail) that cannot be understood."""


class InvalidRulesError(HyperPodGuardError):
    """A rules document that is not valid JSON or does not match the rules schema."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        #: every problem as (JSON path, message), for `hyperpod-guard validate`
        self.problems = problems or []
