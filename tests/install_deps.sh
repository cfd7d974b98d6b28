#!/usr/bin/env bash
# Installs the Debian packages qeval builds and tests with (as root, non-interactive); does
# nothing when they are all present. Used by the README's commands and by .ci/run. chromium and
# a font let test_report_html render the HTML report headless.
set -euo pipefail
pkgs="build-essential cmake pkg-config clang libclang-rt-14-dev libsqlite3-dev libcjson-dev libpcre2-dev
      libutf8proc-dev zlib1g-dev libopenblas-dev sqlite3 python3 python3-pip curl util-linux
      chromium fonts-dejavu-core"
missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq $missing >/dev/null
