#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Compares two ota-keys binaries byte for byte (a refactoring must not
# change a CLI output): about 300 invocations (help, usage errors, ambiguous
# abbreviations, keys, lists, sign, delta, encryption, rewrap, verify,
# inspect, timestamp, audit log) run with each binary on the same keys, made
# once; their exit status, stdout, stderr and every file they write must be
# equal. Outputs named rnd_* are random (fresh keys, encryption): only their
# logs are compared, with hex masked.
#   scripts/compare-ota-keys.sh BEFORE AFTER     (exit 0: identical)
set -u
BEFORE=$(realpath "${1:?ota-keys before}")
AFTER=$(realpath "${2:?ota-keys after}")
TMP=$(mktemp -d /tmp/ota-keys-compare.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
mkdir "$TMP/seed"
(
	cd "$TMP/seed" && export OTA_KEYS_AUDIT_LOG=$TMP/seed-audit.log
	for k in r1 r2 r3 r4 op1 op2; do "$BEFORE" op-new --out $k >/dev/null; done
	"$BEFORE" timestamp-new --out ts >/dev/null
	rm -f ./*.pub ./*.pem
	"$BEFORE" enc-key-new --out enc2 >/dev/null
) || exit 2

# run BIN OUT: the invocations in a copy of the seed, moved to OUT
run() {
	local BIN=$1 OUT=$2 RUN=$TMP/run
	rm -rf "$RUN" && cp -a "$TMP/seed" "$RUN" && mkdir "$RUN/log"
	(
		cd "$RUN" || exit 2
		export OTA_KEYS_AUDIT_LOG="$RUN/audit.log" USER=ci-signer
		unset OTA_PKCS11_MODULE OTA_PKCS11_ENGINE
		k() {
			N=$((N + 1))
			local id extra=()
			id=$(printf %03d $N)
			case "$*" in *rnd_*) extra=(--audit-log rnd_audit.log) ;; esac
			"$BIN" "$@" "${extra[@]+"${extra[@]}"}" >log/$id.out 2>log/$id.err
			echo $? >log/$id.rc
			echo "$*" >log/$id.cmd
		}
		N=0
		NOW="--now 2026-06-01T00:00:00Z"
		# help and usage of every command
		k
		k --help
		k help
		k -h
		k no-such
		for c in root-init root-new op-new timestamp-new keylist rootlist sign timestamp verify inspect audit-verify enc-key-new rewrap decrypt; do
			k $c --help
			k $c
			k $c --bogus
		done
		k keylist sign --help
		for o in --b --m --r --k --i --e --re --ke --n --c; do
			for c in sign rewrap root-init op-new "keylist new" "rootlist new" timestamp decrypt verify; do
				k $c $o x
			done
		done
		k keylist bogus
		k rootlist new --out x --threshold 0
		k rootlist new --out x --threshold 40
		k rootlist new --out x --expire a=1
		k keylist new --out x --threshold 2
		k keylist sign --out x
		k keylist merge --out x
		k keylist new --out x --finalize
		k keylist new --out x extra
		# root-init and key-new with existing keys: deterministic
		k root-init --out-dir roots -k 2 --key r1.key --key r2.key --key r3.key $NOW
		k root-init --out-dir roots2 -k 4 --key r1.key --key r2.key $NOW
		k root-init --out-dir roots3 -n 0 $NOW
		k root-init --out-dir roots4 -k 1 --key r1.key --issued 2026-01-01 --expires 2030-01-01 --out r1only.signed $NOW
		k root-init --out-dir roots5 --key nonexist.key $NOW
		k root-init $NOW
		k root-init --out-dir roots6 --alg rsa $NOW
		R=roots/rootlist-1.signed
		k op-new --out op1d --key op1.key --name op-one --not-before 2026-01-01 --not-after 2027-01-01 $NOW
		k op-new --out op2d --key op2.key $NOW
		k op-new --out opx --key op1.key --not-before 2027-01-01 --not-after 2026-01-01 $NOW
		k op-new $NOW
		k root-new --out r4d --key r4.key --name fourth $NOW
		k root-new --out r4x --key r4.key --not-after +1d $NOW
		k timestamp-new --out tsd --key ts.key $NOW
		k timestamp-new --out tsx --key ts.key --not-before bogus $NOW
		# fresh keys: random, compare output with ids masked later
		k op-new --out rnd_op --alg p256 $NOW
		k root-new --out rnd_root $NOW
		k timestamp-new --out rnd_ts $NOW
		k enc-key-new --out rnd_enc $NOW
		k enc-key-new --out rnd_enc $NOW
		k root-init --out-dir rnd_roots -n 2 -k 1 $NOW
		# keylist new / sign / merge
		k keylist new --out kl1.unsigned --add op1d.pub --add tsd.pub --rootlist $R $NOW
		k keylist sign --in kl1.unsigned --out kl1.a --key r1.key --rootlist $R $NOW
		k keylist sign --in kl1.unsigned --out kl1.c --key r3.key --signer holder3 $NOW
		k keylist sign --in kl1.unsigned --out kl1.x --key r4.key --rootlist $R $NOW
		k keylist merge --out kl1.partial --rootlist $R --finalize kl1.a $NOW
		k keylist merge --out kl1 --rootlist $R --finalize kl1.a kl1.c $NOW
		k keylist merge --out kl1.nr kl1.a kl1.c $NOW
		k keylist new --out kl2 --prev kl1 --add op2d.pub --rootlist $R --key r1.key --key r2.key --finalize $NOW
		k keylist new --out kl3 --prev kl2 --remove op-one --expire tsd=2026-12-01 --rootlist $R --key r1.key --key r2.key --finalize $NOW
		k keylist new --out kl3b --prev kl2 --version 2 --rootlist $R --key r1.key --key r2.key $NOW
		k keylist new --out kl3c --prev kl2 --version 0 --rootlist $R $NOW
		k keylist new --out kl3d --prev kl2 --version 9 --issued bogus $NOW
		k keylist new --out kl3e --prev kl2 --expire nosuchkey $NOW
		k keylist new --out kl3f --prev kl2 --remove nosuchkey --rootlist $R --key r1.key $NOW
		k keylist new --out kl3g --prev kl2 --add op2d.pub --rootlist $R --key r1.key $NOW
		k keylist new --out kl3h --prev notafile --rootlist $R $NOW
		k keylist new --out kl3i --prev $R --rootlist $R $NOW
		k keylist new --out kl3j --prev kl2 --rootlist kl2 $NOW
		k keylist sign --in $R --out kl3k --key r1.key --rootlist $R $NOW
		k keylist sign --in kl1.unsigned --out kl3l --key op1.key --rootlist $R $NOW
		k keylist new --out kl9 --version 9 --issued 2026-01-01 --expires 2027-01-01 --add op1d.pub $NOW
		# rootlist
		k rootlist new --prev $R --out rl2.unsigned --add r4d.pub --remove root-3 --threshold 2 $NOW
		k rootlist sign --prev $R --in rl2.unsigned --out rl2.a --key r1.key --key r2.key $NOW
		k rootlist sign --prev $R --in rl2.unsigned --out rl2.b --key r4.key $NOW
		k rootlist merge --prev $R --out rl2 --finalize rl2.a $NOW
		k rootlist merge --prev $R --out rl2 --finalize rl2.a rl2.b $NOW
		k rootlist new --prev $R --out rl2x --key r3.key --remove root-3 --finalize $NOW
		k rootlist new --prev $R --out rl2y --key op1.key $NOW
		k rootlist new --out rl1 --add r4d.pub --threshold 1 --key r4.key --finalize $NOW
		k rootlist new --out rl1b --add r4d.pub --version 3 $NOW
		k rootlist new --prev rl2 --out rl3 --version 9 --key r1.key $NOW
		k rootlist new --prev rl2 --out rl3b --issued x $NOW
		k rootlist sign --prev rl2 --in kl1 --out rl3c --key r1.key $NOW
		k rootlist new --prev kl1 --out rl3d $NOW
		k rootlist new --prev $R --out rl2z --add r4d.pub --issued 2026-02-01 --expires 2029-01-01 --key r1.key --key r2.key --key r4.key $NOW
		# sign
		head -c 200000 /dev/zero | tr '\0' 'a' >fw1.bin
		head -c 150000 /dev/zero | tr '\0' 'b' >fw2.bin
		cat fw1.bin fw2.bin >fw3.bin
		k sign --key op1.key --keylist kl1 --rootlist $R --image fw1.bin --product gw --hw-rev A --hw-rev B --version 1.0.0 --version-code 100 --security-counter 3 --min-installed 50 --security-update --expires +30d --manifest-out m1 --bundle-out fw1.otab $NOW
		k sign --key op1.key --keylist kl1 --image fw1.bin --product gw --version 1.0.1 --version-code 101 --security-update --fixes 90-100 --advisory CVE-1 --manifest-out m1fix $NOW
		k sign --key op1.key --keylist kl1 --image fw1.bin --product gw --version 1.0.1 --version-code 101 --fixes 90-100 --manifest-out x $NOW
		k sign --key op1.key --keylist kl1 --image fw1.bin --product gw --version 1.0.1 --version-code 101 --fixes 9x $NOW --manifest-out x
		k sign --key op2.key --keylist kl1 --image fw1.bin --product gw --version 1 --version-code 1 --manifest-out x $NOW
		k sign --key ts.key --keylist kl1 --image fw1.bin --product gw --version 1 --version-code 1 --manifest-out x $NOW
		k sign --key op1.key --keylist kl1 --image fw1.bin --product gw --version 1 --version-code 1 --issued 2028-01-01 --manifest-out x $NOW
		k sign --key op1.key --keylist kl1 --image fw1.bin --product gw --version 1 --version-code 1 $NOW
		k sign --key op1.key --keylist kl1 --image fw1.bin --product gw --version 1 --version-code 1 --base fw1.bin --manifest-out x $NOW
		k sign --key op1.key --keylist kl1 --image fw1.bin --product gw --version 1 --version-code 1 --encrypt-to rnd_enc.pub --manifest-out x $NOW
		k sign --key op2.key --keylist kl2 --rootlist $R --image fw3.bin --product gw --version 1.1.0 --version-code 110 --base fw1.bin --delta-chunk 65536 --bundle-out d.otab --no-keylist --sequence 77 --image-name fw $NOW
		k sign --key op2.key --keylist kl2 --rootlist rl2 --rootlist-chain $R --image fw2.bin --product gw --version 1.2.0 --version-code 120 --bundle-out chain.otab $NOW
		k sign --key op2.key --keylist kl2 --rootlist $R --image fw2.bin --product gw --version 1.2.0 --version-code 120 --bundle-out rnd_enc.otab --encrypt-to rnd_enc.pub --recipient-name dev --chunk-size 4096 --ciphertext-out rnd_ct.bin $NOW
		k sign --key op2.key --keylist kl2 --image fw2.bin --product gw --version 1.2.0 --version-code 120 --bundle-out x --encrypt-to rnd_enc.pub --base fw1.bin $NOW
		k sign --key op2.key --keylist kl2 --image fw2.bin --product gw --version 1.2.0 --version-code 120 --bundle-out x --delta-level 30 --base fw1.bin $NOW
		# verify / inspect
		for f in $R kl1 kl2 kl3 m1 m1fix fw1.otab d.otab chain.otab rl2 rl2z rl1 kl1.unsigned kl1.a; do
			k verify $f --rootlist $R $NOW
			k verify $f --rootlist $R --keylist kl1 $NOW
			k inspect $f
			k inspect --json $f
		done
		k verify m1 --rootlist $R --keylist kl2 --image fw1.bin $NOW
		k verify m1 --rootlist $R --keylist kl1 --image fw2.bin $NOW
		k verify fw1.otab --rootlist rl2 $NOW
		k verify chain.otab --rootlist $R $NOW
		k verify kl3 --rootlist $R --keylist-floor 5 $NOW
		k verify m1 --rootlist $R --keylist kl1 --now 2030-01-01
		k inspect fw1.bin
		k inspect nonexistent
		# timestamp
		k timestamp --key ts.key --keylist kl1 --rootlist $R --product gw --manifest m1 --out t1 --expires +1h $NOW
		k timestamp --key ts.key --keylist kl1 --product gw --manifest m1 --out t2 --expires +30d $NOW
		k timestamp --key op1.key --keylist kl1 --product gw --manifest m1 --out t3 --expires +1h $NOW
		k verify t1 --rootlist $R --keylist kl1 $NOW
		k inspect --json t1
		# encrypted: rewrap/decrypt (random ciphertext; logs only)
		k decrypt --in rnd_enc.otab --key rnd_enc.key --out rnd_dec.bin $NOW
		k decrypt --in rnd_enc.otab --key r1.key --out rnd_dec2.bin $NOW
		k decrypt --in fw1.otab --key rnd_enc.key --out rnd_dec3.bin $NOW
		k rewrap --in rnd_enc.otab --holder-key rnd_enc.key --encrypt-to enc2.pub --recipient-name d2 --key op2.key --keylist kl2 --bundle-out rnd_rw.otab --manifest-out rnd_rw.m $NOW
		k rewrap --in rnd_rw.otab --holder-key enc2.key --remove-recipient dev --key op2.key --keylist kl2 --bundle-out rnd_rw2.otab $NOW
		k rewrap --in rnd_rw2.otab --holder-key enc2.key --remove-recipient d2 --key op2.key --keylist kl2 --bundle-out x $NOW
		k rewrap --in rnd_rw2.otab --holder-key enc2.key --remove-recipient nope --key op2.key --keylist kl2 --bundle-out x $NOW
		k rewrap --in fw1.otab --holder-key enc2.key --encrypt-to enc2.pub --key op2.key --keylist kl2 --bundle-out x $NOW
		k rewrap --in rnd_rw2.otab --holder-key enc2.key --key op2.key --keylist kl2 --bundle-out x $NOW
		k decrypt --in rnd_rw2.otab --key enc2.key --out rnd_dec4.bin $NOW
		cmp fw2.bin rnd_dec4.bin >log/cmp4 2>&1
		# audit log
		k audit-verify audit.log
		k audit-verify --json audit.log
		k audit-verify nonexistent
		sed -i '3s/.$/x/' audit.log
		k audit-verify audit.log
	)
	mv "$RUN" "$OUT"
}
run "$BEFORE" "$TMP/A"
run "$AFTER" "$TMP/B"
A=$TMP/A B=$TMP/B rc=0
diff -r -q -x 'rnd_*' -x log "$A" "$B" || rc=1
for f in "$A"/log/[0-9]*; do
	g="$B/log/$(basename "$f")"
	id=$(basename "$f" | cut -d. -f1)
	if grep -q rnd_ "$A/log/$id.cmd"; then
		cmp -s <(sed -E 's/[0-9a-f]{16,}/HEX/g' "$f") <(sed -E 's/[0-9a-f]{16,}/HEX/g' "$g") ||
			{ echo "differs (hex masked): $(cat "$A/log/$id.cmd") [$(basename "$f")]"; rc=1; }
	else
		cmp -s "$f" "$g" || { echo "differs: $(cat "$A/log/$id.cmd") [$(basename "$f")]"; rc=1; }
	fi
done
[ $rc = 0 ] && echo "identical: $(ls "$A"/log/*.cmd | wc -l) invocations"
exit $rc
