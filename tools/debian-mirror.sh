#!/usr/bin/env bash
# Print the Debian mirror this machine's own apt sources use (deb822 `.sources` files or
# one-line `.list` entries), the security archive left out. The Makefile and the compose
# image build fetch from it, so that the repository itself names no package host.
set -euo pipefail
shopt -s nullglob
{
  for f in /etc/apt/sources.list.d/*.sources; do
    awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '/^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; break } }' "$f"
  done
} | grep -v -- '-security' | grep -v '/debian-security' | head -n 1 | grep . || {
  echo "no Debian mirror in /etc/apt/sources.list{,.d}: set DEBIAN_MIRROR" >&2
  exit 1
}
