"""Capture what the functions print (JSON log lines and EMF metric documents), as CloudWatch
Logs would receive it, and split it into log records and metric totals."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def lambda_output() -> Iterator[io.StringIO]:
    """Everything written to stdout meanwhile, Powertools' log handlers included: they keep the
    stream they were created with (maybe a closed capture of an earlier test), so they are
    pointed at the buffer for the duration."""
    buffer = io.StringIO()
    handlers = [h for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
                for h in logger.handlers
                if isinstance(h, logging.StreamHandler) and type(h.formatter).__module__.startswith("aws_lambda_powertools")]
    saved = [h.stream for h in handlers]
    for h in handlers:
        h.stream = buffer  # not setStream(): that flushes the old (maybe closed) stream
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        for h, stream in zip(handlers, saved, strict=True):
            h.stream = stream


def split(output: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """(log records, metric totals by name); every line must be JSON (CloudWatch would keep a
    line that is not, but nothing could parse it)."""
    logs: list[dict[str, Any]] = []
    metrics: dict[str, float] = {}
    for line in output.splitlines():
        data = json.loads(line)
        if "_aws" not in data:
            logs.append(data)
            continue
        for definition in data["_aws"]["CloudWatchMetrics"]:
            for metric in definition["Metrics"]:
                value = data[metric["Name"]]
                metrics[metric["Name"]] = metrics.get(metric["Name"], 0) + (sum(value) if isinstance(value, list) else value)
    return logs, metrics
