#!/bin/sh
# First start of the Postgres volume: one database per concern, owned by $POSTGRES_USER.
# POSTGRES_DB (mlflow) is created by the image itself.
set -eu
for db in predictions audit; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -c "CREATE DATABASE $db OWNER \"$POSTGRES_USER\""
done
