#!/usr/bin/env bash
# Installs the Debian packages qeval builds and tests with (as root, non-interactive); does
# nothing when they are all present. Used by the README's commands and by .ci/run. chromium and
# a font let test_report_html render the HTML report headless. Slurm and munge let test_slurm
# start a one-node cluster of its own (its config, key and ports; Debian's services are unused).
set -euo pipefail
pkgs="build-essential cmake pkg-config clang libclang-rt-14-dev libsqlite3-dev libcjson-dev libpcre2-dev
      libutf8proc-dev zlib1g-dev libopenblas-dev sqlite3 python3 python3-pip curl util-linux
      chromium fonts-dejavu-core"
optional="slurmctld slurmd slurm-client munge" # test_slurm only: where they cannot be installed, it skips
missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
missing_optional=$(for p in $optional; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
[ -z "$missing" ] && [ -z "$missing_optional" ] && exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
[ -z "$missing" ] || $sudo apt-get install -y -qq $missing >/dev/null
[ -z "$missing_optional" ] || $sudo apt-get install -y -qq $missing_optional >/dev/null ||
  echo "install_deps.sh: could not install $missing_optional; test_slurm will skip, saying so" >&2
