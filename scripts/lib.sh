# Shared helpers for the scripts in this folder. Source it; do not run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="$ROOT/.stack"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] || die "PostgreSQL binaries not found; run scripts/setup"
  echo "$d"
}

# Runs a command as the postgres user when we are root (PostgreSQL refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local i
  for ((i = 0; i < limit * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$what did not come up within ${limit}s"
}

# start_postgres DIR PORT: initdb (once) and start a cluster on 127.0.0.1:PORT
# with role and database "reach". Logs to DIR/postgres.log.
start_postgres() {
  local dir=$1 port=$2 bin
  bin=$(pg_bin)
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  # The parallel suite runs a dozen daemons at once, each with its pools: 200 connections ran out (CI).
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=${PG_MAX_CONNECTIONS:-500} -c fsync=on" start >/dev/null \
    || { tail -20 "$dir/postgres.log" >&2; die "PostgreSQL did not start on port $port"; }
  psql -h 127.0.0.1 -p "$port" -U postgres -qAtX -c "select 1 from pg_roles where rolname='reach'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$port" -U postgres -qAtX -c "create role reach login superuser" >/dev/null
  psql -h 127.0.0.1 -p "$port" -U postgres -qAtX -c "select 1 from pg_database where datname='reach'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$port" -U postgres -qAtX -c "create database reach owner reach" >/dev/null
}

stop_postgres() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] || return 0
  as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# start_redis DIR PORT [durable]: with "durable", as reachd needs Redis in
# production (README "Delivery semantics"): AOF fsynced every second and no
# eviction. Tests and the benchmark run without AOF (throwaway data).
start_redis() {
  local dir=$1 port=$2 aof=no
  [ "${3:-}" = durable ] && aof=yes
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly "$aof" --appendfsync everysec \
    --maxmemory-policy noeviction --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" >/dev/null
  wait_for 10 "Redis on port $port" redis-cli -p "$port" ping
}

stop_redis() {
  local dir=$1
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  rm -f "$dir/redis.pid"
}

# start_redis_cluster DIR BASEPORT: a throwaway Redis Cluster of 3 masters and
# 3 replicas on 127.0.0.1:BASEPORT..BASEPORT+5 (cluster bus on port+10000),
# without persistence; returns once every node reports cluster_state:ok with
# all 16384 slots served and every replica is in sync with its master.
# Returns non-zero (after printing the failing node's log) when a node does
# not start, e.g. because another process took one of its ports meanwhile.
start_redis_cluster() {
  local dir=$1 base=$2 port i nodes=()
  mkdir -p "$dir"
  for i in 0 1 2 3 4 5; do
    port=$((base + i))
    mkdir -p "$dir/$port"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" --cluster-node-timeout 2000 \
      --maxmemory-policy noeviction --daemonize yes \
      --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log" --dir "$dir/$port" >/dev/null
    nodes+=("127.0.0.1:$port")
  done
  for i in 0 1 2 3 4 5; do
    port=$((base + i))
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$port" ping >/dev/null 2>&1 || { tail -5 "$dir/$port/redis.log" >&2 || true; return 1; }
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
    || { cat "$dir/create.log" >&2; return 1; }
  for _ in $(seq 600); do redis_cluster_ready "$base" && return 0; sleep 0.1; done
  echo "the Redis Cluster on ports $base-$((base + 5)) did not become ready within 60 s" >&2
  return 1
}

# Every node: cluster_state:ok, 16384 slots ok, 6 known nodes; every replica's link to its master up.
redis_cluster_ready() {
  local base=$1 i info
  for i in 0 1 2 3 4 5; do
    info=$(redis-cli -p "$((base + i))" cluster info | tr -d '\r')
    grep -qx 'cluster_state:ok' <<<"$info" || return 1
    grep -qx 'cluster_slots_ok:16384' <<<"$info" || return 1
    grep -qx 'cluster_known_nodes:6' <<<"$info" || return 1
    info=$(redis-cli -p "$((base + i))" info replication | tr -d '\r')
    if grep -qx 'role:slave' <<<"$info"; then
      grep -qx 'master_link_status:up' <<<"$info" || return 1
    fi
  done
  [ "$(redis-cli -p "$base" cluster nodes | grep -c slave)" = 3 ]
}

# Stops the nodes by their pidfiles: SIGTERM, then SIGKILL for any still there
# after 5 s (a master may wait for its replicas on shutdown; a node restarted
# by a test from a thread with signals blocked never sees SIGTERM).
stop_redis_cluster() {
  local dir=$1 pidfile pids=() pid i
  for pidfile in "$dir"/*/redis.pid; do
    [ -f "$pidfile" ] || continue
    pids+=("$(cat "$pidfile")")
    rm -f "$pidfile"
  done
  [ "${#pids[@]}" -gt 0 ] || return 0
  kill "${pids[@]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "${pids[@]}" 2>/dev/null || return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}

# A base port whose six ports and their cluster bus ports (+10000) are free,
# all below 32768 (Linux's ephemeral range, where outgoing connections take ports).
free_cluster_base() {
  local base i ok
  for _ in $(seq 50); do
    base=$(( (RANDOM % 276) * 10 + 20000 ))
    ok=1
    for i in 0 1 2 3 4 5; do
      port_free $((base + i)) && port_free $((base + i + 10000)) || { ok=0; break; }
    done
    [ "$ok" = 1 ] && { echo "$base"; return 0; }
  done
  die "no free ports for a Redis Cluster"
}
