#!/usr/bin/env bash
# Installs what mnnvl-ar builds with, if any of it is missing: the Debian 12 packages (as root with apt-get;
# otherwise it prints the exact line to run and exits 1), then the Python package's build and test tools from
# PyPI (nanobind, scikit-build-core, NumPy, ml_dtypes, pytest, matplotlib) into .venv, which the CMake configure finds.
# The CUDA toolkit is optional and not installed here.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
packages=(cmake ninja-build g++ libboost-program-options-dev libboost-dev libeigen3-dev catch2
          nlohmann-json3-dev libfmt-dev libssl-dev python3-venv python3-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
else
  line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: run as root:  sudo sh -c '$line'" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive sh -c "$line"
fi

# Debian's pip installs nothing system-wide (PEP 668): the Python tools live in the project's own .venv.
python_tools=("nanobind>=2.0" "scikit-build-core>=0.10" "numpy>=1.24" "ml_dtypes>=0.3" "pytest>=7" "matplotlib>=3.6")
if [ ! -x "$root/.venv/bin/python3" ]; then
  echo "install-deps: making .venv"
  python3 -m venv "$root/.venv"
fi
if "$root/.venv/bin/python3" -c "import nanobind, scikit_build_core, numpy, ml_dtypes, pytest, matplotlib" 2>/dev/null; then
  echo "install-deps: .venv has the Python tools"
else
  echo "install-deps: installing ${python_tools[*]} into .venv"
  "$root/.venv/bin/pip" install --quiet --disable-pip-version-check "${python_tools[@]}"
fi
