#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages of scripts/packages.txt that are missing.
# A warm machine (everything installed) does no apt work at all.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t wanted < <(grep -v '^\s*#' "$here/packages.txt" | sed '/^\s*$/d')
# one dpkg-query for the whole list (it names each package it knows; one it
# does not know is missing too)
declare -A installed=()
while read -r pkg status; do
	[[ $status == "install ok installed" ]] && installed[$pkg]=1
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${wanted[@]}" 2>/dev/null || true)
missing=()
for pkg in "${wanted[@]}"; do
	[[ -n ${installed[$pkg]:-} ]] || missing+=("$pkg")
done
# npm ships inside some nodejs builds and conflicts with Debian's npm there:
# ask for the package only when the command is absent.
command -v npm >/dev/null 2>&1 || missing+=(npm)
# netavark (podman's networks, the container test) runs iptables, which
# podman only Suggests: without it every container fails to start with
# "netavark: No such file or directory". Asked for here, not in packages.txt:
# docker/Dockerfile copies that list into its build stage, and a change to
# it rebuilds the images from a cold cache.
[[ -x /usr/sbin/iptables ]] || missing+=(iptables)
if ((${#missing[@]} == 0)); then
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) != 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts some daemons on install (nginx, mosquitto) when it can; the
# project starts its own private instances on loopback, so leave those alone.
echo "install-deps: done"
