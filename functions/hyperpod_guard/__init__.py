"""hyperpod-guard: policy enforcement and alerting for Amazon SageMaker HyperPod clusters."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hyperpod-guard")
except PackageNotFoundError:  # running from a Lambda asset: no dist-info is packaged
    __version__ = "0.1.0"
