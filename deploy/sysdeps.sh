#!/usr/bin/env bash
# System packages some tests use (Debian): promtool (alert-rule unit tests), prometheus and
# prometheus-alertmanager (the monitoring tests). Installed with apt-get when missing and we are
# root; elsewhere the tests that need them say so and skip. Idempotent; never fails the build.
set -uo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${need[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
        >/dev/null 2>&1 || echo "sysdeps: apt-get install ${need[*]} failed; the tests that need them skip"
    # the packages' own daemons are not wanted: tests start their own on free ports
    for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
        command -v service >/dev/null 2>&1 && service "$svc" stop >/dev/null 2>&1 || true
    done
else
    echo "sysdeps: ${need[*]} not installed (not root or no apt-get); the tests that need them skip"
fi
exit 0
