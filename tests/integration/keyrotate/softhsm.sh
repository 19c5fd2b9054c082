#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# PKCS#11: keys generated inside a SoftHSM2 token (private token directory,
# set up here) sign a RootList, a KeyList and firmware through libp11's
# engine; the results verify; the private keys are never extractable.
# ECDSA P-256 in the token: libp11 0.4.12 has no EdDSA support.
. "$(dirname "$0")/lib.sh"

softhsm_init
export OTA_PKCS11_MODULE=$MODULE
# libp11 keeps its static method tables to the end; not fleetota's leaks.
# Slow unwinding, so the suppressed frames are seen through the unloaded engine.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$HERE/lsan-libp11.supp:print_suppressions=0"
export TOKEN_PIN=246810
softhsm2-util --init-token --free --label fleetota-test --so-pin 13579246 --pin "$TOKEN_PIN" \
	>/dev/null
p11() {
	pkcs11-tool --module "$MODULE" --token-label fleetota-test --login --pin "$TOKEN_PIN" "$@"
}
p11 --keypairgen --key-type EC:prime256v1 --label root-hsm --id 11 >/dev/null
p11 --keypairgen --key-type EC:prime256v1 --label op-hsm --id 12 >/dev/null
p11 --list-objects --type privkey >objects.txt
grep -q "never extractable" objects.txt || die "token keys are extractable"
ROOT_URI="pkcs11:token=fleetota-test;object=root-hsm;type=private"
OP_URI="pkcs11:token=fleetota-test;object=op-hsm;type=private"

# a RootList whose first root lives in the token, 2 of 3
ok "$KEYS" root-new --out r2
ok "$KEYS" root-new --out r3
ok "$KEYS" root-init --out-dir roots --key "$ROOT_URI" --key r2.key --key r3.key -k 2 \
	--pin-env TOKEN_PIN
R1=roots/rootlist-1.signed
ok "$KEYS" verify "$R1" --rootlist "$R1"
[[ $(json "$R1" '.body.keys[0].alg') == ecdsa-p256-sha256 ]] || die "token root algorithm"
[[ ! -e roots/root-1.key ]] || die "a private key file was written for a token key"

# an operational key in the token: descriptor only
ok "$KEYS" op-new --out op-hsm --key "$OP_URI" --pin-env TOKEN_PIN --not-before -1d
[[ ! -e op-hsm.key ]] || die "a private key file was written for a token key"
# the KeyList signed by the token root and a file root
ok "$KEYS" keylist new --out kl1.signed --add op-hsm.pub --rootlist "$R1" \
	--key "$ROOT_URI" --key r3.key --pin-env TOKEN_PIN --finalize
ok "$KEYS" verify kl1.signed --rootlist "$R1"
# firmware signed in the token
head -c 500000 /dev/urandom >fw.bin
ok "$KEYS" sign --key "$OP_URI" --pin-env TOKEN_PIN --keylist kl1.signed --rootlist "$R1" \
	--image fw.bin --product hsm-board --version 3.0.0 --version-code 300 \
	--manifest-out m.signed --bundle-out fw.otab
ok "$KEYS" verify fw.otab --rootlist "$R1"
ok "$KEYS" verify m.signed --rootlist "$R1" --keylist kl1.signed --image fw.bin
# independent: openssl checks the token's ECDSA signature with the exported public key
{
	printf 'fleetota/v1/manifest\0'
	json m.signed .body_hex | unhex
} >m.input
json m.signed '.signatures[0].sig' | unhex >m.sig
openssl dgst -sha256 -verify op-hsm.pem -signature m.sig m.input >/dev/null ||
	die "openssl rejects the token signature"
# the audit log names the token key
jq -e --arg id "$(json op-hsm.pub .key_id)" 'select(.object == "manifest") | .key_id == $id' \
	<(tail -n 1 audit.log) >/dev/null || die "audit record of the token signature"
ok "$KEYS" audit-verify audit.log

# a wrong PIN, a wrong URI: refused, nothing written
export BAD_PIN=999999
refused OTA_ERR_NOT_FOUND "$KEYS" sign --key "$OP_URI" --pin-env BAD_PIN --keylist kl1.signed \
	--image fw.bin --product p --version 1 --version-code 1 --manifest-out bad.signed
refused OTA_ERR_NOT_FOUND "$KEYS" sign --key "pkcs11:token=fleetota-test;object=nope" \
	--pin-env TOKEN_PIN --keylist kl1.signed --image fw.bin --product p --version 1 \
	--version-code 1 --manifest-out bad.signed
[[ ! -e bad.signed ]] || die "refused signing wrote output"
echo "softhsm: ok"
