"""The [api] config table (pure parsing, one line per problem), its secrets in the redaction set, and the
ApiServer's start and stop on a real port (a busy port is retried, never fatal)."""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from api.settings import ApiSettings, parse_api
from domain.config import ConfigError, load_config
from integrations.redaction import secrets_of
from sim.world import build_world, dump_toml
from tests.databases import database_url
from tests.support import wait_until

SECRET = "k" * 40


def problems_of(table, tmp_path: Path, read_secrets: bool = True) -> list[str]:
    problems: list[str] = []
    parse_api(table, problems, tmp_path, read_secrets=read_secrets)
    return problems


def test_absent_table_is_disabled_and_present_table_enabled_on_loopback(tmp_path):
    assert parse_api(None, [], tmp_path).enabled is False
    settings = parse_api({}, [], tmp_path)
    assert settings.enabled and settings.listen == "127.0.0.1:8710" and settings.address == ("127.0.0.1", 8710)
    assert (settings.access_token_ttl, settings.refresh_token_ttl) == (900.0, 1209600.0)
    assert parse_api({"enabled": False}, [], tmp_path).enabled is False
    assert parse_api({"listen": "[::1]:0"}, [], tmp_path).address == ("::1", 0)


@pytest.mark.parametrize("table,expected", [
    ({"listen": "8710"}, "api.listen: must be HOST:PORT"),
    ({"listen": "example.com:80"}, "api.listen: the host must be an IP address or localhost"),
    ({"listen": "127.0.0.1:99999"}, "api.listen: the port must be a number 0..65535"),
    ({"listen": 8710}, "api.listen: must be a string, got 8710"),
    ({"acces_token_ttl": 60}, "api.acces_token_ttl: unknown key; did you mean 'access_token_ttl'?"),
    ({"token_secret": "hunter2hunter2"}, "api.token_secret: secrets are never inline; give token_secret_file"),
    ({"access_token_ttl": -1}, "api.access_token_ttl: must be > 0"),
    ({"access_token_ttl": "900"}, "api.access_token_ttl: must be a number of seconds, got '900'"),
    ({"command_wait": 600}, "api.command_wait: must be at most 60 seconds"),
    ({"rate_limit_per_address": "lots"}, "api.rate_limit_per_address: must be a rate like"),
    ({"enabled": "yes"}, "api.enabled: must be true or false (unquoted), got 'yes'"),
    ({"public_base_url": "mm.example"}, "api.public_base_url: must be an http(s) URL"),
    ({"mixin_oauth_client_id": "bot"}, "api.mixin_oauth_client_id: must be the bot's app id (a UUID)"),
    ({"token_secret_file": "missing.secret"}, "api.token_secret_file: cannot read file:"),
    ({"mixin_oauth_client_secret_file": ""}, "api.mixin_oauth_client_secret_file: must be a file path"),
])
def test_each_problem_is_one_line_naming_the_key(tmp_path, table, expected):
    problems = problems_of(table, tmp_path)
    assert len(problems) == 1 and problems[0].startswith(expected), problems
    assert "hunter2" not in problems[0]


def test_secret_files_are_checked_only_when_secrets_are_read(tmp_path):
    (tmp_path / "short.secret").write_text("too short\n")
    assert "at least 32" in problems_of({"token_secret_file": "short.secret"}, tmp_path)[0]
    assert problems_of({"token_secret_file": "missing.secret"}, tmp_path, read_secrets=False) == []
    (tmp_path / "jwt.secret").write_text(SECRET + "\n")
    settings = parse_api({"token_secret_file": "jwt.secret"}, [], tmp_path)
    assert settings.token_secret.read() == SECRET and SECRET not in repr(settings)
    assert settings.token_secret_file == str((tmp_path / "jwt.secret").resolve())


def test_config_file_problems_name_the_file_and_the_secrets_are_masked(tmp_path):
    world = build_world()
    try:
        raw = world.config_dict(tmp_path / "mmflow.db", world.write_keystore(tmp_path / "keystore.json"))
        path = tmp_path / "mmflow.toml"
        path.write_text(dump_toml({**raw, "api": {"listen": "0.0.0.0", "tokens_ttl": 1}}))
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.lines() == [f"{path}: api.listen: must be HOST:PORT (e.g. \"127.0.0.1:8710\"), got "
                                        f"'0.0.0.0'", f"{path}: api.tokens_ttl: unknown key"]
        (tmp_path / "jwt.secret").write_text(SECRET)
        (tmp_path / "oauth.secret").write_text("oauth-client-secret-value")
        path.write_text(dump_toml({**raw, "api": {"token_secret_file": "jwt.secret",
                                                  "mixin_oauth_client_secret_file": "oauth.secret"}}))
        config = load_config(path)
        assert isinstance(config.api, ApiSettings) and config.api.enabled
        assert {SECRET, "oauth-client-secret-value"} <= set(secrets_of(config))
    finally:
        world.fake.stop()


def test_api_server_retries_a_busy_port_and_stops_cleanly(tmp_path):
    from actors.system import build_services
    from api.server import ApiServer, GetApiAddress
    from domain.config import parse_config
    from storage.models import database_proxy

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    world = build_world()
    config = parse_config(world.config_dict(database_url(tmp_path / "mmflow.db"),
                                            world.write_keystore(tmp_path / "ks.json"),
                                            api={"listen": f"127.0.0.1:{port}"}))
    services = build_services(config)
    ref = ApiServer.start(services)
    try:
        assert ref.ask(GetApiAddress(), timeout=10) is None  # the port is taken: the actor runs, unbound
        blocker.close()
        assert wait_until(lambda: ref.ask(GetApiAddress(), timeout=10), timeout=20) == ("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert b'"status":"ok"' in conn.recv(4096).split(b"\r\n\r\n", 1)[-1]
    finally:
        ref.stop(timeout=10)
        services.mixin.close()
        services.db.close()
        database_proxy.initialize(None)
        world.fake.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert not [t for t in threading.enumerate() if "api" in t.name.lower() and t.is_alive()]
