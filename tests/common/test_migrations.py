"""Every service's Alembic history applies to an empty database and reverts to nothing."""

import os

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from microservices.common.migrate import alembic_config, create_databases, drop_databases
from tests.harness import MIGRATED


@pytest.mark.parametrize("service", MIGRATED)
def test_migrations_upgrade_from_empty_and_downgrade_to_base(infra, service):
    from sqlalchemy.engine import make_url

    name = f"tmig{os.getpid()}_{service}"
    drop_databases(infra.database_url, [name])
    create_databases(infra.database_url, [name])
    url = make_url(infra.database_url).set(drivername="postgresql+psycopg2", database=name)
    config = alembic_config(service, url.render_as_string(hide_password=False))
    engine = create_engine(url)
    try:
        command.upgrade(config, "head")
        head = ScriptDirectory.from_config(config).get_current_head()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head
        command.downgrade(config, "base")
        tables = set(inspect(engine).get_table_names())
        assert tables <= {"alembic_version"}
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 0
    finally:
        engine.dispose()
        drop_databases(infra.database_url, [name])


@pytest.mark.parametrize("service", MIGRATED)
def test_each_history_has_a_single_head(service):
    script = ScriptDirectory.from_config(alembic_config(service, "postgresql://unused/none"))
    assert len(script.get_heads()) == 1
