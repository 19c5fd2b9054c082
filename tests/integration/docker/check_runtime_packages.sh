#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The container runtime stages install scripts/packages-runtime.txt and
# nothing else: every shared library a built binary asks for (DT_NEEDED)
# must come from a package on that list, or the image would not start.
# Also checks that the Dockerfile installs through the two package lists.
set -euo pipefail
top=$(cd "$(dirname "$0")/../../.." && pwd)
list="$top/scripts/packages-runtime.txt"
mapfile -t allowed < <(grep -v '^\s*#' "$list" | sed '/^\s*$/d')
status=0
declare -A owner # library path -> package (the binaries share most libraries)
for bin in "$@"; do
	[[ -x "$bin" ]] || { echo "FAIL: $bin is not a built executable"; exit 1; }
	resolved=$(ldd "$bin")
	while read -r lib; do
		path=$(awk -v l="$lib" '$1 == l {print $3}' <<<"$resolved")
		# sanitizer runtimes belong to the test build, not to the image
		case "$lib" in libasan.so* | libubsan.so*) continue ;; esac
		[[ -n "$path" ]] || { echo "FAIL: $bin: $lib not found by ldd"; status=1; continue; }
		real=$(readlink -f "$path")
		if [[ -z "${owner[$real]+set}" ]]; then
			pkg=$(dpkg -S "$real" 2>/dev/null || dpkg -S "$path" 2>/dev/null || true)
			owner[$real]=${pkg%%:*}
		fi
		pkg=${owner[$real]}
		if [[ -z "$pkg" ]]; then
			echo "FAIL: $bin: $lib ($real) belongs to no Debian package"
			status=1
		elif ! printf '%s\n' "${allowed[@]}" | grep -qx "$pkg"; then
			echo "FAIL: $bin needs $lib from $pkg, which is not in scripts/packages-runtime.txt"
			status=1
		fi
	done < <(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
	echo "checked $(basename "$bin")"
done
grep -q "packages.txt '# ---- end of the build stage'" "$top/docker/Dockerfile" && grep -q "^# ---- end of the build stage" "$top/scripts/packages.txt" || { echo "FAIL: Dockerfile does not install the build part of scripts/packages.txt"; status=1; }
grep -q 'packages-runtime.txt' "$top/docker/Dockerfile" || { echo "FAIL: Dockerfile does not use scripts/packages-runtime.txt"; status=1; }
grep -q '^USER ota' "$top/docker/Dockerfile" || { echo "FAIL: server image does not drop root"; status=1; }
exit $status
