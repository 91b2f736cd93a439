#!/bin/sh
# A stand-in for the official mariadb image's healthcheck.sh, for the locally
# built image (host/images/mariadb.go): the tests the catalog uses, run in
# the order given, each failing the check with a message.
#
#   --connect                    the server takes TCP connections (an "access
#                                denied" counts as up, as upstream)
#   --innodb_initialized         InnoDB is ready to serve
#   --innodb_buffer_pool_loaded  the buffer pool saved at shutdown is loaded
#
# It logs in as the healthcheck user of $datadir/.my-healthcheck.cnf, which
# the entrypoint writes on first start, or with --defaults-file,
# --defaults-extra-file or --no-defaults. --datadir=DIR, --su-mysql and
# --su=USER are accepted (it reads the option file as whoever runs it);
# the other upstream tests (galera, replication, mariadbupgrade) are not here.
set -u

datadir=/var/lib/mysql
defaults=
nodefaults=
tests=
for arg; do
	case $arg in
	--datadir=*) datadir=${arg#*=} ;;
	--defaults-file=*) defaults="--defaults-file=${arg#*=}" ;;
	--defaults-extra-file=*) defaults="--defaults-extra-file=${arg#*=}" ;;
	--no-defaults) nodefaults=1 ;;
	--su-mysql | --su=*) ;;
	--connect | --innodb_initialized | --innodb_buffer_pool_loaded) tests="$tests ${arg#--}" ;;
	*)
		echo "healthcheck.sh: $arg is not a test this image knows (--connect, --innodb_initialized, --innodb_buffer_pool_loaded)" >&2
		exit 1
		;;
	esac
done
[ -n "$tests" ] || tests=connect
if [ -n "$nodefaults" ]; then
	defaults=--no-defaults
elif [ -z "$defaults" ] && [ -r "$datadir/.my-healthcheck.cnf" ]; then
	defaults="--defaults-extra-file=$datadir/.my-healthcheck.cnf"
fi

# client runs the mariadb client with the option file first, as it must be.
client() {
	if [ -n "$defaults" ]; then
		mariadb "$defaults" "$@"
	else
		mariadb "$@"
	fi
}
query() { client --skip-column-names --batch -e "$1"; }

for t in $tests; do
	case $t in
	connect)
		out=$(client -h 127.0.0.1 --protocol=tcp -e 'SELECT 1' 2>&1)
		case $out in *"Can't connect"*)
			echo "healthcheck connect failed: $out" >&2
			exit 1
			;;
		esac
		;;
	innodb_initialized)
		got=$(query "SELECT 1 FROM information_schema.ENGINES WHERE engine = 'innodb' AND support IN ('YES', 'DEFAULT', 'ENABLED')" 2>&1)
		if [ "$got" != 1 ]; then
			echo "healthcheck innodb_initialized failed: ${got:-InnoDB is not enabled}" >&2
			exit 1
		fi
		;;
	innodb_buffer_pool_loaded)
		got=$(query "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_LOAD_STATUS'" 2>&1)
		case $got in
		"Buffer pool(s) load completed at"*) ;;
		*)
			echo "healthcheck innodb_buffer_pool_loaded failed: $got" >&2
			exit 1
			;;
		esac
		;;
	esac
done
exit 0
