"""moto in server mode on 127.0.0.1, and the environment that points AWS clients at it.

One place for the tests, the demo and the benchmarks: the code under test reaches moto only
through AWS_ENDPOINT_URL, exactly as it reaches AWS.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

REGION = "us-west-2"


def start() -> tuple[Any, str]:
    """A started ThreadedMotoServer on a free loopback port, and its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # moto lacks the HyperPod reads of issue 19 (operations, extensions, training plans, cluster events): the
    # stand-in answers them in this server, validated against botocore's model
    from .sagemaker_standin import serve

    serve()
    return server, f"http://127.0.0.1:{port}"


def environment(url: str, region: str = REGION) -> dict[str, str]:
    """Endpoint, fake credentials and region (AWS_PROFILE must be unset as well)."""
    return {
        "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": region, "AWS_REGION": region,
    }
