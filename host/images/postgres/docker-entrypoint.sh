#!/bin/sh
# A small stand-in for the official postgres image's entrypoint, on Debian's
# PostgreSQL: the same variables (POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB, PGDATA) and the same first-start behaviour, for the tests'
# locally built image.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pwfile=$(mktemp)
	printf '%s' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" >"$pwfile"
	chown postgres "$pwfile"
	runuser -u postgres -- initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
	rm -f "$pwfile"
	echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	if [ "$db" != postgres ]; then
		runuser -u postgres -- pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
		runuser -u postgres -- createdb -U "$user" "$db"
		runuser -u postgres -- pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	fi
fi
if [ "${1:-}" = postgres ]; then
	shift
	exec runuser -u postgres -- postgres -D "$PGDATA" "$@"
fi
exec "$@"
