#!/usr/bin/env bash
# Reproduces PERFORMANCE.md's query figures in one run on this machine:
#   1. `shiftcast dev --serve=false` brings up a local PostgreSQL (port 5433)
#      and NATS (port 4222) under $DIR and loads the challenge dataset;
#   2. `shiftcast seed` is timed loading the challenge dataset into a fresh
#      database, and again with --bare into the "baseline" database (the
#      challenge's own tables only: no shiftcast index, trigger or table);
#   3. `shiftcast serve` runs as its own process;
#   4. `shiftcast bench query` runs over NATS (workers 101-103, then every
#      active worker), over HTTP, and as the challenge's usual SQL straight
#      against the baseline database;
#   5. serve's peak resident memory (VmHWM) is read from /proc.
# Everything is stopped at the end. Usage: scripts/bench-query.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
DIR=${DIR:-/var/tmp/shiftcast-bench}
BIN=bin/shiftcast
PG=postgres://postgres@127.0.0.1:5433

go build -o "$BIN" ./cmd/shiftcast
mkdir -p "$DIR"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

env -u DATABASE_URL -u NATS_URL "$BIN" dev --dir "$DIR" --profile challenge --serve=false --pg-port 5433 --nats-port 4222 >"$DIR/dev.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do grep -q "Press Ctrl-C" "$DIR/dev.log" && break; sleep 1; done
grep -q "Press Ctrl-C" "$DIR/dev.log" || { cat "$DIR/dev.log"; exit 1; }

echo "== machine"; nproc; grep -m1 "model name" /proc/cpuinfo || true; free -g | head -2

echo "== seed --profile challenge (fresh database)"
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS seedtime WITH (FORCE)" -c "CREATE DATABASE seedtime"
/usr/bin/time -f "wall %es, max RSS %MKB" "$BIN" seed --profile challenge --database-url "$PG/seedtime"
psql -q "$PG/postgres" -c "DROP DATABASE seedtime WITH (FORCE)"

echo "== seed --profile challenge --bare (baseline database)"
if ! psql -qtA "$PG/postgres" -c "SELECT 1 FROM pg_database WHERE datname = 'baseline'" | grep -q 1; then
  psql -q "$PG/postgres" -c "CREATE DATABASE baseline"
  "$BIN" seed --profile challenge --bare --database-url "$PG/baseline" | tail -4
fi
psql -qtA "$PG/baseline" -c "SELECT 'baseline indexes: ' || string_agg(indexname, ', ') FROM pg_indexes WHERE schemaname = 'public'"

# serve reaches PostgreSQL over its unix socket, as a same-host deployment
# would (dev prints that URL); the tools below keep TCP.
SERVE_PG=$(sed -n 's/.*faster: DATABASE_URL=\(.*\))$/\1/p' "$DIR/dev.log")
export DATABASE_URL="$PG/postgres" NATS_URL=nats://127.0.0.1:4222
DATABASE_URL="${SERVE_PG:-$DATABASE_URL}" "$BIN" serve --http-addr 127.0.0.1:8080 --log-level warn >"$DIR/serve.log" 2>&1 &
serve=$!
pids+=($serve)
for _ in $(seq 1 50); do curl -fs http://127.0.0.1:8080/readyz >/dev/null && break; sleep 0.2; done

echo "== bench query --transport nats"
"$BIN" bench query --transport nats --concurrency 32 --duration "$DURATION"
echo "== bench query --transport nats, every active worker round-robin (few equal requests at once)"
ACTIVE=$(psql -qtA "$PG/postgres" -c 'SELECT string_agg(id::text, $$,$$ ORDER BY id) FROM "Worker" WHERE is_active')
"$BIN" bench query --transport nats --concurrency 32 --duration "$DURATION" --workers "$ACTIVE"
echo "== bench query --transport http"
"$BIN" bench query --transport http --http-url http://127.0.0.1:8080 --concurrency 32 --duration "$DURATION"
echo "== monthly report, a year of all workers over HTTP (50 sequential requests, seconds)"
for _ in $(seq 1 50); do
  curl -fs -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:8080/v1/reports/monthly?from=2023-01&to=2023-12"
done | sort -n | awk '{a[NR]=$1} END {printf "p50 %s  p95 %s  max %s\n", a[int(NR*0.5)], a[int(NR*0.95)], a[NR]}'
curl -fs "http://127.0.0.1:8080/v1/reports/monthly?from=2023-01&to=2023-12" | head -c 300; echo
echo "== serve resident memory after both runs"
grep -E "VmHWM|VmRSS" "/proc/$serve/status"
echo "== bench query --transport baseline (challenge's usual SQL, no added indexes)"
"$BIN" bench query --transport baseline --database-url "$PG/baseline" --concurrency 32 --duration "$DURATION"
echo "== bench query --transport baseline, one client (per-query latency)"
"$BIN" bench query --transport baseline --database-url "$PG/baseline" --concurrency 1 --duration "$DURATION"
