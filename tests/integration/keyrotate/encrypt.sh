#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Encrypted images end to end (issue 16): recipient keys, sign --encrypt-to,
# verify, decrypt, rewrap by the holder of a recipient key, refusals with
# their error names, and interoperability with a second implementation on
# Python's cryptography (crypt_interop.py): it decrypts what ota-keys wrote,
# and ota-keys and ota-agent (the Linux port, its decrypt_key) accept the
# bundle it wrote.
AGENT=$(realpath "${2:?path to ota-agent}")
. "$(dirname "$0")/lib.sh"
PY="python3 $HERE/crypt_interop.py"

ok "$KEYS" root-init --out-dir roots -n 1 -k 1
R1=roots/rootlist-1.signed
ok "$KEYS" op-new --out op1 --not-before -1d
ok "$KEYS" keylist new --out kl1 --add op1.pub --rootlist "$R1" --key roots/root-1.key --finalize
for k in product dev1 dev2 holder stranger; do
	ok "$KEYS" enc-key-new --out $k
	[[ $(stat -c %a $k.key) == 600 ]] || die "$k.key not 0600"
done
head -c 300000 /dev/urandom >fw.bin

# ---- sign --encrypt-to: product line + the holder ----
ok "$KEYS" sign --key op1.key --keylist kl1 --image fw.bin --product gw --version 1.0.0 \
	--version-code 100 --encrypt-to product.pub --recipient-name product:gw \
	--encrypt-to holder.pub --recipient-name holder --chunk-size 4096 --bundle-out fw.otab
ok "$KEYS" verify fw.otab --rootlist "$R1"
[[ $(json fw.otab .manifest.body.encryption.chunk_bytes) == 4096 ]] || die "chunk size"
[[ $(json fw.otab '.manifest.body.encryption.recipients | length') == 2 ]] || die "recipients"
cmp -s <(tail -c 300000 fw.otab) fw.bin && die "the bundle carries the plaintext"
[[ ! -e fw.otab.ciphertext.tmp ]] || die "temporary ciphertext left behind"
ok "$KEYS" decrypt --in fw.otab --key product.key --out fw.dec
cmp fw.bin fw.dec || die "decrypted image differs"
refused OTA_ERR_NOT_RECIPIENT "$KEYS" decrypt --in fw.otab --key dev1.key --out x.bin
[[ ! -e x.bin ]] || die "output left after a refusal"

# ---- tampered ciphertext, truncated stream: named errors, no output ----
python3 - <<'PY'
d = bytearray(open("fw.otab", "rb").read())
d[len(d) - 50000] ^= 1
open("tampered.otab", "wb").write(d)
open("short.otab", "wb").write(open("fw.otab", "rb").read()[:-5])
PY
refused OTA_ERR_DECRYPT "$KEYS" decrypt --in tampered.otab --key product.key --out x.bin
refused OTA_ERR_HASH "$KEYS" verify tampered.otab --rootlist "$R1"
refused OTA_ERR_SIZE "$KEYS" decrypt --in short.otab --key product.key --out x.bin
[[ ! -e x.bin ]] || die "output left after a refusal"

# ---- rewrap: the holder adds device keys, drops the product line ----
ok "$KEYS" rewrap --in fw.otab --holder-key holder.key --encrypt-to dev1.pub \
	--recipient-name device:dev1 --encrypt-to dev2.pub --remove-recipient product:gw \
	--key op1.key --keylist kl1 --bundle-out fw2.otab
ok "$KEYS" verify fw2.otab --rootlist "$R1"
[[ $(json fw2.otab '[.manifest.body.encryption.recipients[].name] | join(",")') == holder,device:dev1,dev2.pub ]] ||
	die "rewrapped recipients: $(json fw2.otab '[.manifest.body.encryption.recipients[].name]')"
[[ $(json fw2.otab .manifest.body.encryption.ciphertext_sha256) == $(json fw.otab .manifest.body.encryption.ciphertext_sha256) ]] ||
	die "rewrap changed the ciphertext"
ok "$KEYS" decrypt --in fw2.otab --key dev1.key --out fw2.dec
cmp fw.bin fw2.dec || die "rewrapped image differs"
refused OTA_ERR_NOT_RECIPIENT "$KEYS" decrypt --in fw2.otab --key product.key --out x.bin
# only a recipient's private key can rewrap
refused OTA_ERR_NOT_RECIPIENT "$KEYS" rewrap --in fw.otab --holder-key stranger.key \
	--encrypt-to dev1.pub --key op1.key --keylist kl1 --bundle-out x.otab
refused OTA_ERR_INVALID_ARG "$KEYS" rewrap --in fw.otab --holder-key holder.key \
	--encrypt-to product.pub --key op1.key --keylist kl1 --bundle-out x.otab
refused OTA_ERR_FORMAT "$KEYS" sign --key op1.key --keylist kl1 --image fw.bin --product gw \
	--version 1.0.0 --version-code 100 --encrypt-to op1.pem --bundle-out x.otab

# ---- interoperability with Python's cryptography ----
ok $PY decrypt fw2.otab dev2.key py.dec
cmp fw.bin py.dec || die "python decrypted something else"
ok $PY bundle fw.bin dev1.pub op1.key kl1 py.otab gw 1.0.1 101
ok "$KEYS" verify py.otab --rootlist "$R1"
ok "$KEYS" decrypt --in py.otab --key dev1.key --out c.dec
cmp fw.bin c.dec || die "ota-keys decrypted python's bundle into something else"

# ---- P-256 recipients (a token's kind): ota-keys and python both ways ----
ok "$KEYS" enc-key-new --out devp --type p256
grep -q "BEGIN PUBLIC KEY" devp.pub || die "no P-256 public key"
ok "$KEYS" sign --key op1.key --keylist kl1 --image fw.bin --product gw --version 1.0.0 \
	--version-code 100 --encrypt-to product.pub --recipient-name product:gw \
	--encrypt-to devp.pub --recipient-name device:devp --chunk-size 4096 --bundle-out p.otab
[[ $(json p.otab '[.manifest.body.encryption.recipients[].kind] | join(",")') == x25519,p256 ]] ||
	die "recipient kinds: $(json p.otab '[.manifest.body.encryption.recipients[].kind]')"
ok "$KEYS" decrypt --in p.otab --key devp.key --out p.dec
cmp fw.bin p.dec || die "P-256 entry decrypted into something else"
ok $PY decrypt p.otab devp.key pyp.dec
cmp fw.bin pyp.dec || die "python decrypted the P-256 entry into something else"
ok $PY bundle fw.bin devp.pub op1.key kl1 pyp.otab gw 1.0.1 101
ok "$KEYS" verify pyp.otab --rootlist "$R1"
ok "$KEYS" decrypt --in pyp.otab --key devp.key --out cp.dec
cmp fw.bin cp.dec || die "ota-keys decrypted python's P-256 bundle into something else"

# ---- the device (Linux port) installs python's bundle with its decrypt_key ----
cat >agent.conf <<CONF
state_dir = $WORK/dev1
device_id = dev1
model = gw
hw_revision = A
slot_size = 1048576
decrypt_key = $WORK/dev1.key
CONF
sed "s|dev1|dev2|g" agent.conf >agent2.conf
ok "$AGENT" provision --config agent.conf --rootlist "$R1" --keylist kl1
agent_update "$AGENT" agent.conf py.otab 101
# a device whose key is not a recipient refuses before the image, state unchanged
ok "$AGENT" provision --config agent2.conf --rootlist "$R1" --keylist kl1
"$AGENT" install py.otab --config agent2.conf >out 2>err && die "a device that is no recipient installed"
grep -q "^rejected: OTA_ERR_NOT_RECIPIENT: " out err || die "expected OTA_ERR_NOT_RECIPIENT: $(cat out err)"
ok "$AGENT" status --json --config agent2.conf
[[ $(jq -r .phase out) == idle ]] || die "refused install changed the phase: $(cat out)"
# a file-held P-256 device key (decrypt_key) installs python's P-256 bundle
sed "s|dev1|devp|g" agent.conf >agentp.conf
ok "$AGENT" provision --config agentp.conf --rootlist "$R1" --keylist kl1
agent_update "$AGENT" agentp.conf pyp.otab 101
# a 3 MiB image in 64 KiB chunks: the install decrypts 1 MiB pieces on its
# read-ahead thread (docs/agent.md); a chunk tampered with in the second
# piece is refused with its name and number, the device unchanged
head -c $((3 * 1048576 + 4321)) /dev/urandom >big.bin
ok "$KEYS" sign --key op1.key --keylist kl1 --image big.bin --product gw --version 1.0.2 \
	--version-code 102 --encrypt-to dev1.pub --bundle-out big.otab
python3 - <<'PY'
import os
d = bytearray(open("big.otab", "rb").read())
# chunk 20 of 49: the ciphertext is the end of the bundle, 65552 bytes a chunk
d[len(d) - os.path.getsize("big.bin") - 49 * 16 + 20 * 65552 + 77] ^= 1
open("big-tampered.otab", "wb").write(d)
PY
sed -e "s|dev1$|dev3|" -e "s|slot_size = .*|slot_size = 4194304|" \
	agent.conf >agent3.conf
ok "$AGENT" provision --config agent3.conf --rootlist "$R1" --keylist kl1
"$AGENT" install big-tampered.otab --config agent3.conf >out 2>err && die "a tampered image installed"
grep -q "^rejected: OTA_ERR_DECRYPT: chunk 20 of the encrypted image fails authentication" out ||
	die "expected OTA_ERR_DECRYPT at chunk 20: $(cat out err)"
ok "$AGENT" status --json --config agent3.conf
[[ $(jq -r .phase out) == idle ]] || die "refused install changed the phase: $(cat out)"
agent_update "$AGENT" agent3.conf big.otab 102
echo "encrypt: ok"
