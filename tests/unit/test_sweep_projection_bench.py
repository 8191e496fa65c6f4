"""sweep_projection's arithmetic and verdict (not its timings: the benchmark is the measurement)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import sweep_projection


def results(small: float, large: float, *, io: float | None = None, budget: float = 150.0) -> dict[str, Any]:
    return {"sweep_projection": {
        "assumptions": {"budget_s": budget},
        "small": {"projected_s": small, "projected_with_io_s": small if io is None else io},
        "large": {"projected_s": large, "projected_with_io_s": large if io is None else io},
    }}


@pytest.mark.parametrize(("figures", "met"), [
    (results(25.5, 47.3), True),
    (results(25.5, 150.0), True),  # within half the interval, inclusive
    (results(25.5, 150.1), False),
    (results(25.5, 47.3, io=151.0), False),  # the I/O allowance counts too
])
def test_verdict(figures: dict[str, Any], met: bool) -> None:
    _, holds = sweep_projection.TARGETS["sweep_projection"]
    assert holds(figures) is met


def test_the_assumed_vcpu_share_of_512_mb() -> None:
    assert round(512 / sweep_projection.MB_PER_VCPU, 2) == 0.29  # what the issue and the README state
