"""The file manager's migrations create exactly the tables its models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from microservices.file_manager.models import Base


def _not_the_outbox_index(obj, name, type_, reflected, compare_to):
    # The outbox's partial index is made by the shared migration helper and is not in the table's metadata.
    return name != "ix_outbox_event_unpublished"


def test_models_and_migrations_agree(databases):
    engine = create_engine(databases.url("file_manager", "postgresql+psycopg2"))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": _not_the_outbox_index}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
