#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Encrypted images with the device's recipient key in a PKCS#11 token
# (issue 16; docs/porting.md "A recipient key in a token"): a SoftHSM2
# token in a private directory holds a P-256 key pair made by pkcs11-tool
# (never extractable); ota-keys encrypts for its exported public key; the
# Linux agent (config pkcs11_module/token/key/pin_file) unwraps through
# C_DeriveKey(CKM_ECDH1_DERIVE) and installs. A device that is no
# recipient is refused with OTA_ERR_NOT_RECIPIENT from the bundle's header
# alone (no image byte read); a wrong PIN is OTA_ERR_KEY_ACCESS naming
# CKR_PIN_INCORRECT; both leave the device's state and slots unchanged.
# ota-keys decrypts and rewraps with the token key too (libp11's engine).
AGENT=$(realpath "${2:?path to ota-agent}")
. "$(dirname "$0")/lib.sh"

softhsm_init
command -v pkcs11-tool >/dev/null || die "pkcs11-tool missing (apt-get install opensc)"
PIN=135792
softhsm2-util --init-token --free --label dev-token --so-pin 24680135 --pin "$PIN" >/dev/null
p11() {
	pkcs11-tool --module "$MODULE" --token-label dev-token --login --pin "$PIN" "$@"
}
p11 --keypairgen --key-type EC:prime256v1 --label dev-p256 --id 21 >/dev/null 2>&1
p11 --list-objects --type privkey >objects.txt 2>/dev/null
grep -q "never extractable" objects.txt || die "the token key is extractable: $(cat objects.txt)"
# the public key leaves the token (DER SubjectPublicKeyInfo), for ota-keys
pkcs11-tool --module "$MODULE" --token-label dev-token --read-object --type pubkey \
	--label dev-p256 -o token.der >/dev/null 2>&1
openssl pkey -pubin -inform DER -in token.der -out token.pub
openssl pkey -pubin -in token.pub -noout -text | grep -q "NIST CURVE: P-256" ||
	die "token key is not P-256"

ok "$KEYS" root-init --out-dir roots -n 1 -k 1
R1=roots/rootlist-1.signed
ok "$KEYS" op-new --out op1 --not-before -1d
ok "$KEYS" keylist new --out kl1 --add op1.pub --rootlist "$R1" --key roots/root-1.key --finalize
ok "$KEYS" enc-key-new --out product
ok "$KEYS" enc-key-new --out stranger --type p256
head -c 200000 /dev/urandom >fw.bin
head -c 150000 /dev/urandom >fw3.bin
# for the product line's key (X25519) and the token's: the device's entry is the second
sign() { # VERSION CODE IMAGE OUT RECIPIENT.pub...
	local version=$1 code=$2 image=$3 out=$4
	shift 4
	local to=()
	for r in "$@"; do to+=(--encrypt-to "$r"); done
	ok "$KEYS" sign --key op1.key --keylist kl1 --image "$image" --product gw \
		--version "$version" --version-code "$code" "${to[@]}" --chunk-size 8192 \
		--bundle-out "$out"
}
sign 2.0.0 200 fw.bin fw.otab product.pub token.pub
[[ $(json fw.otab '[.manifest.body.encryption.recipients[].kind] | join(",")') == x25519,p256 ]] ||
	die "recipient kinds"
sign 3.0.0 300 fw3.bin fw3.otab token.pub
# for a stranger only, and that bundle cut after its header: no image byte to read
sign 3.0.0 300 fw3.bin other.otab stranger.pub
python3 - <<'PY'
import struct
d = open("other.otab", "rb").read()
(h,) = struct.unpack(">I", d[4:8])
open("other-header.otab", "wb").write(d[:8 + h])
PY

install -m 600 /dev/null pin.txt
printf '%s\n' "$PIN" >pin.txt
cat >agent.conf <<CONF
state_dir = $WORK/dev
device_id = dev-tok
model = gw
hw_revision = A
slot_size = 1048576
pkcs11_module = $MODULE
pkcs11_token = dev-token
pkcs11_key = dev-p256
pkcs11_pin_file = $WORK/pin.txt
CONF
ok "$AGENT" provision --config agent.conf --rootlist "$R1" --keylist kl1

# ---- the token key unwraps: install, boot, confirm ----
agent_update "$AGENT" agent.conf fw.otab 200
cmp <(head -c 200000 "dev/slot$(jq -r .active_slot out).img") fw.bin ||
	die "the active slot does not hold the plaintext image"
# the derived secret is a session object (CKA_TOKEN false): none was stored on the token
p11 --list-objects >objects.txt 2>/dev/null
[[ $(grep -c "Secret Key Object" objects.txt) == 0 ]] || die "a derived secret stayed in the token"

# ota-keys with the same token key (libp11's engine, the ECDH in the token):
# the holder of a token key decrypts and rewraps without the key leaving it
TOKEN_URI="pkcs11:token=dev-token;object=dev-p256;type=private"
keys_token() { # libp11 keeps static tables to the end (softhsm.sh)
	ok env OTA_PKCS11_MODULE="$MODULE" TOKEN_PIN="$PIN" \
		ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:fast_unwind_on_malloc=0" \
		LSAN_OPTIONS="suppressions=$HERE/lsan-libp11.supp:print_suppressions=0" \
		"$KEYS" "$@" --pin-env TOKEN_PIN
}
keys_token decrypt --in fw.otab --key "$TOKEN_URI" --out tok.dec
cmp fw.bin tok.dec || die "ota-keys decrypted with the token key into something else"
keys_token rewrap --in fw3.otab --holder-key "$TOKEN_URI" --encrypt-to product.pub \
	--key op1.key --keylist kl1 --bundle-out fw3-product.otab
ok "$KEYS" decrypt --in fw3-product.otab --key product.key --out fw3.dec
cmp fw3.bin fw3.dec || die "rewrapped by the token key holder: another image"

# what a refusal must not change: the device's install state and both slots
fingerprint() {
	"$AGENT" status --json --config agent.conf | jq -S -c '{phase, installed, active_slot,
		confirmed_slot, pending, target, staged_bytes, security_counter, keylist_version,
		rootlist_version}'
	sha256sum dev/slot*.img
}
fingerprint >before.txt
# refused ERRNAME BUNDLE: the install is rejected with ERRNAME, nothing changed
refused_install() {
	"$AGENT" install "$2" --config agent.conf >out 2>err && die "installed $2"
	grep -q "^rejected: $1: " out err || die "expected $1: $(cat out err)"
	fingerprint >after.txt
	cmp -s before.txt after.txt || die "the refusal changed the device: $(diff before.txt after.txt)"
	"$AGENT" status --json --config agent.conf | jq -e --arg e "$1" '.last_error == $e' \
		>/dev/null || die "last_error is not $1"
}

# ---- not a recipient: refused from the header, before the image ----
refused_install OTA_ERR_NOT_RECIPIENT other-header.otab

# ---- a wrong PIN: a clear error naming the token's answer ----
printf '999999\n' >pin.txt
refused_install OTA_ERR_KEY_ACCESS fw3.otab
grep -q "C_Login.*CKR_PIN_INCORRECT" err || die "the PKCS#11 reason is not named: $(cat err)"
# a PIN file others may read is refused before the token is asked
printf '%s\n' "$PIN" >pin.txt
chmod 644 pin.txt
refused_install OTA_ERR_KEY_ACCESS fw3.otab
grep -q "mode 0600" err || die "the PIN file's mode is not named: $(cat err)"

# ---- the right PIN again: the same bundle installs ----
chmod 600 pin.txt
ok "$AGENT" install fw3.otab --config agent.conf
ok "$AGENT" status --json --config agent.conf
[[ $(jq -r .pending out) == true && $(jq -r .target.version_code out) == 300 ]] ||
	die "3.0.0 is not pending: $(cat out)"
echo "encrypt_pkcs11: ok"
