#!/usr/bin/env bash
# Make sure the test suite has what it needs: PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 and
# Chromium for the browser tests, GNU gettext for the translation-catalog test (makemessages). Uses running servers when they answer; otherwise starts local ones from
# installed binaries; otherwise says exactly what to install.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PG_PORT=${SYNSTAR_PG_PORT:-5432}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }

if answers "$PG_PORT"; then
  echo "PostgreSQL: using the server on 127.0.0.1:$PG_PORT"
else
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$bindir" ] || bindir=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/x)")
  if [ ! -x "$bindir/pg_ctl" ]; then
    echo "PostgreSQL is not running on 127.0.0.1:$PG_PORT and no server is installed." >&2
    echo "Install it (Debian/Ubuntu: apt-get install postgresql) or start one, then run make test again." >&2
    exit 1
  fi
  data=${SYNSTAR_PGDATA:-/tmp/synstar-pgdata}
  run=()
  if [ "$(id -u)" = 0 ]; then run=(runuser -u postgres --); mkdir -p "$data"; chown postgres "$data"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    "${run[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust >/dev/null
  fi
  echo "PostgreSQL: starting a local server from $bindir (data in $data)"
  "${run[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k /tmp -c fsync=off" start >/dev/null
fi

if answers 6379; then
  echo "Redis: using the server on 127.0.0.1:6379"
elif command -v redis-server >/dev/null; then
  echo "Redis: starting a local server"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 50); do answers 6379 && break; sleep 0.1; done
else
  echo "Redis is not running on 127.0.0.1:6379 and redis-server is not installed." >&2
  echo "Install it (Debian/Ubuntu: apt-get install redis-server) or start one, then run make test again." >&2
  exit 1
fi

if command -v chromium >/dev/null; then
  echo "Chromium: $(command -v chromium)"
else
  echo "Chromium: installing Debian's chromium for the browser tests"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; then
    as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || {
      echo "Could not install Chromium. Install it (apt-get install chromium) and run make test again." >&2
      exit 1
    }
  fi
fi

if command -v xgettext >/dev/null; then
  echo "gettext: $(command -v xgettext)"
else
  echo "gettext: installing Debian's gettext for the catalog test (makemessages)"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q gettext >/dev/null; then
    as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q gettext >/dev/null || {
      echo "Could not install gettext. Install it (apt-get install gettext) and run make test again." >&2
      exit 1
    }
  fi
fi

# A CJK font, so that screenshots of the console in Chinese show characters rather than empty boxes.
if fc-list :lang=zh 2>/dev/null | grep -q .; then
  echo "CJK font: $(fc-list :lang=zh family | head -n 1)"
else
  echo "CJK font: installing Debian's fonts-wqy-microhei for the Chinese screenshots"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-wqy-microhei >/dev/null; then
    as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-wqy-microhei >/dev/null || {
      echo "Could not install a CJK font (apt-get install fonts-wqy-microhei); Chinese screenshots will show boxes." >&2
    }
  fi
fi
