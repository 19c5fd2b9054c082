#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The key ceremony end to end: root-init 2-of-3, an operational key,
# KeyList v1 collected from separate root holders, firmware signed and
# verified; op key rotation (v2 with both keys, v3 with the new one only);
# root rotation; every artefact verifies with the library and the wrong
# ones do not; and an independent check with openssl/sha256sum/od.
. "$(dirname "$0")/lib.sh"

# ---- every command documents itself ----
for cmd in root-init root-new op-new keylist rootlist sign verify inspect audit-verify; do
	ok "$KEYS" $cmd --help
	grep -q "^Usage: ota-keys $cmd" out || die "$cmd --help"
done
ok "$KEYS" keylist sign --help
refused OTA_ERR_INVALID_ARG "$KEYS" no-such-command

# ---- roots: 2 of 3 ----
ok "$KEYS" root-init --out-dir roots -n 3 -k 2
R1=roots/rootlist-1.signed
[[ $(stat -c %a roots/root-1.key) == 600 ]] || die "root key not 0600"
grep -q "BEGIN PRIVATE KEY" roots/root-1.key || die "root key not PKCS#8 PEM"
ok "$KEYS" verify "$R1" --rootlist "$R1"
[[ $(json "$R1" .body.threshold) == 2 ]] || die "threshold"

# ---- operational key and KeyList v1, signatures collected separately ----
ok "$KEYS" op-new --out op1 --not-before -1d --not-after +365d
ok "$KEYS" keylist new --out kl1.unsigned --add op1.pub --rootlist "$R1"
[[ $(json kl1.unsigned '.signatures | length') == 0 ]] || die "unsigned keylist has signatures"
# each root holder signs the same unsigned file on their own machine
ok "$KEYS" keylist sign --in kl1.unsigned --out kl1.root1 --key roots/root-1.key --rootlist "$R1"
ok "$KEYS" keylist sign --in kl1.unsigned --out kl1.root3 --key roots/root-3.key --signer holder3
refused OTA_ERR_THRESHOLD "$KEYS" verify kl1.root1 --rootlist "$R1"
ok "$KEYS" keylist merge --out kl1.signed --rootlist "$R1" --finalize kl1.root1 kl1.root3
ok "$KEYS" verify kl1.signed --rootlist "$R1"
[[ $(json kl1.signed .body.version) == 1 ]] || die "keylist v1"

# ---- firmware v1 signed with op1 ----
head -c 3000000 /dev/urandom >fw1.bin
ok "$KEYS" sign --key op1.key --keylist kl1.signed --rootlist "$R1" --image fw1.bin \
	--product acme-gw --hw-rev A --hw-rev B --version 1.0.0 --version-code 100 \
	--security-counter 3 --min-installed 50 --security-update --expires +30d \
	--manifest-out m1.signed --bundle-out fw1.otab
ok "$KEYS" verify m1.signed --rootlist "$R1" --keylist kl1.signed --image fw1.bin
ok "$KEYS" verify fw1.otab --rootlist "$R1"
[[ $(json m1.signed .body.security_counter) == 3 ]] || die "counter"
[[ $(json m1.signed .body.is_security_update) == true ]] || die "security flag"
[[ $(json m1.signed '.body.hw_revisions | join(",")') == A,B ]] || die "hw revisions"
[[ $(json m1.signed '.body.security_fix | "\(.fixes_version_code_min)-\(.fixes_version_code_max):\(.advisory)"') == 0-0: ]] ||
	die "a security update without --fixes states no range"

# ---- a security fix says, signed, which versions it fixes (docs/campaigns.md) ----
head -c 1000 /dev/urandom >small.bin
ok "$KEYS" sign --key op1.key --keylist kl1.signed --rootlist "$R1" --image small.bin \
	--product acme-gw --version 1.0.1 --version-code 101 --security-update \
	--fixes 90-100 --advisory CVE-2026-1234 --manifest-out m1fix.signed
ok "$KEYS" verify m1fix.signed --rootlist "$R1" --keylist kl1.signed --image small.bin
[[ $(json m1fix.signed '.body.security_fix | "\(.fixes_version_code_min)-\(.fixes_version_code_max):\(.advisory)"') == 90-100:CVE-2026-1234 ]] ||
	die "inspect prints the signed fix range and advisory"
refused OTA_ERR_INVALID_ARG "$KEYS" sign --key op1.key --keylist kl1.signed --image small.bin \
	--product acme-gw --version 1.0.1 --version-code 101 --fixes 90-100 --manifest-out x.signed
refused OTA_ERR_INVALID_ARG "$KEYS" sign --key op1.key --keylist kl1.signed --image small.bin \
	--product acme-gw --version 1.0.1 --version-code 101 --security-update --fixes 90-101 \
	--manifest-out x.signed
refused OTA_ERR_INVALID_ARG "$KEYS" sign --key op1.key --keylist kl1.signed --image small.bin \
	--product acme-gw --version 1.0.1 --version-code 101 --security-update --fixes 99-90 \
	--manifest-out x.signed
[[ ! -e x.signed ]] || die "a refused signing wrote a manifest"

# ---- op key rotation: v2 holds op1 and op2, v3 only op2 ----
ok "$KEYS" op-new --out op2 --alg p256 --not-before -1h --not-after +400d
ok "$KEYS" keylist new --out kl2.signed --prev kl1.signed --add op2.pub --rootlist "$R1" \
	--key roots/root-1.key --key roots/root-2.key --finalize
[[ $(json kl2.signed .body.version) == 2 ]] || die "keylist v2 (previous + 1)"
head -c 1500000 /dev/urandom >fw2.bin
ok "$KEYS" sign --key op2.key --keylist kl2.signed --rootlist "$R1" --image fw2.bin \
	--product acme-gw --version 1.1.0 --version-code 110 --security-counter 3 \
	--manifest-out m2.signed --bundle-out fw2.otab
ok "$KEYS" verify m2.signed --rootlist "$R1" --keylist kl2.signed --image fw2.bin
ok "$KEYS" verify m1.signed --rootlist "$R1" --keylist kl2.signed
ok "$KEYS" verify fw2.otab --rootlist "$R1"
# op2 is not trusted by v1
refused OTA_ERR_KEY_UNKNOWN "$KEYS" verify m2.signed --rootlist "$R1" --keylist kl1.signed
ok "$KEYS" keylist new --out kl3.signed --prev kl2.signed --revoke op1 --rootlist "$R1" \
	--key roots/root-2.key --key roots/root-3.key --finalize
[[ $(json kl3.signed '.body.keys | length') == 1 ]] || die "keylist v3 has one key"
ok "$KEYS" verify m2.signed --rootlist "$R1" --keylist kl3.signed
refused OTA_ERR_KEY_UNKNOWN "$KEYS" verify m1.signed --rootlist "$R1" --keylist kl3.signed
# a device that has v3 refuses v2 again
refused OTA_ERR_KEYLIST_ROLLBACK "$KEYS" verify kl2.signed --rootlist "$R1" --keylist-floor 3
# and op1 can no longer sign under v3
refused OTA_ERR_KEY_UNKNOWN "$KEYS" sign --key op1.key --keylist kl3.signed --image fw1.bin \
	--product acme-gw --version 1.0.1 --version-code 101 --manifest-out x.signed

# ---- root rotation: v2 = {root-3, root-4, root-5}, threshold 2 ----
ok "$KEYS" root-new --out root-4
ok "$KEYS" root-new --out root-5
ok "$KEYS" rootlist new --prev "$R1" --out r2.unsigned --add root-4.pub --add root-5.pub \
	--remove root-1 --remove root-2 --threshold 2
ok "$KEYS" rootlist sign --prev "$R1" --in r2.unsigned --out r2.old1 --key roots/root-1.key
ok "$KEYS" rootlist sign --prev "$R1" --in r2.unsigned --out r2.old2 --key roots/root-2.key
ok "$KEYS" rootlist sign --prev "$R1" --in r2.unsigned --out r2.new4 --key root-4.key
ok "$KEYS" rootlist sign --prev "$R1" --in r2.unsigned --out r2.new5 --key root-5.key
# old keys only: devices would refuse (not signed by its own threshold)
refused OTA_ERR_THRESHOLD "$KEYS" rootlist merge --prev "$R1" --out r2.bad --finalize \
	r2.old1 r2.old2
[[ ! -e r2.bad ]] || die "refused rootlist was written"
# new keys only: not a chain step from v1
refused OTA_ERR_ROOT_CHAIN "$KEYS" rootlist merge --prev "$R1" --out r2.bad --finalize \
	r2.new4 r2.new5
ok "$KEYS" rootlist merge --prev "$R1" --out r2.signed --finalize r2.old1 r2.old2 r2.new4 r2.new5
R2=r2.signed
ok "$KEYS" verify "$R2" --rootlist "$R1"
ok "$KEYS" verify "$R2" --rootlist "$R1" --rootlist-chain "$R2"
refused OTA_ERR_ROOT_CHAIN "$KEYS" verify "$R1" --rootlist "$R1" --rootlist-chain "$R2"
refused OTA_ERR_ROOT_CHAIN "$KEYS" verify r2.new4 --rootlist "$R1"

# KeyList v4 under RootList v2, signed by the new roots
ok "$KEYS" keylist new --out kl4.signed --prev kl3.signed --rootlist "$R2" \
	--key root-4.key --key roots/root-3.key --finalize
ok "$KEYS" verify kl4.signed --rootlist "$R1" --rootlist-chain "$R2"
# removed roots no longer count
ok "$KEYS" keylist new --out kl4.old --prev kl3.signed --key roots/root-1.key \
	--key roots/root-2.key
refused OTA_ERR_THRESHOLD "$KEYS" verify kl4.old --rootlist "$R1" --rootlist-chain "$R2"
# a device still on RootList v1 does not accept kl4 without the chain
refused OTA_ERR_THRESHOLD "$KEYS" verify kl4.signed --rootlist "$R1"
# a bundle carrying RootList v2 and KeyList v4: a v1 device walks the chain
ok "$KEYS" sign --key op2.key --keylist kl4.signed --rootlist "$R2" --image fw2.bin \
	--product acme-gw --version 1.2.0 --version-code 120 --bundle-out fw4.otab \
	--manifest-out m4.signed
ok "$KEYS" verify fw4.otab --rootlist "$R1"
ok "$KEYS" verify m4.signed --rootlist "$R1" --rootlist-chain "$R2" --keylist kl4.signed

# ---- RootList v1 without ever bringing the root keys together ----
for h in 1 2 3; do ok "$KEYS" root-new --out holder-$h; done
ok "$KEYS" rootlist new --out d1.unsigned --add holder-1.pub --add holder-2.pub \
	--add holder-3.pub --threshold 2
ok "$KEYS" rootlist sign --in d1.unsigned --out d1.h1 --key holder-1.key
ok "$KEYS" rootlist sign --in d1.unsigned --out d1.h3 --key holder-3.key
refused OTA_ERR_KEY_UNKNOWN "$KEYS" rootlist sign --in d1.unsigned --out d1.x --key op1.key
refused OTA_ERR_THRESHOLD "$KEYS" rootlist merge --out d1.signed --finalize d1.h1
ok "$KEYS" rootlist merge --out d1.signed --finalize d1.h1 d1.h3
ok "$KEYS" verify d1.signed --rootlist d1.signed
refused OTA_ERR_ROOT_CHAIN "$KEYS" rootlist new --out d2.unsigned --add holder-1.pub --version 2

# ---- wrong artefacts do not verify ----
# a manifest signature made for another type never counts
refused OTA_ERR_FORMAT "$KEYS" verify m1.signed --rootlist "$R1" --type keylist
cp fw1.otab fw1-tampered.otab
size=$(stat -c %s fw1-tampered.otab)
printf '\xff' | dd of=fw1-tampered.otab bs=1 seek=$((size - 100)) conv=notrunc status=none
refused OTA_ERR_HASH "$KEYS" verify fw1-tampered.otab --rootlist "$R1"
cp fw1.otab fw1-long.otab
printf 'x' >>fw1-long.otab
refused OTA_ERR_SIZE "$KEYS" verify fw1-long.otab --rootlist "$R1"
head -c $((size - 1)) fw1.otab >fw1-short.otab
refused OTA_ERR_SIZE "$KEYS" verify fw1-short.otab --rootlist "$R1"
cp fw1.bin fw1-changed.bin
printf '\x00\x01' | dd of=fw1-changed.bin bs=1 seek=1000 conv=notrunc status=none
refused OTA_ERR_HASH "$KEYS" verify m1.signed --rootlist "$R1" --keylist kl1.signed \
	--image fw1-changed.bin
refused OTA_ERR_SIZE "$KEYS" verify m1.signed --rootlist "$R1" --keylist kl1.signed --image fw2.bin
# a manifest with its body changed after signing
"$KEYS" inspect --json m1.signed >m1.json
python3 - "$WORK" <<'PY'
import sys, pathlib
w = pathlib.Path(sys.argv[1])
data = bytearray((w / "m1.signed").read_bytes())
i = data.find(b"1.0.0")
data[i:i + 5] = b"9.9.9"
(w / "m1-edited.signed").write_bytes(bytes(data))
PY
refused OTA_ERR_SIGNATURE "$KEYS" verify m1-edited.signed --rootlist "$R1" --keylist kl1.signed

# ---- independent check: openssl, sha256sum, od, no fleetota code ----
# key id = SHA-256 of the SubjectPublicKeyInfo DER
id=$(openssl pkey -pubin -in op1.pem -outform DER | sha256sum | cut -d' ' -f1)
[[ $id == $(json m1.signed '.signatures[0].key_id') ]] || die "key id is not SHA-256(SPKI)"
# image digest
[[ $(sha256sum fw1.bin | cut -d' ' -f1) == $(json m1.signed .body.image.sha256) ]] ||
	die "manifest image sha256"
# signature over "fleetota/v1/manifest\0" || body, Ed25519 (op1) and ECDSA P-256 (op2)
for m in m1:op1 m2:op2; do
	file=${m%%:*}.signed
	pem=${m##*:}.pem
	{
		printf 'fleetota/v1/manifest\0'
		json "$file" .body_hex | unhex
	} >"$m.input"
	json "$file" '.signatures[0].sig' | unhex >"$m.sig"
	if [[ $(json "$file" '.signatures[0].alg') == ed25519 ]]; then
		openssl pkeyutl -verify -pubin -inkey "$pem" -rawin -in "$m.input" \
			-sigfile "$m.sig" >/dev/null || die "openssl rejects $file"
	else
		openssl dgst -sha256 -verify "$pem" -signature "$m.sig" "$m.input" >/dev/null ||
			die "openssl rejects $file"
	fi
	# and the same signature over a keylist-typed input does not verify
	{
		printf 'fleetota/v1/keylist\0'
		json "$file" .body_hex | unhex
	} >"$m.wrongtype"
	if openssl dgst -sha256 -verify "$pem" -signature "$m.sig" "$m.wrongtype" >/dev/null 2>&1 ||
		openssl pkeyutl -verify -pubin -inkey "$pem" -rawin -in "$m.wrongtype" \
			-sigfile "$m.sig" >/dev/null 2>&1; then
		die "signature valid for another type"
	fi
done
# bundle layout: "OTAB", big-endian header length, header, the image bytes
[[ $(head -c 4 fw1.otab) == OTAB ]] || die "bundle magic"
hlen=$(head -c 8 fw1.otab | tail -c 4 | od -An -tu1 | awk '{print (($1*256+$2)*256+$3)*256+$4}')
[[ $(stat -c %s fw1.otab) == $((8 + hlen + 3000000)) ]] || die "bundle size"
tail -c 3000000 fw1.otab | cmp -s - fw1.bin || die "bundle image bytes"

# ---- every signature is in the audit log, and the chain holds ----
ok "$KEYS" audit-verify audit.log
grep -q '"who":"holder3"' audit.log || die "--signer not recorded"
grep -q '"who":"ci-signer"' audit.log || die "\$USER not recorded"
# three releases and the security fix (m1fix); refused signings are not recorded
[[ $(grep -c '"object":"manifest"' audit.log) == 4 ]] || die "manifest audit records"
echo "ceremony: ok ($(lines audit.log) audit records)"
