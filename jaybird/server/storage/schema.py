"""The SQL tables, as SQLAlchemy Core metadata for the queries; migrations/ creates and evolves them.

Times are integer microseconds since the Unix epoch (UTC): exact, ordered, and the same on SQLite (which has
no timestamp type) and PostgreSQL. Values are bytes with an ``is_text`` flag: a ``str`` comes back a ``str``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

__all__ = ["account_credentials", "accounts", "archive", "keyvalue", "map_entries", "metadata"]

metadata = MetaData()

keyvalue = Table(
    "keyvalue",
    metadata,
    Column("owner", Text, nullable=False),
    Column("store", Text, nullable=False),
    Column("is_text", Boolean, nullable=False),
    Column("value", LargeBinary, nullable=False),
    PrimaryKeyConstraint("owner", "store", name="pk_keyvalue"),
)

map_entries = Table(
    "map_entries",
    metadata,
    Column("owner", Text, nullable=False),
    Column("store", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("is_text", Boolean, nullable=False),
    Column("value", LargeBinary, nullable=False),
    PrimaryKeyConstraint("owner", "store", "key", name="pk_map_entries"),
)

archive = Table(
    "archive",
    metadata,
    Column("owner", Text, nullable=False),
    Column("store", Text, nullable=False),
    # Sorts in archive order and encodes the timestamp (see archive_ids), so time ranges use this index too.
    Column("id", Text, nullable=False),
    Column("with_bare", Text, nullable=True),
    Column("with_full", Text, nullable=True),
    Column("is_text", Boolean, nullable=False),
    Column("value", LargeBinary, nullable=False),
    PrimaryKeyConstraint("owner", "store", "id", name="pk_archive"),
    Index("ix_archive_with", "owner", "store", "with_bare", "id"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("domain", Text, nullable=False),
    Column("username", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    PrimaryKeyConstraint("domain", "username", name="pk_accounts"),
)

account_credentials = Table(
    "account_credentials",
    metadata,
    Column("domain", Text, nullable=False),
    Column("username", Text, nullable=False),
    Column("mechanism", Text, nullable=False),
    Column("salt", LargeBinary, nullable=False),
    Column("iterations", Integer, nullable=False),
    Column("stored_key", LargeBinary, nullable=False),
    Column("server_key", LargeBinary, nullable=False),
    PrimaryKeyConstraint("domain", "username", "mechanism", name="pk_account_credentials"),
    ForeignKeyConstraint(
        ["domain", "username"],
        ["accounts.domain", "accounts.username"],
        ondelete="CASCADE",
        name="fk_account_credentials_account",
    ),
)
