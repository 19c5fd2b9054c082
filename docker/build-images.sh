#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds fleetota's four images with buildah, no registry needed:
#   fleetota/ota-server, fleetota/tools, fleetota/broker, fleetota/postgres
# (and fleetota/build, the compile stage, kept as a build cache)
# (tag FLEETOTA_TAG, default latest), all from one base image.
#
#   docker/build-images.sh
#
# FLEETOTA_BASE_IMAGE  base of every stage. Default: localhost/fleetota-base:
#                      bookworm, made here when missing (or when
#                      FLEETOTA_BASE_REFRESH=1) with `mmdebstrap bookworm`
#                      from Debian's package mirrors + `podman import`.
#                      debian:bookworm-slim uses the official image instead.
# FLEETOTA_BUILD_ARGS  extra arguments for `buildah bud`
# FLEETOTA_CCACHE_DIR  a host directory for the compile step's ccache
#                      (the container test uses its cache's ccache/)
#
# buildah runs with --isolation chroot (works without user namespaces) and
# --layers (repeat builds reuse every step before the first changed file);
# --format docker keeps the HEALTHCHECKs. podman and buildah share
# CONTAINERS_STORAGE_CONF, so podman-compose finds the images.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
tag=${FLEETOTA_TAG:-latest}
base=${FLEETOTA_BASE_IMAGE:-localhost/fleetota-base:bookworm}

for tool in buildah podman; do
	command -v "$tool" >/dev/null || { echo "build-images: $tool is missing (scripts/install-deps.sh)" >&2; exit 2; }
done

if [[ $base == localhost/fleetota-base:* ]] &&
	{ [[ ${FLEETOTA_BASE_REFRESH:-0} == 1 ]] || ! podman image exists "$base"; }; then
	command -v mmdebstrap >/dev/null || { echo "build-images: mmdebstrap is missing" >&2; exit 2; }
	echo "build-images: making $base with mmdebstrap (Debian 12, minbase, no docs)"
	t0=$SECONDS
	# what debian:bookworm-slim leaves out, no recommends, and no fsync per
	# unpacked file (an image is made whole or not at all)
	mmdebstrap --quiet --variant=minbase --format=tar \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='force-unsafe-io' \
		--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
		bookworm - | podman import --quiet --change 'CMD ["bash"]' - "$base" >/dev/null
	echo "build-images: $base made in $((SECONDS - t0)) s"
fi

# FLEETOTA_CCACHE_DIR: a host directory the compile step uses as its ccache
# (mounted at /ccache while it runs; nothing of it lands in an image)
ccache_args=()
if [[ -n ${FLEETOTA_CCACHE_DIR:-} ]]; then
	mkdir -p "$FLEETOTA_CCACHE_DIR"
	ccache_args=(--volume "$FLEETOTA_CCACHE_DIR:/ccache")
fi

build() { # TARGET IMAGE-NAME (its status is buildah's: callers chain it with &&,
	# where set -e does not stop the function)
	local t0=$SECONDS ref=localhost/fleetota/$2:$tag
	# shellcheck disable=SC2086 # FLEETOTA_BUILD_ARGS is a list of words
	buildah bud --quiet --isolation chroot --layers --format docker \
		--build-arg BASE_IMAGE="$base" ${ccache_args[@]+"${ccache_args[@]}"} ${FLEETOTA_BUILD_ARGS:-} \
		-f "$top/docker/Dockerfile" --target "$1" -t "$ref" "$top" >/dev/null || return
	echo "build-images: $ref built in $((SECONDS - t0)) s" \
		"($(podman image inspect --format '{{.Size}}' "$ref" | numfmt --to=si)B)"
}
# two at a time: the images without C sources (postgres, broker) beside the
# chain that compiles
{ build postgres postgres && build broker broker; } &
pid=$!
# The build stage is tagged too (fleetota/build): an untagged last layer
# would be dangling, and `podman image prune` would drop the compile cache.
build server ota-server && build build build && build tools tools || status=$?
wait "$pid" || status=$?
exit "${status:-0}"
