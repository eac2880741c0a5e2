"""Real servers for the tests, started on 127.0.0.1 from what the project's own set-up installed: moto's S3 API
server and PostgreSQL (the pgserver wheel's binaries)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

S3_KEY = "bronze-test"
S3_SECRET = "bronze-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen, seconds: float) -> None:
    """SIGTERM (a clean shutdown), SIGKILL if it takes longer than ``seconds``."""
    proc.terminate()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for_http(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers: up
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass(frozen=True)
class S3Server:
    """moto's S3 API server (the moto[s3] package plus Flask, from PyPI)."""

    endpoint: str

    def hadoop_conf(self) -> dict[str, str]:
        """What Spark's S3A filesystem needs to talk to it (``spark.hadoop.`` + key on a command line)."""
        return {
            "fs.s3a.endpoint": self.endpoint,
            "fs.s3a.path.style.access": "true",
            "fs.s3a.connection.ssl.enabled": "false",
            "fs.s3a.access.key": S3_KEY,
            "fs.s3a.secret.key": S3_SECRET,
            "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "fs.s3a.endpoint.region": "us-east-1",
            # Hadoop 3.4+ (Spark 4) sends "Expect: 100-continue", which moto's server answers with a bare 100.
            "fs.s3a.connection.expect.continue": "false",
            # ... and its async upload of copyFromLocalFile reads that 100 as the answer: copy through a stream.
            "fs.s3a.optimized.copy.from.local.enabled": "false",
        }

    def spark_args(self) -> str:
        """The same as spark-submit options (BRONZE_SPARK_ARGS)."""
        return " ".join(f"--conf spark.hadoop.{k}={v}" for k, v in self.hadoop_conf().items())

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )


@contextmanager
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_for_http(endpoint)
        yield S3Server(endpoint)
    finally:
        stop(proc, 10)


@dataclass(frozen=True)
class PostgresServer:
    """PostgreSQL 16 from the pgserver wheel (PyPI), on 127.0.0.1 with a password (TCP, as JDBC connects)."""

    port: int
    user: str
    password: str
    bin_dir: str

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/postgres"

    def sql(self, statements: str) -> str:
        """Run SQL through the server's own psql; returns its output (fails loudly on an error)."""
        where = ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres"]
        done = subprocess.run(
            [f"{self.bin_dir}/psql", *where, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-c", statements],
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password},
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"psql: expected success, found exit {done.returncode}: {done.stderr.strip()}")
        return done.stdout


def _as_unprivileged() -> list[str]:
    """PostgreSQL refuses to run as root: under root, run it as nobody."""
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []


@contextmanager
def postgres_server(password: str = "bronze-test-pg-secret") -> Iterator[PostgresServer]:
    with warnings.catch_warnings():  # its import asks platformdirs for a runtime dir that CI may not have
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH  # the binaries the wheel ships

    bin_dir = str(POSTGRES_BIN_PATH)
    root = tempfile.mkdtemp(prefix="bronze-pg-")
    pwfile = os.path.join(root, "pw")
    with open(pwfile, "w") as f:
        f.write(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "nobody", "nogroup")
        shutil.chown(pwfile, "nobody", "nogroup")
    data = os.path.join(root, "data")
    auth = ["--auth=scram-sha-256", "-E", "UTF8", "--no-locale"]
    subprocess.run(
        [*_as_unprivileged(), f"{bin_dir}/initdb", "-D", data, "-U", "postgres", f"--pwfile={pwfile}", *auth],
        capture_output=True,
        check=True,
    )
    port = free_port()
    proc = subprocess.Popen(
        [*_as_unprivileged(), f"{bin_dir}/postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", root],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server = PostgresServer(port, "postgres", password, bin_dir)
        deadline = time.monotonic() + 60
        while True:
            try:
                server.sql("SELECT 1")
                break
            except RuntimeError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        stop(proc, 30)  # SIGTERM: PostgreSQL's smart shutdown
        shutil.rmtree(root, ignore_errors=True)
