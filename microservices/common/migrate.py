"""Alembic for every service: one history per owning service, run from one command.

python -m microservices.common.migrate create-databases
python -m microservices.common.migrate upgrade [SERVICE ...]
python -m microservices.common.migrate downgrade base [SERVICE ...]
python -m microservices.common.migrate revision SERVICE -m "what changes" [--autogenerate]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

import psycopg2
from alembic import command
from alembic.config import Config
from psycopg2 import sql
from sqlalchemy import MetaData, engine_from_config, pool
from sqlalchemy.engine import make_url

from microservices.common.settings import DATABASE_NAMES, ServiceSettings

# The FastAPI services that own a database, in the order their migrations run.
MIGRATED_SERVICES = (
    "user_service",
    "service_registry",
    "job_processor",
    "file_manager",
    "notification",
    "monitoring",
)


def service_settings(service: str) -> ServiceSettings:
    """The settings of `service`, read from the environment."""
    module = importlib.import_module(f"microservices.{service}.config")
    settings: ServiceSettings = module.Settings()
    return settings


def alembic_config(service: str, database_url: str | None = None) -> Config:
    """An Alembic configuration for `service`'s history and database (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent.parent / service / "migrations"))
    config.set_main_option(
        "file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-%%(rev)s_%%(slug)s"
    )
    # Passed as an attribute, not an option, so that a '%' in a password is not taken for interpolation.
    config.attributes["database_url"] = database_url or service_settings(service).sync_database_url()
    return config


def run_migrations(target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    from alembic import context

    database_url = context.config.attributes["database_url"]
    if context.is_offline_mode():
        context.configure(url=database_url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config({"sqlalchemy.url": database_url}, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def _server_connection(server_url: str) -> Any:
    url = make_url(server_url)
    return psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database or "postgres",
    )


def create_databases(server_url: str, names: list[str]) -> list[str]:
    """Create each database in `names` that does not exist yet; return those created."""
    created = []
    connection = _server_connection(server_url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    created.append(name)
    finally:
        connection.close()
    return created


def drop_databases(server_url: str, names: list[str]) -> None:
    """Drop each database in `names`, closing its connections first."""
    connection = _server_connection(server_url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m microservices.common.migrate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("create-databases", help="create the platform's databases on the DATABASE_URL server")
    up = sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("services", nargs="*", default=list(MIGRATED_SERVICES))
    up.add_argument("--revision", default="head")
    down = sub.add_parser("downgrade", help="revert migrations")
    down.add_argument("revision")
    down.add_argument("services", nargs="*", default=list(MIGRATED_SERVICES))
    rev = sub.add_parser("revision", help="write a new migration for one service")
    rev.add_argument("service", choices=MIGRATED_SERVICES)
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "create-databases":
        server_url = ServiceSettings().server_database_url
        created = create_databases(server_url, sorted(set(DATABASE_NAMES.values())))
        print(f"created: {', '.join(created) or 'none (all exist)'}")
    elif args.command == "upgrade":
        for service in args.services:
            command.upgrade(alembic_config(service), args.revision)
            print(f"{service}: at {args.revision}")
    elif args.command == "downgrade":
        for service in reversed(args.services):
            command.downgrade(alembic_config(service), args.revision)
            print(f"{service}: at {args.revision}")
    elif args.command == "revision":
        command.revision(alembic_config(args.service), message=args.message, autogenerate=args.autogenerate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
