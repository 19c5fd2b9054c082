#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages named in LIST (one a line, '#' comments) in
# an image, without recommends, and drops the apt lists. With a MARKER, only
# the lines before the first line starting with it (the build stage takes
# the first part of scripts/packages.txt).
#   apt-install.sh LIST [MARKER]
set -eu
list=$1
marker=${2:-}
if [ -n "$marker" ]; then
	grep -q "^$marker" "$list" || { echo "apt-install: no '$marker' line in $list" >&2; exit 1; }
	sed "/^$marker/,\$d" "$list"
else
	cat "$list"
fi | sed -e 's/#.*//' -e '/^\s*$/d' >/tmp/apt-packages
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# an image build is all or nothing: no fsync per unpacked file
xargs apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-unsafe-io \
	</tmp/apt-packages >/dev/null
# apt-get update also writes ~80 MB of package caches: not for an image
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /tmp/apt-packages
