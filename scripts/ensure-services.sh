#!/usr/bin/env bash
# Make sure the loopback PostgreSQL and Redis the tests and the demo use are up.
# On these machines both are installed from Debian's packages; a fresh machine (CI) may have them
# stopped. Nothing here installs system packages: if a server is missing entirely, say so.
set -u
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
  fi
fi
if ! redis_up; then
  if command -v redis-server >/dev/null; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 30); do redis_up && break; sleep 0.2; done
  fi
fi
pg_up && echo "postgresql: up on 127.0.0.1:5432" || echo "postgresql: NOT available (tests that need it will fail)"
redis_up && echo "redis: up on 127.0.0.1:6379" || echo "redis: NOT available (tests that need it will fail)"
exit 0
