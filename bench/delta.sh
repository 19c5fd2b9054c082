# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# The delta part of bench/run.sh (sourced; uses its make_keys, report, calc,
# now, $T, $top, $agent, $keys). For each pair (base -> new image):
#   ours      `ota-keys sign --base` (make: includes signing and the maker's
#             own check that the device's applier rebuilds the image) and
#             `ota-agent install` of the delta bundle on a device running the
#             base, against `ota-agent install` of the full bundle
#   anchors   Debian's bsdiff/bspatch and xdelta3 (-9) on the same pair, and
#             the full image compressed by zstd -19 --long (what a plain
#             compressed download would cost)
# Peak memory is the peak RSS (/usr/bin/time %M) of the applying process;
# ota-agent's includes its own baseline (OpenSSL, the 1 MiB work area), so
# the full install's peak is printed next to it.
#
# Ours runs with the default matcher (`--delta-matcher auto`: zstd's own
# for the agent pair, the index matcher for the rootfs pair, whose base is
# above 16 MiB); BENCH_DELTA_BOTH=1 also makes the delta with the other one
# (on the rootfs pair zstd's matcher takes minutes: it indexes the whole
# base again for every 1 MiB frame).
#
# Pairs:
#   agent    two release builds of ota-agent: this tree's and that of commit
#            BENCH_DELTA_OLD (default 82e71ab2d13c, 40 commits before issue 15), built once from
#            `git archive` into bench/cache/agent-COMMIT
#   rootfs   two Debian bookworm minbase trees made by mmdebstrap (the new
#            one with a few packages added), as ext4 images made by
#            mke2fs -d; cached in bench/cache/rootfs (the first run needs the
#            network and a few minutes); only with BENCH_DELTA_PAIRS="agent rootfs"
#            (bsdiff needs about 4 GiB of RAM and minutes on this pair)
# Apply: BENCH_DELTA_REPS (3) full and delta installs each, interleaved
# ABBA, the median time and the largest peak RSS.
# Knobs: BENCH_DELTA_PAIRS ("agent"; "agent rootfs" adds the rootfs pair,
#        minutes of mmdebstrap the first time and of delta making each time), BENCH_DELTA_OLD, BENCH_DELTA_ROOTFS_MB
#        (image size, 240), BENCH_DELTA_BUILD_S (time bound of each build, 900),
#        BENCH_DELTA_LEVEL (zstd level of ota-keys sign --base, 19),
#        BENCH_DELTA_BOTH (0; 1 adds the other matcher's row; zstd's
#        matcher on the rootfs pair runs at level 3 and takes minutes)

delta_cache=$top/bench/cache
delta_bound=${BENCH_DELTA_BUILD_S:-900}

# Wall seconds and peak RSS (KiB) of a command: "SECONDS KIB"; its CPU
# seconds (user + system) stay in OUT_FILE.time for delta_cpu.
delta_measure() { # OUT_FILE CMD...
	local out=$1
	shift
	/usr/bin/time -f '%e %M %U %S' -o "$out.time" "$@" >"$out.log" 2>&1 || {
		echo "bench: delta: failed: $*" >&2
		tail -5 "$out.log" >&2
		return 1
	}
	cut -d' ' -f1-2 "$out.time"
}
delta_cpu() { awk '{ print $3 + $4 }' "$1.time"; } # OUT_FILE

delta_pair_agent() { # DIR: writes DIR/base DIR/new
	local old commit dir
	old=${BENCH_DELTA_OLD:-82e71ab2d13c}
	commit=$(git -C "$top" rev-parse --short=12 "$old")
	dir=$delta_cache/agent-$commit
	if [[ ! -x $dir/build/agent/ota-agent ]]; then
		echo "bench: delta: building ota-agent of $commit into $dir (once)" >&2
		rm -rf "$dir"
		mkdir -p "$dir/src"
		git -C "$top" archive "$commit" | tar -x -C "$dir/src"
		(cd "$dir/src" && timeout "$delta_bound" meson setup "$dir/build" --buildtype=release \
			-Dserver=false >/dev/null && timeout "$delta_bound" ninja -C "$dir/build" \
			agent/ota-agent >/dev/null) || {
			echo "bench: delta: could not build ota-agent of $commit" >&2
			return 1
		}
	fi
	cp "$dir/build/agent/ota-agent" "$1/base"
	cp "$agent" "$1/new"
	echo "ota-agent $commit -> this tree"
}

delta_rootfs_tree() { # NAME INCLUDE
	local d=$delta_cache/rootfs
	mkdir -p "$d"
	[[ -d $d/$1 ]] && return 0
	echo "bench: delta: mmdebstrap bookworm minbase $1 ${2:+(+ $2)} into $d (once)" >&2
	SOURCE_DATE_EPOCH=1700000000 timeout "$delta_bound" mmdebstrap --variant=minbase \
		--mode=root ${2:+--include=$2} bookworm "$d/$1.tmp" http://deb.debian.org/debian \
		>"$d/$1.log" 2>&1 || {
		echo "bench: delta: mmdebstrap failed (log: $d/$1.log)" >&2
		rm -rf "$d/$1.tmp"
		return 1
	}
	mv "$d/$1.tmp" "$d/$1"
}

delta_pair_rootfs() { # DIR
	local mb=${BENCH_DELTA_ROOTFS_MB:-240} name
	delta_rootfs_tree base "" || return 1
	delta_rootfs_tree new "less,nano,netbase,procps" || return 1
	for name in base new; do
		# fixed UUID and hash seed, the build time as every timestamp:
		# two runs make the same image
		E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -t ext4 -d "$delta_cache/rootfs/$name" \
			-U 6f1c3b3e-4f7a-4f55-9b51-0a7c6d1e2f30 \
			-E hash_seed=1e0c3b3e-4f7a-4f55-9b51-0a7c6d1e2f30,root_owner=0:0 \
			"$1/$name" "${mb}M" >/dev/null || return 1
	done
	echo "rootfs ext4 ${mb} MiB: bookworm minbase -> + less nano netbase procps"
}

delta_device() { # DIR BASE_BUNDLE: a device running the base
	rm -rf "$1/state"
	cat >"$1/agent.conf" <<CONF
state_dir = $1/state
device_id = bench-delta
model = bench
hw_revision = A
slot_size = $(( $(stat -c %s "$1/base") + $(stat -c %s "$1/new") + 1048576 ))
CONF
	"$agent" provision --config "$1/agent.conf" --rootlist "$T/keys/roots/rootlist-1.signed" \
		--keylist "$T/keys/kl.signed" --image "$2" >/dev/null
}

delta_sign() { # IMAGE VERSION_CODE BUNDLE [--base BASE]
	local img=$1 code=$2 out=$3
	shift 3
	env OTA_KEYS_AUDIT_LOG="$T/keys/audit.log" USER=bench "$keys" sign \
		--key "$T/keys/op-ed25519.key" --keylist "$T/keys/kl.signed" \
		--rootlist "$T/keys/roots/rootlist-1.signed" --image "$img" --product bench \
		--hw-rev A --version "1.0.$code" --version-code "$code" --bundle-out "$out" "$@"
}

bench_delta_pair() { # NAME
	local d=$T/delta-$1 what base_bytes new_bytes level=${BENCH_DELTA_LEVEL:-19}
	mkdir -p "$d"
	what=$("delta_pair_$1" "$d") || { echo "bench: delta: pair $1 skipped" >&2; return 0; }
	base_bytes=$(stat -c %s "$d/base")
	new_bytes=$(stat -c %s "$d/new")
	echo "bench: delta: $what ($base_bytes -> $new_bytes bytes), zstd level $level"
	make_keys
	delta_sign "$d/base" 1 "$d/base.otab" >/dev/null
	delta_sign "$d/new" 2 "$d/full.otab" >/dev/null

	local t_make m_ours size_ours t_bsdiff size_bs t_xd size_xd size_zstd matcher other
	matcher=zstd other=index
	((base_bytes < 16 * 1048576)) || matcher=index other=zstd
	t_make=$(delta_make "$d" delta auto "$level") || return 1
	t_make="${t_make% *}/$(delta_cpu "$d/make")" # wall/CPU s
	size_ours=$(grep -oE '^delta [0-9]+' "$d/make.log" | cut -d' ' -f2)
	if [[ ${BENCH_DELTA_BOTH:-0} == 1 ]]; then
		local t_other size_other
		# zstd's matcher on a big base: level 3 (at 19 its binary tree
		# indexes the whole base for every frame: hours)
		local other_level=$level
		[[ $other != zstd ]] || ((base_bytes < 16 * 1048576)) || other_level=3
		t_other=$(delta_make "$d" other "$other" "$other_level") || return 1
		t_other="${t_other% *}/$(delta_cpu "$d/make")"
		size_other=$(grep -oE '^delta [0-9]+' "$d/make.log" | cut -d' ' -f2)
		delta_rows+=("$1|fleetota, $other matcher, level $other_level (no apply)|$(calc "100 * $size_other / $new_bytes")|$t_other|-|-")
		rm -f "$d/other.otab"
	fi
	t_bsdiff=$(delta_measure "$d/bsdiff" bsdiff "$d/base" "$d/new" "$d/patch.bsdiff") || return 1
	t_bsdiff="${t_bsdiff% *}/$(delta_cpu "$d/bsdiff")"
	size_bs=$(stat -c %s "$d/patch.bsdiff")
	t_xd=$(delta_measure "$d/xdelta" xdelta3 -e -9 -f -s "$d/base" "$d/new" "$d/patch.xd3") ||
		return 1
	t_xd="${t_xd% *}/$(delta_cpu "$d/xdelta")"
	size_xd=$(stat -c %s "$d/patch.xd3")
	zstd -q -19 --long=31 -T1 -f "$d/new" -o "$d/new.zst"
	size_zstd=$(stat -c %s "$d/new.zst")

	# apply: the device path for ours (verify, stream into the slot, hash), the
	# tools' own for the anchors; full install on the same device state
	# full and delta installs interleaved ABBA, BENCH_DELTA_REPS of each: the
	# median time and the largest peak RSS of each
	local a_full a_ours a_bs a_xd out i kind first second ft=() fm=() dt=() dm=() m
	for ((i = 0; i < ${BENCH_DELTA_REPS:-3}; i++)); do
		if ((i % 2 == 0)); then first=full second=delta; else first=delta second=full; fi
		for kind in $first $second; do
			delta_device "$d" "$d/base.otab"
			m=$(delta_measure "$d/$kind-install" "$agent" install "$d/$kind.otab" \
				--config "$d/agent.conf") || return 1
			out=$(cat "$d/$kind-install.log")
			[[ $out == pending:* ]] || { echo "bench: delta: install: $out" >&2; return 1; }
			if [[ $kind == full ]]; then ft+=("${m% *}") fm+=("${m#* }"); else dt+=("${m% *}") dm+=("${m#* }"); fi
		done
	done
	a_full="$(median "${ft[@]}") $(printf '%s\n' "${fm[@]}" | sort -g | tail -1)"
	a_ours="$(median "${dt[@]}") $(printf '%s\n' "${dm[@]}" | sort -g | tail -1)"
	echo "bench: delta: $1 installs (s): full ${ft[*]}, delta ${dt[*]}"
	a_bs=$(delta_measure "$d/bspatch" bspatch "$d/base" "$d/out.bs" "$d/patch.bsdiff") || return 1
	cmp -s "$d/out.bs" "$d/new" || { echo "bench: delta: bspatch output differs" >&2; return 1; }
	a_xd=$(delta_measure "$d/xd3-apply" xdelta3 -d -f -s "$d/base" "$d/patch.xd3" "$d/out.xd") ||
		return 1
	cmp -s "$d/out.xd" "$d/new" || { echo "bench: delta: xdelta3 output differs" >&2; return 1; }

	local pct_ours pct_bs pct_xd pct_zstd rate_full rate_ours
	pct_ours=$(calc "100 * $size_ours / $new_bytes")
	pct_bs=$(calc "100 * $size_bs / $new_bytes")
	pct_xd=$(calc "100 * $size_xd / $new_bytes")
	pct_zstd=$(calc "100 * $size_zstd / $new_bytes")
	rate_full=$(calc "$new_bytes / ${a_full% *} / 1e6")
	rate_ours=$(calc "$new_bytes / ${a_ours% *} / 1e6")
	delta_rows+=("$1|fleetota, $matcher matcher|$pct_ours|$t_make|$(calc "$new_bytes / ${a_ours% *} / 1e6")|$(calc "${a_ours#* } / 1024")")
	delta_rows+=("$1|bsdiff 4.3|$pct_bs|$t_bsdiff|$(calc "$new_bytes / ${a_bs% *} / 1e6")|$(calc "${a_bs#* } / 1024")")
	delta_rows+=("$1|xdelta3 -9|$pct_xd|$t_xd|$(calc "$new_bytes / ${a_xd% *} / 1e6")|$(calc "${a_xd#* } / 1024")")
	delta_rows+=("$1|full image, ota-agent install|100|-|$rate_full|$(calc "${a_full#* } / 1024")")
	delta_rows+=("$1|full image zstd -19 --long|$pct_zstd|-|-|-")
	report "delta $1: size, % of the image" "$pct_ours" "bsdiff" "$pct_bs" 2
	report "delta $1: size, % of the image" "$pct_ours" "xdelta3 -9" "$pct_xd" 2
	report "delta $1: apply rate (MB/s of image)" "$rate_ours" "full install" "$rate_full" 2
	report "delta $1: apply peak RSS (MiB)" "$(calc "${a_ours#* } / 1024")" "full install" \
		"$(calc "${a_full#* } / 1024")" 1
	rm -rf "$d/state" "$d/out.bs" "$d/out.xd"
}

# ota-keys sign --base into DIR/OUT.otab with MATCHER and LEVEL; its log in
# DIR/make.log: "SECONDS KIB" of the make
delta_make() { # DIR OUT MATCHER LEVEL
	delta_measure "$1/make" env OTA_KEYS_AUDIT_LOG="$T/keys/audit.log" USER=bench \
		"$keys" sign --key "$T/keys/op-ed25519.key" --keylist "$T/keys/kl.signed" \
		--rootlist "$T/keys/roots/rootlist-1.signed" --image "$1/new" --product bench \
		--hw-rev A --version 1.0.2 --version-code 2 --bundle-out "$1/$2.otab" \
		--base "$1/base" --delta-level "$4" --delta-matcher "$3"
}

delta_rows=()
bench_delta() {
	local pair
	for pair in ${BENCH_DELTA_PAIRS:-agent}; do
		bench_delta_pair "$pair"
	done
	echo
	echo "delta table (size % of the new image; make s, wall/CPU; apply MB/s of image written; apply peak RSS MiB)"
	printf '%-7s %-32s %9s %13s %10s %10s\n' pair tool "size %" "make s" "apply MB/s" "peak MiB"
	local row
	for row in "${delta_rows[@]}"; do
		IFS='|' read -r pair tool pct mk rate rss <<<"$row"
		printf '%-7s %-32s %9s %13s %10s %10s\n' "$pair" "$tool" "$pct" "$mk" "$rate" "$rss"
	done
}
