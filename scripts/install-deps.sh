#!/usr/bin/env bash
# Installs the Debian 12 packages mnnvl-ar builds with, if any are missing. As root it runs apt-get; otherwise
# it prints the exact line to run and exits 1. The CUDA toolkit is optional and not installed here.
set -euo pipefail
packages=(cmake ninja-build g++ libboost-program-options-dev libboost-dev libeigen3-dev catch2
          nlohmann-json3-dev libfmt-dev libssl-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root:  sudo sh -c '$line'" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
DEBIAN_FRONTEND=noninteractive sh -c "$line"
