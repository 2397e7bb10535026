"""Which store a config names, opened: SQLite by default, PostgreSQL for ``storage.url``."""

from __future__ import annotations

import importlib.util

from config import LoadedConfig
from incidents.sqlite_store import SqliteStore, store_path
from incidents.store import IncidentStore, StoreError


def _postgres(loaded: LoadedConfig) -> None:
    if importlib.util.find_spec("psycopg") is None:
        raise StoreError(
            f"{loaded.source}: storage.url needs the PostgreSQL driver: "
            "pip install 'slawatch[postgres]'"
        )


def check_store(loaded: LoadedConfig) -> str | None:
    """For ``check-config``: one line on the configured database (None for SQLite).

    StoreError when it cannot be reached.
    """
    url = loaded.config.storage.url
    if url is None:
        return None
    _postgres(loaded)
    from incidents.pg_store import check_database  # noqa: PLC0415  (optional extra)

    return check_database(url.get_secret_value())


def open_store(loaded: LoadedConfig) -> IncidentStore:
    """The config's store, created or migrated as needed; StoreError with one clear line."""
    url = loaded.config.storage.url
    if url is None:
        return SqliteStore(store_path(loaded.source, loaded.config.storage.path))
    _postgres(loaded)
    # Imported here only: a single instance on SQLite never loads psycopg.
    from incidents.pg_store import PgStore  # noqa: PLC0415

    return PgStore(url.get_secret_value())
