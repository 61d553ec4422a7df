#!/usr/bin/env bash
# Make sure an nginx binary is here for the router benchmark's peer (bench/router.py).
# Idempotent: does nothing when nginx is already on PATH or in /usr/sbin. Otherwise installs
# Debian's package. On Debian 12 `nginx` is the binary package (split_clients + mirror are
# built in); `nginx-light` there is only a metapackage over it plus the echo module, so we ask
# for `nginx` and fall back to `nginx-light` where only that exists.
# The benchmark starts its own nginx with its own config; the system service is never started:
# a policy-rc.d that refuses service starts is in place for the install (Debian's way).
set -euo pipefail

find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }

if found=$(find_nginx); then
  echo "nginx: already installed at $found ($("$found" -v 2>&1)); nothing to do"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null; then
  as_root() { sudo "$@"; }
else
  echo "nginx: missing, and neither root nor sudo is available to install it" >&2
  exit 1
fi

package=""
for candidate in nginx nginx-light; do
  if apt-cache show "$candidate" >/dev/null 2>&1; then package=$candidate; break; fi
done
if [ -z "$package" ]; then
  echo "nginx: running apt-get update (no nginx package known to apt yet)"
  as_root apt-get update -qq
  for candidate in nginx nginx-light; do
    if apt-cache show "$candidate" >/dev/null 2>&1; then package=$candidate; break; fi
  done
fi
if [ -z "$package" ]; then
  echo "nginx: neither 'nginx' nor 'nginx-light' is known to apt here" >&2
  exit 1
fi

# Keep the package's postinst from starting the system nginx (it would take port 80).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
  trap 'as_root rm -f "$policy"' EXIT
  echo "nginx: temporary $policy in place so the service is not started"
fi

echo "nginx: installing Debian package '$package' (apt-get install -y --no-install-recommends)"
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package"

found=$(find_nginx) || { echo "nginx: installed '$package' but no nginx binary found" >&2; exit 1; }
echo "nginx: installed $found ($("$found" -v 2>&1)); system service not started"
