"""The local stack is real: a broker that round-trips records, a Faust app that receives
through it, a Redis that answers; and `scamwatch stack` up/status/down on ports of its own."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.stack


async def test_kafka_produce_consume_round_trip(kafka_bootstrap: str, unique_name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(unique_name, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(30)}
    try:
        for key, value in sent.items():
            await producer.send(unique_name, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        unique_name,
        bootstrap_servers=kafka_bootstrap,
        group_id=unique_name,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: dict[bytes, bytes] = {}
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    received.update({r.key: r.value for r in records if r.key and r.value})
        partitions = consumer.assignment()
    finally:
        await consumer.stop()
    assert received == sent
    assert len(partitions) == 3


def test_redis_round_trip(redis_client: redis.Redis, key_prefix: str) -> None:
    key = f"{key_prefix}roundtrip"
    redis_client.hset(key, mapping={"a": "1", "b": "2"})
    assert redis_client.hgetall(key) == {b"a": b"1", b"b": b"2"}
    assert redis_client.incr(f"{key_prefix}counter") == 1
    assert redis_client.incr(f"{key_prefix}counter") == 2


FAUST_APP = """
import asyncio, sys, faust
topic_name, out_path, bootstrap = sys.argv[1], sys.argv[2], sys.argv[3]
app = faust.App(topic_name, broker=f"kafka://{bootstrap}", value_serializer="raw",
                web_enabled=False, datadir=out_path + ".data", topic_partitions=1)
topic = app.topic(topic_name, value_type=bytes, value_serializer="raw")

@app.agent(topic)
async def receive(stream):
    async for value in stream:
        with open(out_path, "ab") as fh:
            fh.write(value + b"\\n")

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()
"""


async def test_minimal_faust_app_receives_through_the_broker(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    script = tmp_path / "faust_app.py"
    script.write_text(FAUST_APP)
    out = tmp_path / "received.txt"
    token = uuid.uuid4().hex.encode()
    worker = subprocess.Popen(
        [sys.executable, str(script), unique_name, str(out), kafka_bootstrap],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(unique_name, token)
        async with asyncio.timeout(90):
            while not (out.exists() and token in out.read_bytes()):
                assert worker.poll() is None, worker.stdout.read().decode() if worker.stdout else ""
                await asyncio.sleep(0.5)
    finally:
        await producer.stop()
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert out.read_bytes().splitlines() == [token]


def test_stack_cli_up_twice_status_down(tmp_path: Path) -> None:
    """A second stack on ports of its own: up is idempotent, down leaves nothing running."""
    env = {
        **os.environ,
        "SCAMWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:19192",
        "SCAMWATCH_REDIS_URL": "redis://127.0.0.1:16479/0",
        "SCAMWATCH_STATE_DIR": str(tmp_path / "state"),
    }
    cli = [sys.executable, "-m", "engine.cli"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args], env=env, capture_output=True, text=True, timeout=240, check=False
        )

    pids: list[int] = []
    try:
        first = run("stack", "up")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "starting Kafka" in first.stdout and "starting Redis" in first.stdout
        second = run("stack", "up")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "Kafka already up" in second.stdout and "Redis already up" in second.stdout
        status = run("stack", "status")
        assert status.returncode == 0, status.stdout
        assert "19192" in status.stdout and "16479" in status.stdout
        pids += [int((tmp_path / "state" / f"{n}.pid").read_text()) for n in ("kafka", "redis")]
    finally:
        down = run("stack", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped: kafka, redis" in down.stdout
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid), f"pid {pid} still running"
    after = run("stack", "status")
    assert after.returncode == 1
    assert "down" in after.stdout


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    except OSError:
        return "Z"


def test_any_kafka_client_sees_the_broker(kafka_bootstrap: str) -> None:
    """kcat (librdkafka, not Python) lists the broker at the advertised loopback address."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed; `make test` installs it (apt-get install kcat)"
    out = subprocess.run(
        [kcat, "-b", kafka_bootstrap, "-L", "-m", "10"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"at {kafka_bootstrap}" in out.stdout
    assert "1 brokers" in out.stdout
