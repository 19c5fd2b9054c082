#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent core, built and linked for a Cortex-M4 with arm-none-eabi-gcc
# and newlib, with the stub port of agent/port/mcu: proof that the core is
# portable (no OS calls, no heap, C17 without GNU extensions). Links with
# -nostdlib and only newlib's libc (for memcpy and friends) and libgcc: a
# call of an OS function or of the C library's allocator or stdio anywhere
# in the core is an undefined symbol, and the build fails. Prints the
# sizes.
#
#   scripts/mcu-build.sh [OUT_DIR]     (default build-mcu; make mcu)
#
# protobuf-c's runtime is compiled from Debian's source package of the
# version the host uses (apt-get source into OUT_DIR, not committed).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build-mcu}
[[ $out = /* ]] || out=$top/$out
mkdir -p "$out/obj"
CC=arm-none-eabi-gcc
command -v $CC >/dev/null || { echo "mcu-build: $CC missing (bash scripts/install-deps.sh)" >&2; exit 1; }

# A Debian source package unpacked into $out/src, once: prints its directory.
source_pkg() { # DIR_GLOB SOURCE_SPEC
	local dir
	dir=$(ls -d "$out"/src/$1/ 2>/dev/null | head -1 || true)
	if [[ -z "$dir" ]]; then
		echo "mcu-build: fetching Debian's $2 source" >&2
		local apt=$out/apt
		mkdir -p "$apt/lists/partial" "$apt/parts" "$out/src"
		cat >"$apt/parts/src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
		local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/parts"
			-o "Dir::State::Lists=$apt/lists" -o Debug::NoDropPrivs=1
			-o APT::Sandbox::User=root)
		apt-get "${opts[@]}" update -qq >&2
		(cd "$out/src" && apt-get "${opts[@]}" source -qq "$2" >/dev/null)
		dir=$(ls -d "$out"/src/$1/ | head -1)
	fi
	echo "$dir"
}

# protobuf-c's runtime source, of the version the host uses
pbc=$(source_pkg 'protobuf-c-*' "protobuf-c=$(dpkg-query -W -f='${source:Version}' libprotobuf-c-dev)")
# zstd's decoder (the delta applier of agent/src/delta.c), from Debian
# bookworm's source package (the frame format is stable: any 1.5 decoder
# reads what the host's encoder writes; the host's version may be a
# security update the mirror's source pool lacks); only lib/common and
# lib/decompress, without the x86 assembly
zsrc=$(source_pkg 'libzstd-*' libzstd)

protoc-c --proto_path="$top/proto" --c_out="$out" "$top/proto/ota.proto"

arch=(-mcpu=cortex-m4 -mthumb -mfloat-abi=soft)
common=("${arch[@]}" -Os -ffunction-sections -fdata-sections -ffreestanding -DNDEBUG
	-D_POSIX_C_SOURCE=200809L # as meson: strnlen, a pure function newlib has
	-I"$top/proto/include" -I"$top/agent/include" -I"$top/agent/port/mcu" -I"$out" -I"$pbc"
	-I"$zsrc/lib")
ours=(-std=c17 -Wall -Wextra -Werror -Wpedantic -Wno-missing-field-initializers)

core=()
for f in "$top"/proto/src/*.c; do
	case $(basename "$f") in crypto_openssl.c | gcm_openssl.c | crypt_openssl.c | sign.c) continue ;; esac # host side
	core+=("$f")
done
core+=("$top"/agent/src/*.c)
port=("$top"/agent/port/mcu/*.c)

objs_core=() objs_port=() objs_pb=()
compile() { # group file flags...
	local group=$1 f=$2 o
	shift 2
	o=$out/obj/$(basename "${f%.c}").o
	$CC "${common[@]}" "$@" -c "$f" -o "$o"
	case $group in core) objs_core+=("$o") ;; port) objs_port+=("$o") ;; *) objs_pb+=("$o") ;; esac
}
for f in "${core[@]}"; do compile core "$f" "${ours[@]}"; done
for f in "${port[@]}"; do compile port "$f" "${ours[@]}"; done
compile pb "$out/ota.pb-c.c" -w
compile pb "$pbc/protobuf-c/protobuf-c.c" -w
for f in "$zsrc"/lib/common/{entropy_common,error_private,fse_decompress,xxhash,zstd_common}.c \
	"$zsrc"/lib/decompress/{huf_decompress,zstd_ddict,zstd_decompress,zstd_decompress_block}.c; do
	compile pb "$f" -w -DZSTD_DISABLE_ASM -DZSTD_LEGACY_SUPPORT=0 -DDEBUGLEVEL=0
done

$CC "${arch[@]}" -nostdlib -T "$top/agent/port/mcu/cortex-m.ld" -Wl,--gc-sections \
	-Wl,-Map="$out/ota-agent-mcu.map" -o "$out/ota-agent-mcu.elf" \
	"${objs_core[@]}" "${objs_port[@]}" "${objs_pb[@]}" -lc -lgcc

# nothing of an OS, the C library's heap or stdio came in
if arm-none-eabi-nm "$out/ota-agent-mcu.elf" | grep -E ' [TtU] (_sbrk|_write|_read|_open|_close|_fstat|_isatty|_lseek|_kill|_getpid|_exit|printf|fprintf|_malloc_r|abort)$'; then
	echo "mcu-build: the core pulled in an OS or C library service (above)" >&2
	exit 1
fi

echo "mcu-build: $out/ota-agent-mcu.elf (Cortex-M4, thumb, -Os, gc-sections)"
sizes() { arm-none-eabi-size -t "$@" | tail -1 | awk '{printf "text %6d  data %5d  bss %7d", $1, $2, $3}'; }
echo "  agent core + trust code : $(sizes "${objs_core[@]}")   (objects, before gc)"
echo "  protobuf-c, pb, zstd dec: $(sizes "${objs_pb[@]}")   (objects, before gc)"
echo "  stub port               : $(sizes "${objs_port[@]}")"
work=$(($(sed -n 's/^#define OTA_AGENT_WORK_BYTES (\(.*\))$/\1/p' "$top/agent/include/fleetota/agent-limits.h" | tr -d u)))
arm-none-eabi-size "$out/ota-agent-mcu.elf" | tail -1 |
	awk -v work="$work" '{printf "  linked firmware         : text %6d  data %5d  bss %7d  (bss: the %d-byte work area of the core, that of the online policy and the stub flash)\n", $1, $2, $3, work}'
echo "  from newlib: $(grep -o 'libc\.a(lib_a-[a-z_]*\.o)' "$out/ota-agent-mcu.map" | sort -u |
	sed 's/.*lib_a-\(.*\)\.o)/\1/' | tr '\n' ' ')"
