#!/usr/bin/env bash
# Debian packages some tests need: a real SLURM cluster (slurmctld, slurmd, slurm-client,
# munge) and headless Chromium (the report check). Installs the missing ones with apt-get when
# run as root (CI, containers) or with password-less sudo; otherwise says which are missing:
# the tests that need them then skip with that reason.
set -euo pipefail
PACKAGES=(slurmctld slurmd slurm-client munge chromium)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" > /dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
    SUDO=(sudo -n)
else
    echo "note: Debian packages ${missing[*]} are not installed and this user cannot install" \
        "them; the SLURM and browser tests will skip (as root: $0)" >&2
    exit 0
fi
echo "== apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
