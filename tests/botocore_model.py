"""Documents checked against botocore's SageMaker model with the one validator the stand-in uses.

`model_errors` is hyperpod_guard/local/sagemaker_standin.py's `problems` by shape name: botocore's
ParamValidator (required and unknown members, types, `min`), then enums, `max` and `pattern`s, which
ParamValidator does not check. A value AWS may add to an enum tomorrow is refused unless the test names
it in `allow` as (enum shape, value), as the stand-in's `allow_new_value` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hyperpod_guard.local import sagemaker_standin

#: (enum shape, value): a value the pinned botocore does not know yet
NewValue = tuple[str, str]


def model_errors(document: Any, shape_name: str, *, allow: Iterable[NewValue] = ()) -> list[str]:
    """Everything in `document` that botocore's `shape_name` refuses ([] when it matches)."""
    return sagemaker_standin.problems(document, sagemaker_standin.shape(shape_name), frozenset(allow))


def valid(document: dict[str, Any], shape_name: str, *, allow: Iterable[NewValue] = ()) -> dict[str, Any]:
    """`document`, once it matches `shape_name` (the test fails with the problems otherwise)."""
    errors = model_errors(document, shape_name, allow=allow)
    assert errors == [], f"not a {shape_name}: {errors}"
    return document


def members(document: dict[str, Any], shape_name: str) -> dict[str, Any]:
    """The part of `document` that `shape_name` has members for (a summary out of a Describe answer)."""
    known = sagemaker_standin.shape(shape_name).members
    return {k: v for k, v in document.items() if k in known}


def enum(shape_name: str) -> set[str]:
    """The values of one of the model's enums."""
    return set(sagemaker_standin.shape(shape_name).enum)
