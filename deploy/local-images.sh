#!/usr/bin/env bash
# Local stand-ins for the upstream images docker-compose.yml uses, built from Debian packages, for
# machines that reach Debian's mirror and the Python package index but no image registry.
#
#   sudo deploy/local-images.sh            # builds local/base, local/redis, local/postgres,
#                                          # local/prometheus, local/alertmanager (Grafana: no package)
#   set -a; . deploy/local-images.env; set +a   # then docker compose uses them (BASE_IMAGE, *_IMAGE)
#
# Needs: root, a running Docker engine, debootstrap (apt-get install docker.io docker-compose debootstrap).
# The base is a debootstrap'ed Debian bookworm (minbase + python3, venv, pip, CA certificates), with the
# host's CA bundle copied in and SSL_CERT_FILE/PIP_CERT pointing at it, so `pip` inside a build reaches the
# package index through the same TLS setup as the host. Builds use --network host.
# Each image is built only when missing (FORCE=1 rebuilds). docs/deploy.md describes the procedure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUITE="${SUITE:-bookworm}"
# the mirror apt is configured with (deb822 sources first, then the one-line format)
MIRROR="${MIRROR:-$(grep -hs '^URIs:' /etc/apt/sources.list.d/debian.sources | awk '{print $2}' | head -1)}"
MIRROR="${MIRROR:-$(grep -hs '^deb .*debian' /etc/apt/sources.list | awk '{print $2}' | head -1)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
ROOTFS="${ROOTFS:-/var/tmp/lighter-stack-rootfs-$SUITE}"
HOST_CA="${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}"
DOCKER="${DOCKER:-docker}"

have() { [ -z "${FORCE:-}" ] && $DOCKER image inspect "$1" >/dev/null 2>&1; }

if have local/base; then
  echo "local/base: present"
else
  if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
    echo "debootstrap $SUITE from $MIRROR into $ROOTFS (about a minute)"
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
      "$SUITE" "$ROOTFS" "$MIRROR"
  fi
  # the same mirror inside the images, and the host's CA bundle (TLS through the host's setup)
  echo "deb $MIRROR $SUITE main" > "$ROOTFS/etc/apt/sources.list"
  install -D -m 0644 "$HOST_CA" "$ROOTFS/usr/local/share/host-ca/ca-certificates.crt"
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  tar -C "$ROOTFS" -c . | $DOCKER import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/usr/local/share/host-ca/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/usr/local/share/host-ca/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - local/base
fi

for name in redis postgres prometheus alertmanager; do
  if have "local/$name"; then
    echo "local/$name: present"
  else
    $DOCKER build --network host -t "local/$name" -f "$HERE/local-images/$name.Dockerfile" "$HERE/local-images"
  fi
done

cat > "$HERE/local-images.env" <<ENV
# written by deploy/local-images.sh: the compose file's images -> the local stand-ins
BASE_IMAGE=local/base
REDIS_IMAGE=local/redis
POSTGRES_IMAGE=local/postgres
PROMETHEUS_IMAGE=local/prometheus
ALERTMANAGER_IMAGE=local/alertmanager
ENV
$DOCKER image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^local/'
