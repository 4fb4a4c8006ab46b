#!/usr/bin/env bash
# Makes sure the local services the tests talk to are up:
#   PostgreSQL on 127.0.0.1:5432 and NATS (JetStream) on 127.0.0.1:4222,
#   and that Chromium (the browser tests' headless browser) is installed.
# Starts whichever is down, then waits (bounded) until both answer; exits non-zero with a clear
# message if one does not come up. Safe to run repeatedly.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
NATS_HOST=127.0.0.1
NATS_PORT=4222
WAIT_SECONDS=${SERVICES_WAIT_SECONDS:-30}

pg_up() {
	pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1
}

nats_up() {
	# bash's /dev/tcp: a plain TCP connect, no client tools needed.
	timeout 2 bash -c "exec 3<>/dev/tcp/$NATS_HOST/$NATS_PORT" >/dev/null 2>&1
}

start_pg() {
	echo "services: PostgreSQL is down on $PG_HOST:$PG_PORT, starting it"
	if ! command -v pg_ctlcluster >/dev/null 2>&1; then
		echo "services: pg_ctlcluster not found: install PostgreSQL (Debian package postgresql)" >&2
		return 1
	fi
	# shellcheck disable=SC2046 # one cluster version directory, word-split on purpose
	pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start ||
		echo "services: pg_ctlcluster returned an error (it may already be starting); waiting anyway" >&2
}

start_nats() {
	echo "services: NATS is down on $NATS_HOST:$NATS_PORT, starting it"
	if [ ! -x /usr/sbin/nats-server ]; then
		echo "services: /usr/sbin/nats-server not found: install NATS (Debian package nats-server)" >&2
		return 1
	fi
	start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
}

# Headless Chromium for the workbench's browser tests (cmd/segmentd).
ensure_chromium() {
	if command -v chromium >/dev/null 2>&1; then
		return 0
	fi
	echo "services: chromium not found, installing Debian's chromium package"
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null; then
		echo "services: ERROR: could not install chromium (apt-get install -y chromium)" >&2
		return 1
	fi
}

ensure_chromium
pg_up || start_pg
nats_up || start_nats

deadline=$((SECONDS + WAIT_SECONDS))
pg_ok=0
nats_ok=0
while :; do
	[ "$pg_ok" -eq 1 ] || { pg_up && pg_ok=1; } || true
	[ "$nats_ok" -eq 1 ] || { nats_up && nats_ok=1; } || true
	if [ "$pg_ok" -eq 1 ] && [ "$nats_ok" -eq 1 ]; then
		break
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		if [ "$pg_ok" -ne 1 ]; then
			echo "services: ERROR: PostgreSQL did not come up on $PG_HOST:$PG_PORT within ${WAIT_SECONDS}s" >&2
			echo "services:   check: pg_lsclusters; the log under /var/log/postgresql/" >&2
		fi
		if [ "$nats_ok" -ne 1 ]; then
			echo "services: ERROR: NATS did not come up on $NATS_HOST:$NATS_PORT within ${WAIT_SECONDS}s" >&2
			echo "services:   check: /var/log/nats-server.log" >&2
		fi
		exit 1
	fi
	sleep 1
done

echo "services: PostgreSQL $PG_HOST:$PG_PORT and NATS $NATS_HOST:$NATS_PORT are up"
