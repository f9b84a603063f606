"""A real S3-compatible server on loopback for the object-store tests: moto in server mode.

moto's server speaks the S3 REST API over HTTP (conditional writes included), so s3fs, Zarr's
FsspecStore and every saldata process (CLI, Ray workers, other nodes) talk to it exactly as they
would to AWS. It runs as a subprocess the fixture starts and stops; nothing leaves the machine.
Credentials and the endpoint reach every process through the standard AWS environment
variables, set for the whole session (subprocesses and Ray nodes inherit them).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

HOST = "127.0.0.1"
ENVIRONMENT = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"moto server exited with {self.proc.returncode}") from None
                time.sleep(0.1)
        raise RuntimeError(f"moto server did not answer on {self.endpoint} within {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def new_bucket(self, name: str | None = None) -> str:
        import boto3

        name = name or f"saldata-{secrets.token_hex(4)}"
        boto3.client("s3", endpoint_url=self.endpoint, **_client_env()).create_bucket(Bucket=name)
        return name

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(endpoint_url=self.endpoint, use_listings_cache=False, skip_instance_cache=True)


def _client_env() -> dict:
    return {
        "aws_access_key_id": ENVIRONMENT["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
        "region_name": ENVIRONMENT["AWS_DEFAULT_REGION"],
    }


def set_environment(endpoint: str) -> dict:
    """Point every process of this session (and its children) at the server; returns what was there."""
    wanted = {**ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint}
    before = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    return before


def restore_environment(before: dict) -> None:
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
