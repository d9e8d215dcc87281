"""The secured Redis for real: `scamwatch stack up --redis-secure` (TLS only on 17479, an ACL
user, a CA made with openssl; own state directory, the shared Kafka left alone). Commands
connect with settings only (a rediss:// URL with user:password and SCAMWATCH_REDIS_CA_FILE);
a wrong password or a missing CA fails at once naming the setting; the password appears in
no output, log or status."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.errors import ConfigError, StoreUnavailable
from engine.settings import load_settings
from engine.store.redis import RedisStore
from tests.integration.stack_support import OwnStack, own_stack
from tests.integration.worker_support import free_port
from tests.store_contract import MakeStore, StoreContract

pytestmark = pytest.mark.stack

PORT = 17479
USER = "alice"
PASSWORD = f"pw-{uuid.uuid4().hex}"
WRONG = f"wrong-{uuid.uuid4().hex}"
URL = f"rediss://{USER}:{PASSWORD}@127.0.0.1:{PORT}/0"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[OwnStack]:
    state = tmp_path_factory.mktemp("redis-secure") / "state"
    settings = {"SCAMWATCH_REDIS_URL": URL, "SCAMWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap}
    with own_stack(state, settings, "--redis-secure") as stack:
        yield stack


def _ca(stack: OwnStack) -> str:
    return str(stack.state / "redis" / "tls" / "ca.pem")


def _client_env(stack: OwnStack, url: str = URL, ca: bool = True) -> dict[str, str]:
    env = {"SCAMWATCH_REDIS_URL": url, "SCAMWATCH_REDIS_PREFIX": f"test:{uuid.uuid4().hex[:12]}:"}
    return env | ({"SCAMWATCH_REDIS_CA_FILE": _ca(stack)} if ca else {})


@pytest.fixture
def make_store(secured: OwnStack) -> Iterator[MakeStore]:
    settings = load_settings(redis={"url": URL, "ca_file": _ca(secured)})
    stores: list[RedisStore] = []
    prefix = f"test:{uuid.uuid4().hex[:12]}:"

    def make(change_log_size: int = 100_000, batch_size: int = 5_000) -> RedisStore:
        store = RedisStore.from_settings(
            settings.redis,
            prefix=prefix,
            change_log_size=change_log_size,
            batch_size=batch_size,
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.client.delete(*store.keys())
        store.close()


class TestStoreContractSecured(StoreContract):
    """The store over TLS as an ACL user, built from the settings alone."""


def test_the_stack_made_a_ca_an_acl_user_and_client_settings(secured: OwnStack) -> None:
    up = secured.output[0]
    assert "Redis ACL user 'alice' (from SCAMWATCH_REDIS_URL)" in up
    assert "TLS only, ACL user alice" in up
    redis_dir = secured.state / "redis"
    assert "BEGIN CERTIFICATE" in (redis_dir / "tls" / "ca.pem").read_text()
    for secret_file in ("client.env", "users.acl", "tls/ca.key", "tls/server.key"):
        assert (redis_dir / secret_file).stat().st_mode & 0o077 == 0, secret_file
    client_env = (redis_dir / "client.env").read_text()
    assert f"SCAMWATCH_REDIS_URL={URL}\n" in client_env
    assert f"SCAMWATCH_REDIS_CA_FILE={_ca(secured)}\n" in client_env
    assert PASSWORD not in (redis_dir / "users.acl").read_text()  # only its SHA-256


def test_commands_connect_with_settings_only(secured: OwnStack) -> None:
    env = _client_env(secured)
    added = secured.run("indicators", "add", "phone", "+1 800 555 0199", env=env)
    assert added.returncode == 0, added.stdout + added.stderr
    listed = secured.run("indicators", "list", env=env)
    assert listed.returncode == 0 and "+18005550199" in listed.stdout, listed.stdout
    stats = secured.run("indicators", "stats", env=env)
    assert stats.returncode == 0, stats.stdout + stats.stderr
    settings = load_settings(redis={"url": URL, "ca_file": _ca(secured)})
    store = RedisStore.from_settings(settings.redis, prefix=env["SCAMWATCH_REDIS_PREFIX"])
    assert store.version() == 1
    store.client.delete(*store.keys())
    store.close()


def test_a_wrong_password_fails_naming_the_setting(secured: OwnStack) -> None:
    wrong = _client_env(secured, URL.replace(PASSWORD, WRONG))
    done = secured.run("indicators", "list", env=wrong)
    assert done.returncode == 2
    assert "SCAMWATCH_REDIS_URL" in done.stderr and "refused the user/password" in done.stderr
    assert WRONG not in done.stdout + done.stderr
    settings = load_settings(redis={"url": URL.replace(PASSWORD, WRONG), "ca_file": _ca(secured)})
    with pytest.raises(ConfigError) as info:
        RedisStore.from_settings(settings.redis).version()
    assert info.value.retriable is False and info.value.source == "SCAMWATCH_REDIS_URL"


def test_a_worker_with_a_wrong_password_stops_at_start(secured: OwnStack) -> None:
    env = _client_env(secured, URL.replace(PASSWORD, WRONG))
    env |= {"SCAMWATCH_WEB_PORT": str(free_port()), "SCAMWATCH_METRICS_PORT": str(free_port())}
    env |= {"SCAMWATCH_APP_ID": f"test-{uuid.uuid4().hex[:12]}"}
    done = secured.run("worker", env=env)  # bounded by OwnStack.run's timeout
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SCAMWATCH_REDIS_URL" in done.stderr
    assert "STARTING WITH NO INDICATORS" not in done.stdout + done.stderr  # no waiting
    assert WRONG not in done.stdout + done.stderr


def test_tls_needs_the_stacks_ca(secured: OwnStack) -> None:
    done = secured.run("indicators", "list", env=_client_env(secured, ca=False))
    assert done.returncode == 2
    assert "SCAMWATCH_REDIS_CA_FILE" in done.stderr and "certificate" in done.stderr
    plain = RedisStore.from_url(URL.replace("rediss://", "redis://"))  # no TLS at all
    with pytest.raises(StoreUnavailable):
        plain.version()
    client = redis.Redis(host="127.0.0.1", port=PORT, socket_timeout=2)  # no TLS, no user
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()


def test_no_password_in_status_output_or_logs(secured: OwnStack) -> None:
    status = secured.stack("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "TLS only, ACL user alice" in status.stdout
    logs = list(secured.state.rglob("*.log"))
    assert any(p.name == "redis.log" for p in logs)
    texts = {str(p): p.read_text(errors="replace") for p in logs}
    texts |= {f"command output {i}": out for i, out in enumerate(secured.output)}
    for secret in (PASSWORD, WRONG):
        leaked = [where for where, text in texts.items() if secret in text]
        assert not leaked, f"a password appears in {leaked}"
    # only the 0600 client settings file holds it
    holders = [
        p
        for p in Path(secured.state).rglob("*")
        if p.is_file() and PASSWORD in p.read_text(errors="replace")
    ]
    assert holders == [secured.state / "redis" / "client.env"]
