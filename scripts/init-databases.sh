#!/bin/sh
# Creates the platform's seven databases, owned by $POSTGRES_USER.
#
# The postgres image runs this from /docker-entrypoint-initdb.d/ on the first start of an empty data volume.
# It is idempotent, so it can also be run by hand against any server (psql honours PGHOST, PGPORT, PGPASSWORD):
#   POSTGRES_USER=imputation PGHOST=localhost PGPASSWORD=... sh scripts/init-databases.sh
set -eu

: "${POSTGRES_USER:?POSTGRES_USER must name the owner of the databases}"

DATABASES="user_management_db service_registry_db job_processing_db file_management_db notification_db monitoring_db federated_imputation"

for db in $DATABASES; do
    # CREATE DATABASE cannot run inside a function or DO block, hence the \gexec of a generated statement.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" --dbname postgres \
        --set db="$db" --set owner="$POSTGRES_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
    echo "init-databases: $db ready"
done
