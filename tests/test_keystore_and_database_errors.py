"""The bot keystore a config names (file or env:VARIABLE) and the database it names: every way they can be
unusable is a typed error (KeystoreError / StorageError) that says which file, variable or URL and what is
wrong — never their content, never a password — and `check_database` finds it without creating anything."""
from __future__ import annotations

import json
import sqlite3
import time

import pytest

from integrations.mixin.keystore import (
    KeystoreError,
    generate_keystore,
    load_bot_keystore,
    parse_keystore,
)
from storage.db import StorageError, check_database, masked_url, open_database
from storage.models import SCHEMA_VERSION, database_proxy
from tests.databases import database_url, execute, on_postgres, query

KS = generate_keystore()
PRIVATE = (KS["session_private_key"], KS["spend_private_key"])


def refused(reference: str) -> KeystoreError:
    with pytest.raises(KeystoreError) as info:
        load_bot_keystore(reference)
    for secret in PRIVATE:
        assert secret not in str(info.value)
    return info.value


# ---------------------------------------------------------------------------------- keystore

def test_file_and_env_keystores_load(tmp_path, monkeypatch):
    path = tmp_path / "ks.json"
    path.write_text(json.dumps(KS))
    assert load_bot_keystore(str(path)) == parse_keystore(KS)
    monkeypatch.setenv("MMF_TEST_KS", json.dumps(KS))
    assert load_bot_keystore("env:MMF_TEST_KS") == parse_keystore(KS)


def test_env_keystore_problems_name_the_variable_only(monkeypatch):
    monkeypatch.delenv("MMF_TEST_KS", raising=False)
    error = refused("env:MMF_TEST_KS")
    assert str(error) == "environment variable MMF_TEST_KS is not set"
    assert error.source == "environment variable MMF_TEST_KS"
    monkeypatch.setenv("MMF_TEST_KS", " ")
    assert str(refused("env:MMF_TEST_KS")) == "environment variable MMF_TEST_KS is empty"
    monkeypatch.setenv("MMF_TEST_KS", "session=" + KS["session_private_key"])
    assert str(refused("env:MMF_TEST_KS")) == ("environment variable MMF_TEST_KS: not valid JSON "
                                               "(Expecting value at line 1)")
    monkeypatch.setenv("MMF_TEST_KS", json.dumps([KS]))
    assert str(refused("env:MMF_TEST_KS")) == ("environment variable MMF_TEST_KS: must be a JSON object {...}, "
                                               "not an array")
    monkeypatch.setenv("MMF_TEST_KS", json.dumps(dict(KS, session_private_key="zz" + KS["session_private_key"])))
    assert str(refused("env:MMF_TEST_KS")) == ("environment variable MMF_TEST_KS: session_private_key: "
                                               "not valid hex")
    monkeypatch.setenv("MMF_TEST_KS", "[" * 100000)
    assert "not valid JSON" in str(refused("env:MMF_TEST_KS"))


def test_file_keystore_problems_name_the_file_only(tmp_path):
    path = tmp_path / "ks.json"
    error = refused(str(path))
    assert str(error) == f"keystore file {path}: cannot read (No such file or directory)" and error.source == str(path)
    path.mkdir()
    assert str(refused(str(path))) == f"keystore file {path}: cannot read (Is a directory)"
    path.rmdir()
    path.write_bytes(b"\xff\xfe" + KS["session_private_key"].encode())
    assert str(refused(str(path))) == f"keystore file {path}: not a text (UTF-8) file; a keystore is JSON"
    path.write_text('{"session_private_key": "' + KS["session_private_key"] + '", oops')
    assert str(refused(str(path))).startswith(f"keystore file {path}: not valid JSON (")
    path.write_text(json.dumps({k: v for k, v in KS.items() if k != "app_id"}))
    assert str(refused(str(path))) == (f"keystore file {path}: app_id: missing (neither app_id nor legacy client_id "
                                       "present)")
    path.write_text("null")
    assert str(refused(str(path))) == f"keystore file {path}: must be a JSON object {{...}}, not null"


def test_no_keystore_reference():
    assert str(refused("")) == "no keystore configured (mixin.keystore)"


# ---------------------------------------------------------------------------------- database

@pytest.fixture(autouse=True)
def _unbind():
    yield
    database_proxy.initialize(None)


def refused_db(url: str, *, check: bool) -> str:
    with pytest.raises(StorageError) as info:
        (check_database if check else open_database)(url)
    return str(info.value)


@pytest.mark.parametrize("check", [True, False], ids=["check", "open"])
def test_sqlite_directory_that_cannot_be_created(tmp_path, check):
    (tmp_path / "file").write_text("x")
    message = refused_db(f"sqlite:///{tmp_path}/file/sub/mm.db", check=check)
    assert message == (f"cannot create the directory {tmp_path}/file/sub for the SQLite database: "
                       f"{tmp_path}/file is a file, not a directory")
    message = refused_db("sqlite:////proc/nope/mm.db", check=check)
    assert message.startswith("cannot create the directory /proc/nope for the SQLite database: ")


@pytest.mark.parametrize("check", [True, False], ids=["check", "open"])
def test_a_file_that_is_not_a_database_and_a_directory(tmp_path, check):
    text = tmp_path / "mm.db"
    text.write_text("not a database\n" * 100)
    assert refused_db(f"sqlite:///{text}", check=check) == (
        f"SQLite database {text}: the file is not an SQLite database (file is not a database)")
    assert text.read_text() == "not a database\n" * 100  # untouched
    assert refused_db(f"sqlite:///{tmp_path}", check=check) == f"SQLite database {tmp_path}: is a directory, not a file"


@pytest.mark.parametrize("check", [True, False], ids=["check", "open"])
def test_a_newer_schema_is_refused(tmp_path, check):
    path = tmp_path / "mm.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at REAL NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (?, ?)", (SCHEMA_VERSION + 1, time.time()))
    conn.commit()
    conn.close()
    assert refused_db(f"sqlite:///{path}", check=check) == (
        f"SQLite database {path}: database schema version {SCHEMA_VERSION + 1} is newer than this mmflow "
        f"({SCHEMA_VERSION}); refusing to run an older binary on it")


def test_check_creates_nothing_and_reports_what_it_found(tmp_path):
    path = tmp_path / "deep" / "er" / "mm.db"
    assert check_database(f"sqlite:///{path}") == "new (will be created)"
    assert not (tmp_path / "deep").exists()
    db = open_database(f"sqlite:///{path}")
    db.close()
    database_proxy.initialize(None)
    assert check_database(f"sqlite:///{path}") == f"schema version {SCHEMA_VERSION}"
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.close()
    with pytest.raises(StorageError, match="holds tables but no schema_version: not an mmflow database"):
        check_database(f"sqlite:///{foreign}")


@pytest.mark.parametrize("check", [True, False], ids=["check", "open"])
def test_postgres_that_refuses_the_connection_masks_the_password(check):
    message = refused_db("postgresql://nobody:hunter2@127.0.0.1:1/x", check=check)
    assert message.startswith("PostgreSQL database postgresql://nobody:***@127.0.0.1:1/x: cannot be opened: ")
    assert "refused" in message and "hunter2" not in message and "\n" not in message


@pytest.mark.skipif(not on_postgres(), reason="needs a PostgreSQL server: MMFLOW_TEST_DATABASE_URL")
@pytest.mark.parametrize("check", [True, False], ids=["check", "open"])
def test_postgres_newer_schema_is_refused(tmp_path, check):
    url = database_url(tmp_path / "pg", empty=True)
    execute(url, "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
    execute(url, "INSERT INTO schema_version VALUES (?, ?)", (SCHEMA_VERSION + 1, time.time()))
    assert refused_db(url, check=check) == (
        f"PostgreSQL database {url}: database schema version {SCHEMA_VERSION + 1} is newer than this mmflow "
        f"({SCHEMA_VERSION}); refusing to run an older binary on it")


@pytest.mark.skipif(not on_postgres(), reason="needs a PostgreSQL server: MMFLOW_TEST_DATABASE_URL")
def test_postgres_check_creates_nothing_and_reports_what_it_found(tmp_path):
    url = database_url(tmp_path / "pg", empty=True)
    assert check_database(url) == "empty (the schema will be created)"
    assert query(url, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    open_database(url).close()
    database_proxy.initialize(None)
    assert check_database(url) == f"schema version {SCHEMA_VERSION}"
    foreign = database_url(tmp_path / "foreign", empty=True)
    execute(foreign, "CREATE TABLE users (id INTEGER)")
    with pytest.raises(StorageError, match="holds tables but no schema_version: not an mmflow database"):
        check_database(foreign)
    missing = url.rsplit("/", 1)[0] + "/mmflow_no_such_database"
    for check in (True, False):
        message = refused_db(missing, check=check)
        assert message.startswith(f"PostgreSQL database {missing}: cannot be opened: ") and "does not exist" in message


def test_postgres_without_its_driver(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_psycopg(name, *args, **kwargs):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ImportError("No module named 'psycopg'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    for check in (True, False):
        assert refused_db("postgresql://mm:hunter2@127.0.0.1:1/x", check=check) == (
            "PostgreSQL needs the psycopg driver, which is not installed: pip install 'mmflow[postgres]'")


def test_masked_url():
    assert masked_url("postgresql://mm:p%40ss@db:5432/x") == "postgresql://mm:***@db:5432/x"
    assert masked_url("postgresql://mm@db/x") == "postgresql://mm@db/x"
    assert masked_url("sqlite:////var/x.db") == "sqlite:////var/x.db"
