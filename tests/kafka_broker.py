"""A real Apache Kafka broker for the tests: KRaft mode (broker and controller in one JVM) on 127.0.0.1.

Its jars (``org.apache.kafka:kafka_2.13``, pinned below) come from Maven Central through the Ivy that pyspark
ships, once, into the project's git-ignored ``.ivy2/kafka-broker/``; later sessions start it offline. Records
are produced and topics managed with confluent-kafka (librdkafka), a client independent of the one under test.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyspark
from confluent_kafka import KafkaException
from servers import stop

PROJECT_DIR = Path(__file__).resolve().parents[1]
# Kafka 4.x brokers run on Java 17 and speak to the 3.4 client of Spark 3.5's connector (KIP-896 keeps >= 2.1).
BROKER = ("org.apache.kafka", "kafka_2.13", "4.1.1")
BROKER_DIR = PROJECT_DIR / ".ivy2" / "kafka-broker"


def broker_classpath() -> str:
    """The broker's classpath, resolved from Maven Central on first use (then cached in the project)."""
    stamp = BROKER_DIR / f"classpath-{BROKER[2]}.txt"
    if stamp.is_file() and all(Path(j).is_file() for j in stamp.read_text().strip().split(os.pathsep)):
        return stamp.read_text().strip()
    ivy = next((Path(pyspark.__file__).parent / "jars").glob("ivy-*.jar"))
    BROKER_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            "java",
            "-jar",
            str(ivy),
            "-settings",
            str(PROJECT_DIR / "conf" / "ivysettings.xml"),
            "-cache",
            str(BROKER_DIR / "cache"),
            "-dependency",
            *BROKER,
            "-confs",
            "default",
            "-cachepath",
            str(stamp) + ".tmp",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(
            f"expected {':'.join(BROKER)} from Maven Central, found exit {done.returncode}:\n{done.stdout}"
        )
    os.replace(str(stamp) + ".tmp", stamp)
    return stamp.read_text().strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class KafkaBroker:
    bootstrap: str

    def admin(self):
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topic(self, name: str, partitions: int = 1, **config: str) -> None:
        from confluent_kafka.admin import NewTopic

        admin = self.admin()  # kept alive until its futures resolve
        for f in admin.create_topics([NewTopic(name, partitions, 1, config=config)], operation_timeout=30).values():
            f.result(timeout=30)
        self._wait(lambda names: name in names)

    def add_partitions(self, name: str, total: int) -> None:
        from confluent_kafka.admin import NewPartitions

        admin = self.admin()
        for f in admin.create_partitions([NewPartitions(name, total)], operation_timeout=30).values():
            f.result(timeout=30)

    def delete_topic(self, name: str) -> None:
        admin = self.admin()
        for f in admin.delete_topics([name], operation_timeout=30).values():
            f.result(timeout=30)
        self._wait(lambda names: name not in names)

    def _wait(self, ready: Callable[[set[str]], bool]) -> None:
        deadline = time.monotonic() + 30
        while not ready(set(self.admin().list_topics(timeout=10).topics)):
            if time.monotonic() > deadline:
                raise TimeoutError("expected the topic change to show in the broker's metadata within 30 s")
            time.sleep(0.2)

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes | None, int]]) -> None:
        """(key, value, partition) records, acknowledged by the broker before this returns."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 5})
        failed: list[str] = []

        def on_delivery(err: object, _msg: object) -> None:
            if err is not None:
                failed.append(str(err))

        for key, value, partition in records:
            producer.produce(topic, value=value, key=key, partition=partition, on_delivery=on_delivery)
        left = producer.flush(30)
        if left or failed:
            raise RuntimeError(f"expected every record delivered, found {left} undelivered and errors {failed[:3]}")

    def delete_records_before(self, topic: str, partition: int, offset: int) -> None:
        """What retention does: the partition's records before ``offset`` are gone."""
        from confluent_kafka import TopicPartition

        admin = self.admin()
        for f in admin.delete_records([TopicPartition(topic, partition, offset)]).values():
            f.result(timeout=30)


@contextmanager
def kafka_broker() -> Iterator[KafkaBroker]:
    classpath = broker_classpath()
    root = tempfile.mkdtemp(prefix="bronze-kafka-")
    port, controller = _free_port(), _free_port()
    props = Path(root) / "server.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={root}/data",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
            ]
        )
        + "\n"
    )
    java = ["java", "-Xmx512m", "-XX:+UseSerialGC", "-cp", classpath]
    cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props)], capture_output=True, check=True
    )
    log = open(Path(root) / "broker.log", "wb")  # noqa: SIM115 - open while the broker runs
    proc = subprocess.Popen([*java, "kafka.Kafka", str(props)], stdout=log, stderr=subprocess.STDOUT)
    try:
        broker = KafkaBroker(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 90
        while True:
            try:
                broker.admin().list_topics(timeout=2)
                break
            except KafkaException:  # until the broker answers
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(
                        f"expected a Kafka broker on {broker.bootstrap}, see {root}/broker.log"
                    ) from None
                time.sleep(0.5)
        yield broker
    finally:
        stop(proc, 30)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
