#!/usr/bin/env bash
# make up | down | logs | smoke for docker-compose.otel.yml (docs/monitoring/setup.md).
# `up` returns only when the stack is healthy: compose healthchecks where the image has a shell,
# and, for the images without one (collector, Tempo, Loki), their health endpoints probed from
# the Prometheus container, which has wget.
set -euo pipefail
cd "$(dirname "$0")/../.."

FILE=docker-compose.otel.yml
ENV_FILE=var/stack.env
UP_TIMEOUT_S=${UP_TIMEOUT_S:-300}
DOCS=docs/monitoring/setup.md

die() { printf '%s\n' "$*" >&2; exit 1; }

compose_cmd() {
  if docker compose version >/dev/null 2>&1; then echo "docker compose"
  elif command -v docker-compose >/dev/null 2>&1; then echo "docker-compose"
  else return 1; fi
}

need_docker() {
  if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    die "make $1: no Docker engine here (docker info failed), so the stack cannot start.
  Run the stack's binaries directly instead (Prometheus, Alertmanager, the exporters and the
  canary come as packages or with this repository): see $DOCS, section \"Without Docker\"."
  fi
  COMPOSE=$(compose_cmd) || die "make $1: neither 'docker compose' nor 'docker-compose' found; see $DOCS"
}

# Secrets: from the environment, else generated once into var/stack.env (never admin/admin).
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
ensure_env() {
  mkdir -p var
  touch "$ENV_FILE"; chmod 600 "$ENV_FILE"
  local name generated=""
  for name in GRAFANA_ADMIN_PASSWORD TRAWL_ADMIN_API_KEY TRAWL_SECRET_KEY POSTGRES_PASSWORD; do
    if [ -n "${!name:-}" ]; then
      sed -i "/^$name=/d" "$ENV_FILE"; echo "$name=${!name}" >> "$ENV_FILE"
    elif ! grep -q "^$name=" "$ENV_FILE"; then
      echo "$name=$(secret)" >> "$ENV_FILE"; generated="$generated $name"
    fi
  done
  for name in GRAFANA_PORT GRAFANA_ADMIN_USER GRAFANA_ROOT_URL TRAWL_ENVIRONMENT PROMETHEUS_RETENTION \
              TEMPO_RETENTION LOKI_RETENTION TRAWL_RUNBOOK_BASE_URL $(compgen -v ALERTMANAGER_ || true); do
    if [ -n "${!name:-}" ]; then
      sed -i "/^$name=/d" "$ENV_FILE"; printf '%s=%s\n' "$name" "${!name}" >> "$ENV_FILE"
    fi
  done
  if [ -n "$generated" ]; then
    echo "Generated (unset in the environment) and kept in $ENV_FILE:$generated"
  fi
}

# Alertmanager runs var/alertmanager: the committed config with the receivers whose secrets are
# set (ALERTMANAGER_*, in the environment or var/stack.env), the local alert-sink for the others.
render_alertmanager() {
  local py=${PY:-.venv/bin/python}
  [ -x "$py" ] || py=python3
  "$py" -c 'import yaml' 2>/dev/null || die "make up: PyYAML is needed to render the Alertmanager config (make install)"
  "$py" grafana/alertmanager/render.py var/alertmanager --env-file "$ENV_FILE"
}

compose() { $COMPOSE --env-file "$ENV_FILE" -f "$FILE" "$@"; }

# status of one service's container: healthy, starting, unhealthy, running (no healthcheck), ...
state() {
  local id; id=$(compose ps -q "$1" 2>/dev/null | head -n1)
  [ -n "$id" ] || { echo missing; return; }
  docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id"
}

probe() { compose exec -T prometheus wget -q -O /dev/null -T 3 "$1" >/dev/null 2>&1; }

wait_healthy() {
  local deadline=$((SECONDS + UP_TIMEOUT_S)) pending s
  local with_check=(postgres redis api worker prometheus alertmanager alert-sink grafana canary)
  local probed=("otel-collector http://otel-collector:13133/" "tempo http://tempo:3200/ready" "loki http://loki:3100/ready")
  while :; do
    pending=""
    for s in "${with_check[@]}"; do
      [ "$(state "$s")" = healthy ] || pending="$pending $s($(state "$s"))"
    done
    for entry in "${probed[@]}"; do
      set -- $entry
      probe "$2" || pending="$pending $1(probe)"
    done
    [ -z "$pending" ] && return 0
    [ $SECONDS -ge $deadline ] && die "stack not healthy after ${UP_TIMEOUT_S}s:$pending
  make logs shows why; $DOCS has a troubleshooting section."
    sleep 3
  done
}

grafana_url() {
  local port; port=$(grep '^GRAFANA_PORT=' "$ENV_FILE" | cut -d= -f2); echo "http://localhost:${port:-3000}"
}

case "${1:-}" in
  up)
    need_docker up; ensure_env; render_alertmanager
    profiles=(); [ "${DEMO:-0}" = 1 ] && profiles=(--profile demo)
    compose "${profiles[@]}" up -d --build
    echo "waiting for the stack to be healthy (up to ${UP_TIMEOUT_S}s)..."
    wait_healthy
    echo "Stack healthy. Grafana: $(grafana_url)  (user ${GRAFANA_ADMIN_USER:-admin}, password in $ENV_FILE: GRAFANA_ADMIN_PASSWORD)"
    ;;
  down) need_docker down; ensure_env; compose --profile demo --profile tools down ;;
  logs) need_docker logs; ensure_env; compose logs -f --tail=200 ;;
  smoke) need_docker smoke; ensure_env; compose --profile tools run --rm smoke ;;
  *) die "usage: $0 up|down|logs|smoke" ;;
esac
