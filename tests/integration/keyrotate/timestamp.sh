#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The timestamp role in ota-keys: timestamp-new makes a key whose
# descriptor carries the role, a KeyList lists it, `timestamp` signs a
# short-lived Timestamp (from a signed manifest, or by hand) that verify and
# inspect show; and the refusals, with their stable names and nothing
# written: the timestamp key cannot sign a manifest or a KeyList, an
# operational key cannot sign a Timestamp, and a Timestamp must expire
# (expires_at = 0, "never") and within 7 days.
. "$(dirname "$0")/lib.sh"

ok "$KEYS" root-init --out-dir roots -n 2 -k 2
R1=roots/rootlist-1.signed
ok "$KEYS" op-new --out op
ok "$KEYS" timestamp-new --out ts
grep -q "^timestamp key" out || die "timestamp-new output: $(cat out)"
[[ $(json ts.pub .role) == timestamp && $(json op.pub .role) == operational ]] ||
	die "role in descriptors"
ok "$KEYS" keylist new --out kl1.signed --add op.pub --add ts.pub --rootlist "$R1" \
	--key roots/root-1.key --key roots/root-2.key --finalize
[[ $(json kl1.signed '.body.keys[1].role') == timestamp ]] || die "role in the KeyList"
head -c 5000 /dev/urandom >fw.bin
ok "$KEYS" sign --key op.key --keylist kl1.signed --rootlist "$R1" --image fw.bin \
	--product p --version 1.4.7 --version-code 147 --manifest-out m.signed

# -- a Timestamp from the current release's manifest --
ok "$KEYS" timestamp --key ts.key --keylist kl1.signed --rootlist "$R1" --product p \
	--manifest m.signed --expires +6h --out t.signed
grep -q "timestamp p current 1.4.7 (code 147)" out || die "timestamp output: $(cat out)"
[[ $(json t.signed .type) == timestamp && $(json t.signed .body.version_code) == 147 ]] ||
	die "inspect: $("$KEYS" inspect --json t.signed)"
[[ $(json t.signed .body.manifest_sha256) == $(json m.signed .body_sha256) ]] ||
	die "the Timestamp names the manifest body"
ok "$KEYS" verify t.signed --rootlist "$R1" --keylist kl1.signed
grep -q "OK: timestamp p current 1.4.7 (code 147) signed by the timestamp key" out ||
	die "verify: $(cat out)"
grep -q "\"object\":\"timestamp\"" audit.log || die "the signature is not in the audit log"
# stale at a later time
refused OTA_ERR_EXPIRED "$KEYS" verify t.signed --rootlist "$R1" --keylist kl1.signed --now +7h

records=$(lines audit.log)
# -- expires_at = 0 and long lives are refused before any signature --
refused OTA_ERR_FORMAT "$KEYS" timestamp --key ts.key --keylist kl1.signed --product p \
	--expires never --out t0.signed
refused OTA_ERR_FORMAT "$KEYS" timestamp --key ts.key --keylist kl1.signed --product p \
	--expires +8d --out t0.signed
# -- an operational key signs no Timestamp --
refused OTA_ERR_KEY_ROLE "$KEYS" timestamp --key op.key --keylist kl1.signed --product p \
	--out t0.signed
[[ ! -e t0.signed ]] || die "a refused Timestamp was written"
# -- the timestamp key signs no manifest, and no KeyList --
refused OTA_ERR_KEY_ROLE "$KEYS" sign --key ts.key --keylist kl1.signed --image fw.bin \
	--product p --version 2.0.0 --version-code 200 --manifest-out m2.signed
[[ ! -e m2.signed ]] || die "a manifest signed by the timestamp key was written"
refused OTA_ERR_KEY_UNKNOWN "$KEYS" keylist new --out kl2.signed --prev kl1.signed \
	--remove op --rootlist "$R1" --key ts.key
[[ ! -e kl2.signed ]] || die "a KeyList signed by the timestamp key was written"
[[ $(lines audit.log) == "$records" ]] || die "a refused signature was audited"
echo "PASS"
