#!/usr/bin/env bash
# Installs Debian's chromium for the headless-browser test of the HTML report
# (tests/html/mod.rs: `the_pages_render_in_a_headless_browser`, which skips without it).
# Needs root and the Debian package mirror; does nothing when chromium is already there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-chromium.sh: run as root (apt-get install chromium)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# fonts-liberation (chromium recommends it) sets the text; the other recommends are not needed.
apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
/usr/bin/chromium --version
