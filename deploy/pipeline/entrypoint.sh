#!/bin/sh
# cron starts its jobs with an empty environment: hand the container's settings and secrets to
# Meltano through /project/.env, which Meltano reads on every run (the file stays inside the
# container, mode 600).
set -eu
umask 077
env | grep -E '^(TAP_PIPEDRIVE_|TARGET_PIPEBOARD_POSTGRES_|MELTANO_)' >/project/.env || true
if [ "${1:-}" = "cron" ]; then
  echo "pipeboard: running the schedules of meltano.yml:"
  crontab -l | grep -v '^#'
fi
exec "$@"
