"""Initial schema: key-value, map, archive, accounts and their SCRAM credentials.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "keyvalue",
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("store", sa.Text(), nullable=False),
        sa.Column("is_text", sa.Boolean(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "store", name="pk_keyvalue"),
    )
    op.create_table(
        "map_entries",
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("store", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("is_text", sa.Boolean(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "store", "key", name="pk_map_entries"),
    )
    op.create_table(
        "archive",
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("store", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("with_bare", sa.Text(), nullable=True),
        sa.Column("with_full", sa.Text(), nullable=True),
        sa.Column("is_text", sa.Boolean(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "store", "id", name="pk_archive"),
    )
    op.create_index("ix_archive_with", "archive", ["owner", "store", "with_bare", "id"])
    op.create_table(
        "accounts",
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("domain", "username", name="pk_accounts"),
    )
    op.create_table(
        "account_credentials",
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("mechanism", sa.Text(), nullable=False),
        sa.Column("salt", sa.LargeBinary(), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("stored_key", sa.LargeBinary(), nullable=False),
        sa.Column("server_key", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("domain", "username", "mechanism", name="pk_account_credentials"),
        sa.ForeignKeyConstraint(
            ["domain", "username"],
            ["accounts.domain", "accounts.username"],
            ondelete="CASCADE",
            name="fk_account_credentials_account",
        ),
    )


def downgrade() -> None:
    op.drop_table("account_credentials")
    op.drop_table("accounts")
    op.drop_index("ix_archive_with", table_name="archive")
    op.drop_table("archive")
    op.drop_table("map_entries")
    op.drop_table("keyvalue")
