#!/bin/sh
# A stand-in for the official wordpress image's entrypoint, for the locally
# built image on Debian 12's WordPress (host/images/wordpress.go), following
# what the official one documents (docker-library/docs wordpress/content.md
# and docker-library/wordpress docker-entrypoint.sh):
#
# - Started with apache2-foreground (or any apache2* command), or run as
#   docker-ensure-installed.sh, it first makes sure WordPress is in the
#   working folder, /var/www/html, the volume: when that folder holds no
#   WordPress (neither index.php nor wp-includes/version.php), it copies
#   /usr/src/wordpress into it, owned by the user Apache runs PHP as
#   (APACHE_RUN_USER and APACHE_RUN_GROUP, www-data by default), keeping
#   any .htaccess and any theme or plugin already there. A folder that
#   holds WordPress is never copied over: the site updates itself in the
#   volume.
# - When the folder has no wp-config.php and a WORDPRESS_* variable is set,
#   it writes one from wp-config-docker.php, whose settings read the
#   WORDPRESS_* variables at run time, with a fresh random value for each
#   key and salt that no variable gives.
#
# Then it execs the command.
set -eu

log() { printf '%s\n' "$*" >&2; }

self=$(basename "$0")
case ${1:-} in
apache2*) ;;
*) [ "$self" = docker-ensure-installed.sh ] || exec "$@" ;;
esac

# A stop asked for while WordPress is being copied waits for the copy to
# end (a half-copied folder would pass for an installed WordPress at the
# next start), then ends the container instead of starting the command.
# As the container's first process the shell would otherwise ignore it.
stop_asked=
trap 'stop_asked=1' TERM INT

if [ "$(id -u)" = 0 ]; then
	user=${APACHE_RUN_USER:-www-data}
	group=${APACHE_RUN_GROUP:-www-data}
	# Apache takes #UID; chown and tar take the number alone.
	user=${user#\#}
	group=${group#\#}
	root=1
else
	user=$(id -u)
	group=$(id -g)
	root=
fi
source_dir=/usr/src/wordpress

if [ ! -e index.php ] && [ ! -e wp-includes/version.php ]; then
	# A folder the engine made for the volume belongs to root: give it to
	# the user PHP writes as.
	if [ -n "$root" ] && [ "$(stat -c %u:%g .)" = 0:0 ]; then
		chown "$user:$group" .
	fi
	log "WordPress not found in $PWD - copying now..."
	if [ -n "$(find . -mindepth 1 -maxdepth 1 ! -name wp-content | head -n 1)" ]; then
		log "WARNING: $PWD is not empty! (copying anyhow)"
	fi
	# What the site may have of its own is kept: its .htaccess, and each
	# theme and plugin it already has (an older copy of a bundled plugin
	# is not replaced by the image's).
	excludes=$(mktemp)
	trap 'rm -f "$excludes"' EXIT
	for p in "$source_dir"/.htaccess "$source_dir"/wp-content/*/*/; do
		p=${p%/}
		[ -e "$p" ] || continue
		rel=${p#"$source_dir"/}
		if [ -e "$rel" ]; then
			log "WARNING: '$PWD/$rel' exists! (not copying the WordPress version)"
			printf './%s\n' "$rel" >>"$excludes"
		fi
	done
	keep_dir=
	[ -n "$root" ] || keep_dir=--no-overwrite-dir
	tar --create --file - --directory "$source_dir" --exclude-from "$excludes" \
		--owner "$user" --group "$group" . |
		tar --extract --file - $keep_dir
	rm -f "$excludes"
	trap - EXIT
	log "Complete! WordPress has been successfully copied to $PWD"
fi

# random_phrase is 64 hexadecimal digits from the kernel's random source.
random_phrase() { od -An -vtx1 -N32 /dev/urandom | tr -d ' \n'; }

if [ ! -s wp-config.php ] && env | grep -q '^WORDPRESS_'; then
	for template in wp-config-docker.php "$source_dir"/wp-config-docker.php; do
		[ -s "$template" ] || continue
		log "No 'wp-config.php' found in $PWD, but 'WORDPRESS_...' variables supplied; copying '$template'"
		new=$(mktemp wp-config.XXXXXX)
		cp "$template" "$new"
		# Each placeholder gets a value of its own.
		while grep -q 'put your unique phrase here' "$new"; do
			sed -i "0,/put your unique phrase here/s//$(random_phrase)/" "$new"
		done
		chmod 644 "$new"
		mv "$new" wp-config.php
		if [ -n "$root" ]; then
			# Some file systems (NFS) refuse chown: the file works anyway.
			chown "$user:$group" wp-config.php || true
		fi
		break
	done
fi

if [ -n "$stop_asked" ]; then
	log "Stopped before starting $1"
	exit 143
fi
trap - TERM INT
exec "$@"
