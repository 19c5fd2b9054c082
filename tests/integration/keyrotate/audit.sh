#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The signing audit log: every signature appends one hash-chained record;
# audit-verify names the first bad record when one is edited, removed or
# reordered (and when an edit is re-hashed, the record after it).
. "$(dirname "$0")/lib.sh"

ok "$KEYS" root-init --out-dir roots -n 3 -k 2
R1=roots/rootlist-1.signed
ok "$KEYS" op-new --out op --not-before -1d
ok "$KEYS" keylist new --out kl1.signed --add op.pub --rootlist "$R1" \
	--key roots/root-1.key --key roots/root-2.key --finalize --signer alice
head -c 100000 /dev/urandom >fw.bin
ok "$KEYS" sign --key op.key --keylist kl1.signed --image fw.bin --product p --version 2.0 \
	--version-code 200 --manifest-out m.signed --signer bob
[[ $(lines audit.log) == 6 ]] || die "expected 6 records (3 root, 2 keylist, 1 manifest)"
ok "$KEYS" audit-verify audit.log
head=$(sed -n 's/^OK: 6 records, head //p' out)
[[ ${#head} == 64 ]] || die "head hash not printed"

# record content: who, object, version, key id, digest of what was signed
last=$(tail -n 1 audit.log)
jq -e --arg id "$(json m.signed '.signatures[0].key_id')" \
	--arg sha "$(json m.signed .body_sha256)" \
	'.seq == 6 and .who == "bob" and .object == "manifest" and .version == 200 and
	 .key_id == $id and .sha256 == $sha' <<<"$last" >/dev/null || die "manifest record: $last"
sed -n 4p audit.log | jq -e '.who == "alice" and .object == "keylist" and .version == 1' \
	>/dev/null || die "keylist record"
head -n 1 audit.log | jq -e '.prev == "0000000000000000000000000000000000000000000000000000000000000000"' \
	>/dev/null || die "first prev"
[[ $(stat -c %a audit.log) == 600 ]] || die "audit log mode"

# 1. edited: record 3's signer changed
sed '3s/"who":"ci-signer"/"who":"mallory"/' audit.log >edited.log
cmp -s audit.log edited.log && die "edit did not change the log"
refused OTA_ERR_HASH "$KEYS" audit-verify edited.log
grep -q "record 3 (line 3)" err || die "edited: wrong record named: $(cat err)"
grep -q "edited" err || die "edited: detail"

# 2. removed: record 2 deleted
sed '2d' audit.log >removed.log
refused OTA_ERR_HASH "$KEYS" audit-verify removed.log
grep -q "record 2 (line 2)" err || die "removed: wrong record named: $(cat err)"

# 3. reordered: records 4 and 5 swapped
{ sed -n 1,3p audit.log; sed -n 5p audit.log; sed -n 4p audit.log; sed -n 6p audit.log; } \
	>reordered.log
refused OTA_ERR_HASH "$KEYS" audit-verify reordered.log
grep -q "record 4 (line 4)" err || die "reordered: wrong record named: $(cat err)"

# 4. edited and re-hashed: the link from the next record breaks
python3 - "$WORK" <<'PY'
import hashlib, pathlib, sys
w = pathlib.Path(sys.argv[1])
lines = (w / "audit.log").read_text().splitlines()
line = lines[2].replace('"who":"ci-signer"', '"who":"mallory"')
body = line[: line.rindex(',"hash":"')]
lines[2] = body + ',"hash":"' + hashlib.sha256(body.encode()).hexdigest() + '"}'
(w / "rehashed.log").write_text("\n".join(lines) + "\n")
PY
refused OTA_ERR_HASH "$KEYS" audit-verify rehashed.log
grep -q "record 4 (line 4)" err || die "rehashed: wrong record named: $(cat err)"

# 5. a line that is not a record, and a cut-off last line
{ sed -n 1,2p audit.log; echo 'garbage'; sed -n '3,$p' audit.log; } >garbage.log
refused OTA_ERR_FORMAT "$KEYS" audit-verify garbage.log
grep -q "record 3 (line 3)" err || die "garbage: wrong record named"
head -c -10 audit.log >cut.log
refused OTA_ERR_FORMAT "$KEYS" audit-verify cut.log
grep -q "record 6" err || die "cut: wrong record named"

# 6. records cut off the end: only the kept head hash shows it
sed '$d' audit.log >truncated.log
ok "$KEYS" audit-verify truncated.log
refused OTA_ERR_HASH "$KEYS" audit-verify truncated.log --expect-head "$head"
ok "$KEYS" audit-verify audit.log --expect-head "$head"

# appending to a damaged log is refused (and nothing is signed)
cp cut.log damaged.log
chmod 600 damaged.log
refused OTA_ERR_FORMAT "$KEYS" sign --key op.key --keylist kl1.signed --image fw.bin \
	--product p --version 2.1 --version-code 210 --manifest-out m2.signed \
	--audit-log damaged.log
[[ ! -e m2.signed ]] || die "signed without an audit record"
# the original is untouched by all of the above
ok "$KEYS" audit-verify audit.log --expect-head "$head"
echo "audit: ok"
