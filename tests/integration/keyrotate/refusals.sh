#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ota-keys refuses, with the stable error name, and writes nothing:
# too few root signatures, a KeyList version that does not increase, an
# expired or not-yet-valid operational key, unreadable / too open / wrong
# passphrase key files, a bundle whose image changed after signing.
. "$(dirname "$0")/lib.sh"

ok "$KEYS" root-init --out-dir roots -n 3 -k 2 --alg p256
R1=roots/rootlist-1.signed
ok "$KEYS" op-new --out op --not-before -1d --not-after +30d
ok "$KEYS" op-new --out old --not-before 2020-01-01 --not-after 2021-01-01
ok "$KEYS" op-new --out future --not-before +30d --not-after +400d
ok "$KEYS" keylist new --out kl1.signed --add op.pub --add old.pub --add future.pub \
	--rootlist "$R1" --key roots/root-1.key --key roots/root-2.key --finalize
head -c 200000 /dev/urandom >fw.bin
sign() {
	"$KEYS" sign --keylist kl1.signed --rootlist "$R1" --image fw.bin --product p \
		--version 1.0.0 --version-code 1 --manifest-out m.signed --bundle-out b.otab "$@"
}

# -- a KeyList signed by too few roots is not finalized --
records=$(lines audit.log)
refused OTA_ERR_THRESHOLD "$KEYS" keylist new --out kl2.signed --prev kl1.signed \
	--remove old --rootlist "$R1" --key roots/root-3.key --finalize
[[ ! -e kl2.signed ]] || die "under-signed KeyList written"
grep -q "1 of the 2 root signatures" err || die "threshold detail"
# (the one signature made is still audited: it was made)
[[ $(lines audit.log) == $((records + 1)) ]] || die "audit record of the signature"
# a key that is not a root does not sign a KeyList (and makes no signature)
records=$(lines audit.log)
refused OTA_ERR_KEY_UNKNOWN "$KEYS" keylist new --out kl2.signed --prev kl1.signed \
	--remove old --rootlist "$R1" --key op.key
[[ ! -e kl2.signed ]] || die "KeyList signed by a non-root written"
[[ $(lines audit.log) == "$records" ]] || die "refused signature was audited"

# -- the KeyList version must increase --
refused OTA_ERR_KEYLIST_ROLLBACK "$KEYS" keylist new --out kl2.signed --prev kl1.signed \
	--version 1 --remove old
refused OTA_ERR_KEYLIST_ROLLBACK "$KEYS" keylist merge --out kl2.signed --prev kl1.signed \
	--rootlist "$R1" --finalize kl1.signed
[[ ! -e kl2.signed ]] || die "rollback KeyList written"
ok "$KEYS" keylist new --out kl5.unsigned --prev kl1.signed --version 5 --remove old
[[ $(json kl5.unsigned .body.version) == 5 ]] || die "explicit version"

# -- expired and not-yet-valid operational keys --
records=$(lines audit.log)
refused OTA_ERR_KEY_EXPIRED sign --key old.key
grep -q 'operational key "old" is valid 2020-01-01' err || die "expiry detail"
refused OTA_ERR_KEY_EXPIRED sign --key future.key
# judged at issued_at: an old release date inside the window is fine
ok sign --key old.key --issued 2020-06-01
# and one after the window is not
refused OTA_ERR_KEY_EXPIRED sign --key op.key --issued +60d
rm -f m.signed b.otab
refused OTA_ERR_KEY_EXPIRED sign --key future.key
[[ ! -e m.signed && ! -e b.otab ]] || die "refused signing wrote output"
[[ $(lines audit.log) == $((records + 1)) ]] || die "refused signings were audited"
# a KeyList expiring its key: --expire SEL=TIME
ok "$KEYS" keylist new --out kl2.signed --prev kl1.signed --expire op=-1h --rootlist "$R1" \
	--key roots/root-1.key --key roots/root-3.key --finalize
refused OTA_ERR_KEY_EXPIRED "$KEYS" sign --keylist kl2.signed --key op.key --image fw.bin \
	--product p --version 1 --version-code 1 --manifest-out m2.signed

# -- key files: unreadable, too open, not a key, encrypted --
refused OTA_ERR_STORAGE sign --key missing.key
cp op.key open.key
chmod 644 open.key
refused OTA_ERR_STORAGE sign --key open.key
grep -q "too open" err || die "permission detail"
echo "not a key" >junk.key
chmod 600 junk.key
refused OTA_ERR_FORMAT sign --key junk.key
mkdir dir.key
chmod 700 dir.key
refused OTA_ERR_STORAGE sign --key dir.key
export OP_PASS='correct horse battery staple'
ok "$KEYS" op-new --out enc --passphrase-env OP_PASS --not-before -1d
grep -q "BEGIN ENCRYPTED PRIVATE KEY" enc.key || die "not encrypted PKCS#8"
[[ $(stat -c %a enc.key) == 600 ]] || die "key file not 0600"
ok "$KEYS" keylist new --out kl3.signed --prev kl1.signed --add enc.pub --rootlist "$R1" \
	--key roots/root-1.key --key roots/root-2.key --finalize
signenc() {
	"$KEYS" sign --keylist kl3.signed --key enc.key --image fw.bin --product p \
		--version 1 --version-code 1 --manifest-out menc.signed "$@"
}
refused OTA_ERR_INVALID_ARG signenc
export WRONG='incorrect horse'
refused OTA_ERR_FORMAT signenc --passphrase-env WRONG
grep -q "wrong passphrase" err || die "passphrase detail"
refused OTA_ERR_INVALID_ARG signenc --passphrase-env NOT_SET_ANYWHERE
printf '%s\n' "$OP_PASS" >pass.txt
ok signenc --passphrase-file pass.txt
ok "$KEYS" verify menc.signed --rootlist "$R1" --keylist kl3.signed --image fw.bin
# op-new never replaces a key file
refused OTA_ERR_STORAGE "$KEYS" op-new --out enc

# -- a bundle whose image changed after signing --
ok sign --key op.key
ok "$KEYS" verify b.otab --rootlist "$R1"
cp b.otab b2.otab
printf 'Z' | dd of=b2.otab bs=1 seek=$(($(stat -c %s b2.otab) - 5)) conv=notrunc status=none
refused OTA_ERR_HASH "$KEYS" verify b2.otab --rootlist "$R1"
# the KeyList that expired op rejects what op signed after its new not_after
refused OTA_ERR_KEY_EXPIRED "$KEYS" verify m.signed --rootlist "$R1" --keylist kl2.signed
# the KeyList that revoked op does not know it at all
ok "$KEYS" keylist new --out kl4.signed --prev kl1.signed --remove op --rootlist "$R1" \
	--key roots/root-1.key --key roots/root-3.key --finalize
refused OTA_ERR_KEY_UNKNOWN "$KEYS" verify m.signed --rootlist "$R1" --keylist kl4.signed
# a bundle checked against a RootList that is not its root of trust
ok "$KEYS" root-init --out-dir other -n 1 -k 1
refused OTA_ERR_THRESHOLD "$KEYS" verify b.otab --rootlist other/rootlist-1.signed
# garbage is a format error
head -c 300 /dev/urandom >noise.bin
refused OTA_ERR_FORMAT "$KEYS" verify noise.bin --rootlist "$R1"
refused OTA_ERR_FORMAT "$KEYS" inspect noise.bin
echo "refusals: ok"
