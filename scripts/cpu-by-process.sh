#!/usr/bin/env bash
# CPU used per process group over a window, in cores, read from
# /proc/<pid>/stat (user + system ticks): PostgreSQL (every postgres
# process), serve, dev (the embedded NATS server) and the load generator
# (shiftcast bench). Run it while a benchmark is running, e.g.
#   shiftcast bench query --transport nats --concurrency 32 --duration 12s &
#   sleep 4; scripts/cpu-by-process.sh 6
# Usage: scripts/cpu-by-process.sh [SECONDS]   (default 6)
set -euo pipefail
T=${1:-6}
snap() {
  local p s c
  for p in /proc/[0-9]*; do
    s=$(cat "$p/stat" 2>/dev/null) || continue
    # shellcheck disable=SC2086
    set -- ${s#*) } # $12 utime, $13 stime
    c=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null | cut -c1-40 | tr ' ' '_')
    echo "${p#/proc/} $((${12} + ${13})) ${c:-_}"
  done
}
a=$(mktemp)
trap 'rm -f "$a"' EXIT
snap >"$a"
sleep "$T"
snap | awk -v t="$T" -v hz="$(getconf CLK_TCK)" 'NR == FNR { a[$1] = $2; next }
  { d = $2 - ($1 in a ? a[$1] : $2); g = "other"
    if ($3 ~ /postgres/) g = "postgres"; else if ($3 ~ /_serve/) g = "serve"
    else if ($3 ~ /_dev/) g = "dev (nats)"; else if ($3 ~ /_bench/) g = "bench"
    cpu[g] += d }
  END { for (g in cpu) printf "%-11s %.2f cores\n", g, cpu[g] / hz / t }' "$a" -
