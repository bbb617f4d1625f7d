#!/usr/bin/env bash
# Build every image of the compose stack into the local Docker engine, from nothing
# an image registry serves: a Debian base made by debootstrap and `docker import`,
# then ordinary Dockerfiles (images/) FROM it. Run by `make compose-images`.
#
# The context is assembled in .cache/compose/context: the machine's CA bundle (apt
# and pip inside the builds pass the same intercepting proxy as the host), the
# schedobs wheel built from the working tree and its dependency list, the examples,
# the Collector binary (`make collector`) and VictoriaMetrics (`make test` fetches it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache="$root/.cache/compose"
python=${PYTHON:-$root/.venv/bin/python}
docker=${DOCKER:-docker}
# The Debian mirror this machine's apt sources use, unless DEBIAN_MIRROR names another.
mirror=${DEBIAN_MIRROR:-$("$root/tools/debian-mirror.sh")}
# The Phoenix release the stack was tested with (a trace backend with a UI).
phoenix_version=${PHOENIX_VERSION:-$(cat "$here/images/PHOENIX_VERSION")}

if ! "$docker" image inspect schedobs/rootfs:bookworm >/dev/null 2>&1; then
  echo "base: debootstrap --variant=minbase bookworm (about 30 s)"
  rm -rf "$cache/rootfs"
  mkdir -p "$cache"
  debootstrap --variant=minbase bookworm "$cache/rootfs" "$mirror" >"$cache/debootstrap.log"
  tar -C "$cache/rootfs" -c . | "$docker" import - schedobs/rootfs:bookworm >/dev/null
  rm -rf "$cache/rootfs"
fi

ctx="$cache/context"
rm -rf "$ctx"
mkdir -p "$ctx/wheels"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
"$python" -m pip wheel -q --no-deps -w "$ctx/wheels" "$root"
# The dependencies get a layer of their own, cached while pyproject.toml's do not change.
"$python" - "$root/pyproject.toml" >"$ctx/requirements.txt" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["celery"]))
PY
mkdir -p "$ctx/examples"
cp -r "$root/examples/celery" "$root/examples/two_zones_service.py" "$ctx/examples/"
find "$ctx/examples" -name __pycache__ -prune -exec rm -rf {} +
cp "$root/.cache/otelcol" "$ctx/otelcol"
cp "$root/.cache/victoria-metrics/root/usr/bin/victoria-metrics" "$ctx/victoria-metrics"

for image in base python collector prometheus victoria-metrics redis phoenix; do
  echo "image schedobs/$image:bookworm"
  "$docker" build -q --build-arg "PHOENIX_VERSION=$phoenix_version" \
    -t "schedobs/$image:bookworm" -f "$here/images/$image.Dockerfile" "$ctx" >/dev/null
done
