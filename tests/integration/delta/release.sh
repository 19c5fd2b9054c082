#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A release with deltas, made by ota-keys as an operator makes one (sourced
# by the server-side delta tests). delta_release DIR OTA_KEYS [attacks]
# writes, in DIR:
#   roots/rootlist-1.signed kl.signed   the trust a device is provisioned with
#   v0.img v1.img v2.img                v1 and v0 run in the field (1.0.1, code 1,
#                                       two builds: v0 is v1 less 8 KiB, a few
#                                       bytes apart); v2 is the new release
#                                       (1.0.2, code 2): v1 with a few bytes
#                                       changed and 16 KiB added
#   v0.otab v1.otab v2.otab             the full bundles
#   d12.otab d02.otab                   deltas of v2 from v1 and from v0
# and, with "attacks", for the refusals:
#   d13.otab        a delta from v1 to v3 (another image of 1.0.2)
#   d12-v3.otab     a delta from v1 to v2 signed as 1.0.3 (code 3)
#   d12-tampered.otab  d12 with one payload byte flipped
#   d12-untrusted.otab d12 signed by a key in no KeyList the server holds
#   d-self.otab     a "delta" of v2 from v2 itself
delta_release() {
	local dir=$1 keys=$2 attacks=${3:-}
	mkdir -p "$dir"
	(
		set -euo pipefail
		cd "$dir"
		export OTA_KEYS_AUDIT_LOG=$dir/audit.log USER=delta-release
		"$keys" root-init --out-dir roots -n 1 -k 1 >/dev/null
		"$keys" op-new --out op --not-before -1d >/dev/null
		"$keys" op-new --out stranger --not-before -1d >/dev/null
		"$keys" keylist new --out kl.signed --add op.pub --key roots/root-1.key \
			--rootlist roots/rootlist-1.signed --finalize >/dev/null
		"$keys" keylist new --out kl-stranger.signed --add stranger.pub --key roots/root-1.key \
			--rootlist roots/rootlist-1.signed --finalize >/dev/null
		head -c 131072 /dev/urandom >v1.img
		# v0: an older build (a few bytes elsewhere, 8 KiB shorter)
		head -c 122880 v1.img >v0.img
		printf 'older' | dd of=v0.img bs=1 seek=50000 conv=notrunc status=none
		cp v1.img v2.img
		printf 'patched' | dd of=v2.img bs=1 seek=1000 conv=notrunc status=none
		printf 'again' | dd of=v2.img bs=1 seek=100000 conv=notrunc status=none
		head -c 16384 /dev/urandom >>v2.img
		cp v2.img v3.img
		printf 'X' | dd of=v3.img bs=1 seek=5 conv=notrunc status=none
		sign() { # KEY KEYLIST IMAGE VERSION CODE OUT [extra...]
			local key=$1 kl=$2 img=$3 version=$4 code=$5 out=$6
			shift 6
			"$keys" sign --key "$key" --keylist "$kl" --rootlist roots/rootlist-1.signed \
				--image "$img" --product fx-model --version "$version" --version-code "$code" \
				--security-counter "$code" --bundle-out "$out" "$@" >/dev/null
		}
		sign op.key kl.signed v0.img 1.0.1 1 v0.otab
		sign op.key kl.signed v1.img 1.0.1 1 v1.otab
		sign op.key kl.signed v2.img 1.0.2 2 v2.otab
		# level 3: these images are small, the tests' machine is busy
		local delta=(--delta-chunk 65536 --delta-level 3)
		sign op.key kl.signed v2.img 1.0.2 2 d12.otab --base v1.img "${delta[@]}"
		sign op.key kl.signed v2.img 1.0.2 2 d02.otab --base v0.img "${delta[@]}"
		[[ $attacks == attacks ]] || exit 0
		sign op.key kl.signed v3.img 1.0.2 2 d13.otab --base v1.img "${delta[@]}"
		sign op.key kl.signed v2.img 1.0.3 3 d12-v3.otab --base v1.img "${delta[@]}"
		sign op.key kl.signed v2.img 1.0.2 2 d-self.otab --base v2.img "${delta[@]}"
		sign stranger.key kl-stranger.signed v2.img 1.0.2 2 d12-untrusted.otab --base v1.img \
			"${delta[@]}" --no-keylist
		cp d12.otab d12-tampered.otab
		local size
		size=$(stat -c %s d12-tampered.otab)
		printf '\x55' | dd of=d12-tampered.otab bs=1 seek=$((size - 50)) conv=notrunc status=none
	)
}
