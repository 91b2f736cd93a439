#!/bin/sh
# A stand-in for the official mariadb image's entrypoint, on Debian 12's
# MariaDB, for the locally built image (host/images/mariadb.go): the same
# variables and first start, as far as the catalog uses them. On an empty
# data folder it runs mariadb-install-db, then, on a server that listens only
# on its socket, sets root's password (MARIADB_ROOT_PASSWORD, or
# MARIADB_RANDOM_ROOT_PASSWORD, or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD) for
# root@localhost and root@MARIADB_ROOT_HOST (default %), creates the
# healthcheck users healthcheck.sh logs in as, MARIADB_DATABASE, and
# MARIADB_USER with MARIADB_PASSWORD and every privilege on that database.
# The MYSQL_* names are aliases. Then it execs mariadbd as the mysql user.
# Not here: /docker-entrypoint-initdb.d, *_FILE secrets, *_PASSWORD_HASH,
# MARIADB_AUTO_UPGRADE, MARIADB_INITDB_SKIP_TZINFO and replication.
set -eu

note() { printf '%s [Note] [Entrypoint]: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S')" "$*"; }
die() {
	printf '%s [ERROR] [Entrypoint]: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S')" "$*" >&2
	exit 1
}

# An option first is one of mariadbd's.
case ${1:-} in -*) set -- mariadbd "$@" ;; esac
if [ "${1:-}" != mariadbd ] && [ "${1:-}" != mysqld ]; then
	exec "$@"
fi
for arg; do
	case $arg in -'?' | --help | --print-defaults | -V | --version) exec "$@" ;; esac
done

root_password=${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}
root_host=${MARIADB_ROOT_HOST:-${MYSQL_ROOT_HOST:-%}}
allow_empty=${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-${MYSQL_ALLOW_EMPTY_PASSWORD:-}}
random_root=${MARIADB_RANDOM_ROOT_PASSWORD:-${MYSQL_RANDOM_ROOT_PASSWORD:-}}
database=${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}
user=${MARIADB_USER:-${MYSQL_USER:-}}
password=${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}

# Where the server keeps its data and socket, with the command's options.
config=$("$@" --verbose --help 2>/dev/null) || die "mariadbd cannot read its configuration: run $* --verbose --help"
# setting reads one from the table after the options' descriptions.
setting() {
	printf '%s\n' "$config" | awk -v k="$1" '/^Variables \(--variable-name=value\)/ { table = 1 } table && $1 == k { print $2; exit }'
}
datadir=$(setting datadir)
datadir=${datadir%/}
socket=$(setting socket)
port=$(setting port)
if [ -z "$datadir" ] || [ -z "$socket" ] || [ -z "$port" ]; then
	die "mariadbd --verbose --help names no datadir, socket or port (datadir '$datadir', socket '$socket', port '$port')"
fi

root=
[ "$(id -u)" = 0 ] && root=1
mkdir -p "$datadir" "$(dirname "$socket")"
if [ -n "$root" ]; then
	find "$datadir" "$(dirname "$socket")" \! -user mysql -exec chown mysql:mysql '{}' +
fi

# sql_string escapes a value for a '...' literal; sql_name for a `...` name.
sql_string() { printf '%s' "$1" | sed "s/[\\']/\\\\&/g"; }
sql_name() { printf '%s' "$1" | sed 's/`/``/g'; }
random_password() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32; }

initialize() {
	shift # mariadbd: the rest are its options
	if [ -z "$root_password" ] && [ -z "$allow_empty" ] && [ -z "$random_root" ]; then
		die "the database is uninitialized and no root password option is set: set one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD"
	fi
	if [ "$user" = root ]; then
		die "MARIADB_USER=root: MARIADB_USER and MARIADB_PASSWORD are for a regular user; set MARIADB_ROOT_PASSWORD for root"
	fi
	if [ -n "$user" ] && [ -z "$password" ]; then
		die "MARIADB_USER is set without MARIADB_PASSWORD"
	fi
	if [ -n "$random_root" ] && [ -z "$root_password" ]; then
		root_password=$(random_password)
		note "GENERATED ROOT PASSWORD: $root_password"
	fi

	note "Initializing database files in $datadir"
	mariadb-install-db ${root:+--user=mysql} --datadir="$datadir" --rpm --auth-root-authentication-method=normal \
		--skip-test-db --cross-bootstrap --default-time-zone=SYSTEM --skip-log-bin --expire-logs-days=0 \
		--loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0 "$@" >/dev/null
	note "Database files initialized"

	note "Starting a temporary server on the socket only"
	if [ -n "$root" ]; then
		setpriv --reuid=mysql --regid=mysql --init-groups -- mariadbd "$@" --skip-networking --socket="$socket" \
			--default-time-zone=SYSTEM --skip-log-bin --expire-logs-days=0 --loose-innodb_buffer_pool_load_at_startup=0 &
	else
		mariadbd "$@" --skip-networking --socket="$socket" \
			--default-time-zone=SYSTEM --skip-log-bin --expire-logs-days=0 --loose-innodb_buffer_pool_load_at_startup=0 &
	fi
	pid=$!
	i=0
	until mariadb-admin --no-defaults --socket="$socket" -uroot --silent ping >/dev/null 2>&1; do
		kill -0 "$pid" 2>/dev/null || die "the temporary server stopped during initialization"
		i=$((i + 1))
		[ "$i" -lt 120 ] || die "the temporary server did not start within 60 seconds"
		sleep 0.5
	done

	hc_password=$(random_password)
	hc_file=$datadir/.my-healthcheck.cnf
	(
		umask 077
		printf '[mariadb-client]\nport=%s\nsocket=%s\nuser=healthcheck\npassword=%s\n' "$port" "$socket" "$hc_password" >"$hc_file"
	)
	[ -z "$root" ] || chown mysql:mysql "$hc_file"

	rp=$(sql_string "$root_password")
	rh=$(sql_string "$root_host")
	{
		printf '%s\n' "SET @@SESSION.SQL_LOG_BIN=0;"
		printf '%s\n' "SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');"
		printf '%s\n' "DROP USER IF EXISTS root@'127.0.0.1', root@'::1';"
		printf '%s\n' "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname, '\\'');"
		printf '%s\n' "SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$rp');"
		if [ "$root_host" != localhost ]; then
			printf '%s\n' "CREATE USER 'root'@'$rh' IDENTIFIED BY '$rp';"
			printf '%s\n' "GRANT ALL ON *.* TO 'root'@'$rh' WITH GRANT OPTION;"
			printf '%s\n' "GRANT PROXY ON ''@'%' TO 'root'@'$rh' WITH GRANT OPTION;"
		fi
		for h in 127.0.0.1 ::1 localhost; do
			printf '%s\n' "CREATE USER IF NOT EXISTS healthcheck@'$h' IDENTIFIED BY '$hc_password';"
			printf '%s\n' "GRANT USAGE ON *.* TO healthcheck@'$h';"
		done
		if [ -n "$database" ]; then
			note "Creating database $database" >&2
			printf '%s\n' "CREATE DATABASE IF NOT EXISTS \`$(sql_name "$database")\`;"
		fi
		if [ -n "$user" ]; then
			note "Creating user $user" >&2
			printf '%s\n' "CREATE USER '$(sql_string "$user")'@'%' IDENTIFIED BY '$(sql_string "$password")';"
			if [ -n "$database" ]; then
				# In a grant, _ matches any character: escape it, as the official image does.
				printf '%s\n' "GRANT ALL ON \`$(sql_name "$database" | sed 's/_/\\_/g')\`.* TO '$(sql_string "$user")'@'%';"
			fi
		fi
	} | mariadb --no-defaults --socket="$socket" -uroot --protocol=socket --binary-mode ||
		die "setting up users and database failed"

	kill "$pid"
	wait "$pid" || true
	note "MariaDB init process done. Ready for start up."
}

if [ ! -d "$datadir/mysql" ]; then
	initialize "$@"
fi
if [ -n "$root" ]; then
	exec setpriv --reuid=mysql --regid=mysql --init-groups -- "$@"
fi
exec "$@"
