"""hyperpod-guard: policy enforcement and alerting for Amazon SageMaker HyperPod clusters."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Looked up on demand: importlib.metadata costs ~30 ms, and every Lambda cold start
    # imports this package while only the CLI ever asks for the version.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hyperpod-guard")
    except PackageNotFoundError:  # running from a Lambda asset: no dist-info is packaged
        return "0.1.0"
