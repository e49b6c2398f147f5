#!/usr/bin/env bash
# Makes sure the tests can get a PostgreSQL server: a Docker engine that
# answers (testcontainers), TEST_DATABASE_URL, or the server binaries of
# Debian's postgresql package, which this installs when it is missing and we
# may (root with apt-get). The tests start their own throwaway cluster.
set -euo pipefail

if [[ -n "${TEST_DATABASE_URL:-}" ]]; then
  exit 0
fi
if command -v docker >/dev/null 2>&1 && timeout 5 docker info >/dev/null 2>&1; then
  exit 0
fi
if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: installing Debian's postgresql package for the tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  exit 0
fi
echo "ensure-postgres: no PostgreSQL server found. Install Debian's postgresql package" >&2
echo "  (sudo apt-get install -y postgresql), start a Docker engine, or set TEST_DATABASE_URL." >&2
exit 1
