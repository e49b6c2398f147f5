#!/usr/bin/env bash
# PostgreSQL alone, no serve: the listing statements behind PERFORMANCE.md's
# query-path comparisons, with pgbench (prepared, 16 clients, 2 threads) on
# the challenge dataset. Run it while scripts/bench-query.sh's stack, or
# `shiftcast dev --profile challenge --serve=false`, is up:
#   full.sql    the full statement (facility set computed in it)
#   cached.sql  the hot statement (facility set passed in, checked by initplans)
#   cached x4   four hot statements per round trip (\startpipeline)
# Usage: scripts/bench-statements.sh [SECONDS]   (default 8)
# Environment: PG (default postgres://postgres@127.0.0.1:5433/postgres).
set -euo pipefail
cd "$(dirname "$0")/pgbench"
T=${1:-8}
PG=${PG:-postgres://postgres@127.0.0.1:5433/postgres}
q() { psql -qtA "$PG" -c "$1"; }
fv=$(q "SELECT version FROM shiftcast.facility_version")
docs=$(q "SELECT document_ids FROM shiftcast.worker_documents WHERE worker_id = 101")
facs=$(q "SELECT '{' || string_agg(fa.id::text, ',' ORDER BY fa.id) || '}' FROM \"Facility\" fa
  LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = fa.id
  WHERE fa.is_active AND COALESCE(fr.document_ids, '{}') <@ '$docs'::integer[]")
pipe=$(mktemp)
trap 'rm -f "$pipe"' EXIT
{ echo '\set w random(101, 103)'; echo '\startpipeline'
  for _ in 1 2 3 4; do grep -v '^\(--\|\\set\)' cached.sql; done
  echo '\endpipeline'; } >"$pipe"
run() { pgbench -n -M prepared -c 16 -j 2 -T "$T" -D fv="$fv" -D docs="$docs" -D facs="$facs" -f "$1" "$PG" 2>&1 | grep -E '^tps'; }
echo "full.sql:   $(run full.sql)"
echo "cached.sql: $(run cached.sql)"
echo "cached x4 per round trip (statements/s = 4 x tps): $(run "$pipe")"
