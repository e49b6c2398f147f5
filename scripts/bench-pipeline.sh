#!/usr/bin/env bash
# Reproduces the event pipeline's throughput figures in one run on this machine:
#   1. `shiftcast dev --serve=false` brings up a local PostgreSQL (port 5434)
#      and NATS with JetStream (port 4223) under $DIR, and loads the
#      marketplace profile on the first run (~300 facilities, ~30,000
#      workers, ~300,000 shifts over the next 28 days);
#   2. `shiftcast serve` runs as its own process, its webhook pointed at
#      the benchmark's receiver ($HOOK), with the default 30-second digest
#      window (DIGEST_WINDOW, e.g. 5s, changes it);
#   3. `shiftcast bench deliveries` runs the receiver, publishes one new
#      shift of every profession at the $FACILITIES facilities with the
#      fewest requirements, and measures notifications delivered/s. It runs
#      first, on a quiet pipeline, since it needs serve's webhook and counts
#      what arrives;
#   4. `shiftcast bench events` publishes the event mix ($MIX: realistic or
#      churn) at 2,000 events/s for DURATION, then as fast as it can
#      ($MAX_EVENTS events; MAX_EVENTS=0 skips that run),
#      and reports events/s applied and event→applied latency percentiles
#      (the receiver keeps running so serve's deliveries succeed);
#   5. before step 4, the same events with serve's notification queues
#      paused (POST /v1/admin/pause): the event path alone, on a machine
#      where the digests of every window otherwise compete with it for the
#      2 cores (resumed afterwards, and their backlog drained and
#      delivered to a `bench receiver`, for step 4);
#   6. CPU seconds per process during each run, and serve's peak memory.
# Everything is stopped at the end.
#
# Usage: scripts/bench-pipeline.sh [DURATION]      (default 60s: two digest windows)
# Environment: DIR (data, default /var/tmp/shiftcast-bench-pipeline),
# FACILITIES (default 10), MAX_EVENTS (default 60000), MIX (default
# realistic), DIGEST_WINDOW (default 30s), RESEED=1 (reload the marketplace
# profile first, so that a run does not inherit earlier runs' shifts and
# watermarks), EVENTS_ALONE=0 (skip step 5, so that step 4 follows the
# deliveries run directly rather than the backlog step 5 leaves), SERVE_ARGS
# (extra serve flags), DEBUG_ADDR (e.g.
# 127.0.0.1:6061: serve's pprof, and a 20s CPU profile of serve during the
# rate-limited run saved to $DIR/serve-events.pprof).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-60s}
DIR=${DIR:-/var/tmp/shiftcast-bench-pipeline}
FACILITIES=${FACILITIES:-10}
MAX_EVENTS=${MAX_EVENTS:-60000}
MIX=${MIX:-realistic}
DIGEST_WINDOW=${DIGEST_WINDOW:-30s}
RESEED=${RESEED:-}
EVENTS_ALONE=${EVENTS_ALONE:-1}
DEBUG_ADDR=${DEBUG_ADDR:-}
BIN=bin/shiftcast
PG=postgres://postgres@127.0.0.1:5434/postgres
NATS=nats://127.0.0.1:4223
HOOK=127.0.0.1:9099
SECRET=whsec_$(head -c 24 /dev/urandom | base64)

go build -o "$BIN" ./cmd/shiftcast
mkdir -p "$DIR"
pids=()
# Stops serve before dev (and its PostgreSQL), so serve's last writes do not
# meet a closed database.
cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -INT "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT

env -u DATABASE_URL -u NATS_URL "$BIN" dev --dir "$DIR" --profile marketplace --serve=false \
  --pg-port 5434 --nats-port 4223 >"$DIR/dev.log" 2>&1 &
dev=$!
pids+=($dev)
echo "== starting PostgreSQL and NATS (the first run seeds the marketplace profile; log: $DIR/dev.log)"
for _ in $(seq 1 900); do
  grep -q "Press Ctrl-C" "$DIR/dev.log" && break
  kill -0 "$dev" 2>/dev/null || break
  sleep 1
done
grep -q "Press Ctrl-C" "$DIR/dev.log" || { cat "$DIR/dev.log"; exit 1; }

echo "== machine"; nproc; grep -m1 "model name" /proc/cpuinfo || true; free -g | head -2
postgres --version 2>/dev/null || true

# serve reaches PostgreSQL over its unix socket, as a same-host deployment
# would (dev prints that URL); the tools below keep TCP.
SERVE_PG=$(sed -n 's/.*faster: DATABASE_URL=\(.*\))$/\1/p' "$DIR/dev.log")
export DATABASE_URL="$PG" NATS_URL="$NATS"
psql -qtA "$PG" -c "SELECT 'dataset: ' || (SELECT count(*) FROM \"Facility\") || ' facilities, ' ||
  (SELECT count(*) FROM \"Worker\") || ' workers, ' || (SELECT count(*) FROM \"Shift\") || ' shifts, ' ||
  (SELECT count(*) FROM \"Document\") || ' documents'" 2>/dev/null || true

if [ -n "$RESEED" ]; then
  echo "== reseeding the marketplace profile"
  "$BIN" seed --profile marketplace --reset | tail -2
  psql -qtA "$PG" -c "TRUNCATE river_job" -c "UPDATE river_queue SET paused_at = NULL" >/dev/null
fi
ADMIN=bench-$RANDOM$RANDOM
serve_args=(--http-addr 127.0.0.1:8081 --webhook-url "http://$HOOK" --webhook-secret "$SECRET"
  --digest-window "$DIGEST_WINDOW" --log-level warn)
# shellcheck disable=SC2206
[ -n "${SERVE_ARGS:-}" ] && serve_args+=($SERVE_ARGS)
[ -n "$DEBUG_ADDR" ] && serve_args+=(--debug-addr "$DEBUG_ADDR")
ADMIN_TOKEN=$ADMIN DATABASE_URL="${SERVE_PG:-$DATABASE_URL}" "$BIN" serve "${serve_args[@]}" >"$DIR/serve.log" 2>&1 &
serve=$!
pids+=($serve)
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:8081/readyz >/dev/null && break; sleep 0.2; done
curl -fs http://127.0.0.1:8081/readyz >/dev/null || { echo "serve is not ready"; tail -20 "$DIR/serve.log"; exit 1; }
echo "serve: ${serve_args[*]/$SECRET/whsec_…} (log: $DIR/serve.log)"

# CPU seconds (user + system) of serve, of PostgreSQL (the postmaster with
# its exited children, plus its live ones) and of dev (the embedded NATS
# server), to see where time goes.
ticks=$(getconf CLK_TCK)
pg_ticks() {
  local pm f line total=0
  pm=$(head -1 "$DIR/pg/postmaster.pid")
  for f in /proc/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue # it may have just exited
    # shellcheck disable=SC2086
    set -- ${line##*) } # $2 ppid, $12 utime, $13 stime, $14 cutime, $15 cstime
    if [ "$f" = "/proc/$pm/stat" ]; then
      total=$((total + ${12} + ${13} + ${14} + ${15}))
    elif [ "$2" = "$pm" ]; then
      total=$((total + ${12} + ${13}))
    fi
  done
  echo "$total"
}
proc_ticks() {
  local line
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || { echo 0; return; }
  # shellcheck disable=SC2086
  set -- ${line##*) }
  echo $((${12} + ${13}))
}
cpu_snapshot() { echo "$(proc_ticks "$serve") $(pg_ticks) $(proc_ticks "$dev") $(date +%s.%N)"; }
cpu_report() { # before after
  read -r s0 p0 n0 t0 <<<"$1"; read -r s1 p1 n1 t1 <<<"$2"
  awk -v t="$ticks" -v s=$((s1 - s0)) -v p=$((p1 - p0)) -v n=$((n1 - n0)) -v t0="$t0" -v t1="$t1" -v c="$(nproc)" \
    'BEGIN { w = t1 - t0; printf "cpu          over %.0fs: serve %.1fs, postgres %.1fs, nats (dev) %.1fs (%.0f%% of %d cores)\n", w, s/t, p/t, n/t, 100*(s+p+n)/t/w/c, c }'
}

# Lets the fan-out and digest backlog a run left behind drain before the next
# one (bounded), so that each run measures its own load. A webhook receiver
# runs meanwhile (each bench run brings its own): without it, the digests
# drained here failed their first delivery and their retries ran during the
# next run. (Deliveries still retrying are not waited for.)
wait_jobs() {
  local n=0 rcv
  "$BIN" bench receiver --listen "$HOOK" --webhook-secret "$SECRET" >>"$DIR/receiver.log" 2>&1 &
  rcv=$!
  for _ in $(seq 1 90); do
    n=$(psql -qtA "$PG" -c "SELECT count(*) FROM river_job WHERE queue <> 'deliver' AND state IN ('available', 'scheduled')" 2>/dev/null || echo 0)
    [ "${n:-0}" -eq 0 ] && break
    sleep 2
  done
  [ "${n:-0}" -eq 0 ] || echo "(still $n River jobs queued; going on)"
  kill -INT "$rcv" 2>/dev/null || true
  wait "$rcv" 2>/dev/null || true
}
# A benchmark that misses its goal exits 1 after printing its report: go on.
bench() { "$BIN" bench "$@" || echo "(exit status $?)"; }

echo
echo "== bench deliveries --facilities $FACILITIES"
wait_jobs
before=$(cpu_snapshot)
bench deliveries --listen "$HOOK" --webhook-secret "$SECRET" --facilities "$FACILITIES"
cpu_report "$before" "$(cpu_snapshot)"
# The step publishes one shift.created per profession and facility; any
# other event applied by now was an earlier run's, redelivered to serve
# from the stream, and may have changed who the new shifts reach.
psql -qtA "$PG" -c "SELECT 'events applied so far: ' || coalesce(string_agg(event_type || ' ' || n, ', '), 'none')
  FROM (SELECT event_type, count(*) n FROM shiftcast.applied_events GROUP BY 1 ORDER BY 1) e" 2>/dev/null || true

if [ "$EVENTS_ALONE" != 0 ]; then
  echo
  echo "== bench events --rate 2000 --duration $DURATION --mix $MIX, notifications paused (the event path alone)"
  wait_jobs
  admin() { curl -fsS -H "Authorization: Bearer $ADMIN" -d "{\"target\":\"notifications\"}" "http://127.0.0.1:8081/v1/admin/$1" >/dev/null; }
  admin pause
  before=$(cpu_snapshot)
  bench events --rate 2000 --duration "$DURATION" --mix "$MIX" --listen "$HOOK" --webhook-secret "$SECRET"
  cpu_report "$before" "$(cpu_snapshot)"
  admin resume
fi
echo
echo "== bench events --rate 2000 --duration $DURATION --mix $MIX"
wait_jobs
before=$(cpu_snapshot)
if [ -n "$DEBUG_ADDR" ]; then
  (sleep 5; curl -fs "http://$DEBUG_ADDR/debug/pprof/profile?seconds=20" -o "$DIR/serve-events.pprof" &&
    echo "(serve CPU profile: go tool pprof -top $BIN $DIR/serve-events.pprof)") &
fi
bench events --rate 2000 --duration "$DURATION" --mix "$MIX" --listen "$HOOK" --webhook-secret "$SECRET"
cpu_report "$before" "$(cpu_snapshot)"


if [ "$MAX_EVENTS" != 0 ]; then
  echo
  echo "== bench events --rate 0 (as fast as possible) --events $MAX_EVENTS --duration $DURATION --mix $MIX"
  wait_jobs
  before=$(cpu_snapshot)
  bench events --rate 0 --events "$MAX_EVENTS" --duration "$DURATION" --mix "$MIX" --listen "$HOOK" --webhook-secret "$SECRET"
  cpu_report "$before" "$(cpu_snapshot)"
fi

echo
echo "== serve resident memory"
grep -E "VmHWM|VmRSS" "/proc/$serve/status"
grep -c '"level":"error"' "$DIR/serve.log" | sed 's/^/serve log errors: /' || true
