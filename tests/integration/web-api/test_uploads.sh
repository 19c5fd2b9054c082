#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Resumable upload sessions (/api/v1/uploads) against a real PostgreSQL and
# ota-server: a bundle of three 8 MiB chunks end to end (resume after a
# wrong offset, PATCH and PUT, header and query offsets), the attack matrix
# (no token, viewer, another operator's session, wrong offset, a chunk too
# large, size overflow, a changed image, a wrong declared sha256, path
# traversal in ids), bounds, expiry and purge, and the server's peak RSS
# while a ~100 MB bundle goes through (it must not grow with the bundle).
# Every recorded response is validated against openapi.yaml.
MAX_UPLOAD=$((200 * 1024 * 1024))
# ASan keeps freed memory in a quarantine (256 MB by default): that would
# show up as RSS growing with the bytes that went through, not as the
# server holding them. A small quarantine keeps the measurement honest.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8
source "$(dirname "$0")/lib.sh"
npm_tools &
NPM_PID=$!
BIG_BYTES=$((100 * 1000 * 1000))
CHUNK=$((8 * 1024 * 1024))
setup_world
"$WA_FIXTURES" "$FX" "$BIG_BYTES" || fail "big fixtures"
start_server
UPDIR=$STORE/.uploads

ADMIN=$(new_token admin up-admin)
OPER=$(new_token operator up-ci)
OPER2=$(new_token operator up-other)
VIEW=$(new_token viewer up-dash)
TOKEN=$ADMIN api POST /api/v1/rootlists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/rootlist1.bin"
expect 201
TOKEN=$ADMIN api POST /api/v1/rootlists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/rootlist2.bin"
expect 201
TOKEN=$ADMIN api POST /api/v1/keylists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/keylist1.bin"
expect 201

[[ -d $UPDIR && $(stat -c %a "$UPDIR") == 700 ]] || fail "upload dir missing or not private"

# create FILE [SHA256]: a session for FILE's size; its id in $UP
create() {
	local size sha body
	size=$(stat -c %s "$1")
	sha=${2-$(sha256sum <"$1" | cut -c1-64)}
	if [[ -n $sha ]]; then
		body=$(jq -nc --argjson s "$size" --arg h "$sha" '{size: $s, sha256: $h}')
	else
		body=$(jq -nc --argjson s "$size" '{size: $s}')
	fi
	api POST /api/v1/uploads -H 'Content-Type: application/json' -d "$body"
	expect 201
	UP=$(jbody .id)
	[[ $UP =~ ^u_[0-9a-f]{32}$ && $(jbody .offset) == 0 && $(jbody .size) == "$size" ]] ||
		fail "session: $(body)"
}
# chunk FILE OFFSET LEN: the bytes [OFFSET, OFFSET+LEN) of FILE in $T/chunk
chunk() { dd if="$1" of="$T/chunk" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none; }
# send_all FILE: every chunk of FILE, in order, to session $UP
send_all() {
	local size off=0 n
	size=$(stat -c %s "$1")
	while ((off < size)); do
		n=$((size - off < CHUNK ? size - off : CHUNK))
		chunk "$1" "$off" "$n"
		api PATCH "/api/v1/uploads/$UP" -H 'Content-Type: application/offset+octet-stream' \
			-H "Upload-Offset: $off" --data-binary @"$T/chunk"
		expect 200
		off=$((off + n))
		[[ $(jbody .offset) == "$off" ]] || fail "offset after a chunk: $(body)"
	done
}
# head_offset ID: the Upload-Offset of a HEAD request (recorded)
head_offset() {
	local out
	out=$(curl -sS --head -o /dev/null -D "$T/headers" -w '%{http_code} %{content_type}' \
		${TOKEN:+-H "Authorization: Bearer $TOKEN"} "$API/api/v1/uploads/$1") || true
	echo "${out%% *}" >"$T/status"
	: >"$T/body"
	printf 'HEAD\t/api/v1/uploads/%s\t%s\t%s\t\n' "$1" "${out%% *}" "${out#* }" >>"$RESPONSES"
	tr -d '\r' <"$T/headers" | sed -n 's/^[Uu]pload-[Oo]ffset: //p'
}
store_state() { ls -A "$STORE" | sort | md5sum; }
art_count() { sql -c "SELECT count(*) FROM artifacts"; }

log "a bundle of three chunks: create, append (PATCH/PUT, header/query), resume, finish"
SIZE=$(stat -c %s "$FX/chunks.otab")
TOKEN=$OPER create "$FX/chunks.otab"
ID1=$UP
[[ -f $UPDIR/$ID1 && $(stat -c %a "$UPDIR/$ID1") == 600 ]] || fail "session file"
sql_eq "0|$SIZE" "SELECT upload_offset, size FROM uploads WHERE upload_id = '$ID1'" || fail "session row"
sql_eq "upload.create" "SELECT action FROM audit WHERE object = 'upload:$ID1'" || fail "create audit"
TOKEN=$OPER api GET "/api/v1/uploads/$ID1"
expect 200
[[ $(jbody .offset) == 0 && $(jbody .sha256) == "$(sha256sum <"$FX/chunks.otab" | cut -c1-64)" ]] || fail "get: $(body)"
chunk "$FX/chunks.otab" 0 "$CHUNK"
TOKEN=$OPER api PATCH "/api/v1/uploads/$ID1" -H 'Content-Type: application/offset+octet-stream' \
	-H 'Upload-Offset: 0' --data-binary @"$T/chunk"
expect 200
[[ $(jbody .offset) == "$CHUNK" ]] || fail "first chunk"
log "the connection was cut: HEAD tells where to resume; a wrong offset is a 409"
[[ $(TOKEN=$OPER head_offset "$ID1") == "$CHUNK" ]] || fail "HEAD offset"
expect 200
TOKEN=$OPER api PATCH "/api/v1/uploads/$ID1" -H 'Content-Type: application/offset+octet-stream' \
	-H 'Upload-Offset: 0' --data-binary @"$T/chunk"
expect 409 conflict
sql_eq "$CHUNK" "SELECT upload_offset FROM uploads WHERE upload_id = '$ID1'" || fail "409 moved the offset"
[[ $(stat -c %s "$UPDIR/$ID1") == "$CHUNK" ]] || fail "409 wrote bytes"
chunk "$FX/chunks.otab" "$CHUNK" "$CHUNK"
TOKEN=$OPER api PUT "/api/v1/uploads/$ID1?offset=$CHUNK" -H 'Content-Type: application/octet-stream' \
	--data-binary @"$T/chunk"
expect 200
log "finishing an incomplete upload is a 409"
TOKEN=$OPER api POST "/api/v1/uploads/$ID1/artifact" -H 'Content-Type: application/json' -d '{"artifact_id": "fw-chunks"}'
expect 409 conflict
chunk "$FX/chunks.otab" $((2 * CHUNK)) $((SIZE - 2 * CHUNK))
TOKEN=$OPER api PATCH "/api/v1/uploads/$ID1" -H 'Content-Type: application/offset+octet-stream' \
	-H "Upload-Offset: $((2 * CHUNK))" --data-binary @"$T/chunk"
expect 200
[[ $(jbody .offset) == "$SIZE" ]] || fail "complete offset"
cmp -s "$UPDIR/$ID1" "$FX/chunks.otab" || fail "the session file differs from the bundle"
log "a chunk past the declared size is a 413"
printf 'x' >"$T/one"
TOKEN=$OPER api PATCH "/api/v1/uploads/$ID1" -H 'Content-Type: application/offset+octet-stream' \
	-H "Upload-Offset: $SIZE" --data-binary @"$T/one"
expect 413 payload_too_large
TOKEN=$OPER api POST "/api/v1/uploads/$ID1/artifact" -H 'Content-Type: application/json' -d '{"artifact_id": "fw-chunks"}'
expect 201
[[ $(jbody .version) == 2.5.0 && $(jbody .image_size) == $((20 * 1024 * 1024)) ]] || fail "artifact: $(body)"
IMG=$(jbody .image_sha256)
[[ -f $STORE/$IMG && $(sha256sum <"$STORE/$IMG" | cut -c1-64) == "$IMG" ]] || fail "image not in the store"
[[ ! -e $UPDIR/$ID1 ]] || fail "session file left after finishing"
sql_eq 0 "SELECT count(*) FROM uploads WHERE upload_id = '$ID1'" || fail "session row left"
sql_eq "artifact.upload|token:" "SELECT action, substr(actor, 1, 6) FROM audit ORDER BY id DESC LIMIT 1" ||
	fail "finish audit"
TOKEN=$OPER api GET "/api/v1/uploads/$ID1"
expect 404 not_found
ls -A "$STORE" | grep -q '^\.incoming' && fail "temporary store file left"

log "the same bundle again: 409 (same manifest), nothing stored"
TOKEN=$OPER create "$FX/chunks.otab" ""
TOKEN=$OPER send_all "$FX/chunks.otab"
BEFORE_ART=$(art_count)
BEFORE_STORE=$(store_state)
TOKEN=$OPER api POST "/api/v1/uploads/$UP/artifact" -H 'Content-Type: application/json' -d '{"artifact_id": "fw-other"}'
expect 409 conflict
[[ $(art_count) == "$BEFORE_ART" && $(store_state) == "$BEFORE_STORE" ]] || fail "a 409 stored something"
TOKEN=$OPER api DELETE "/api/v1/uploads/$UP"
expect 200
[[ ! -e $UPDIR/$UP ]] || fail "deleted session's file left"
sql_eq "upload.delete" "SELECT action FROM audit ORDER BY id DESC LIMIT 1" || fail "delete audit"
TOKEN=$OPER api DELETE "/api/v1/uploads/$UP"
expect 404 not_found

# ------------------------------------------------------------------------
log "attacks: each refused with its documented error, nothing changes"
TOKEN=$OPER create "$FX/docs.otab"
MINE=$UP
chunk "$FX/docs.otab" 0 1000
TOKEN=$OPER api PATCH "/api/v1/uploads/$MINE" -H 'Content-Type: application/offset+octet-stream' \
	-H 'Upload-Offset: 0' --data-binary @"$T/chunk"
expect 200
state() {
	sql -c "SELECT md5(string_agg(u::text, ',' ORDER BY upload_id)) FROM uploads u"
	sql -c "SELECT count(*) FROM audit"
	art_count
	store_state
	ls -A "$UPDIR" | sort | md5sum
	md5sum <"$UPDIR/$MINE"
}
BEFORE=$(state)
unchanged() { [[ "$(state)" == "$BEFORE" ]] || fail "state changed after: $*"; }

log "no token, a bad token: 401"
# (a batch: one curl for the requests of a section, see batch_add)
printf '%s' '{"size": 10}' >"$T/size10.json"
printf '%s' '{"artifact_id": "x"}' >"$T/aid-x.json"
OO=application/offset+octet-stream
TOKEN= batch_add POST /api/v1/uploads 401 unauthorized "" application/json "$T/size10.json"
TOKEN= batch_add GET "/api/v1/uploads/$MINE" 401 unauthorized ""
TOKEN= batch_add PATCH "/api/v1/uploads/$MINE" 401 unauthorized "" $OO "$T/one" 'Upload-Offset: 1000'
TOKEN= batch_add DELETE "/api/v1/uploads/$MINE" 401 unauthorized ""
TOKEN= batch_add POST "/api/v1/uploads/$MINE/artifact" 401 unauthorized "" application/json "$T/aid-x.json"
TOKEN=fota_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA batch_add GET "/api/v1/uploads/$MINE" 401 unauthorized ""
batch_run
[[ -z $(TOKEN= head_offset "$MINE") ]] || fail "HEAD without a token shows the offset"
expect 401
unchanged "no token"

log "a viewer: 403"
TOKEN=$VIEW batch_add POST /api/v1/uploads 403 forbidden "" application/json "$T/size10.json"
TOKEN=$VIEW batch_add GET "/api/v1/uploads/$MINE" 403 forbidden ""
TOKEN=$VIEW batch_add PATCH "/api/v1/uploads/$MINE" 403 forbidden "" $OO "$T/one" 'Upload-Offset: 1000'
TOKEN=$VIEW batch_add DELETE "/api/v1/uploads/$MINE" 403 forbidden ""
TOKEN=$VIEW batch_add POST "/api/v1/uploads/$MINE/artifact" 403 forbidden "" application/json "$T/aid-x.json"
batch_run
unchanged "viewer"

log "another operator's session: 404, as if it did not exist"
TOKEN=$OPER2 api GET "/api/v1/uploads/$MINE"
expect 404 not_found
[[ -z $(TOKEN=$OPER2 head_offset "$MINE") ]] || fail "HEAD shows another token's offset"
expect 404
TOKEN=$OPER2 batch_add PATCH "/api/v1/uploads/$MINE" 404 not_found "" $OO "$T/one" 'Upload-Offset: 1000'
TOKEN=$OPER2 batch_add PUT "/api/v1/uploads/$MINE?offset=1000" 404 not_found "" application/octet-stream "$T/one"
TOKEN=$OPER2 batch_add DELETE "/api/v1/uploads/$MINE" 404 not_found ""
TOKEN=$OPER2 batch_add POST "/api/v1/uploads/$MINE/artifact" 404 not_found "" application/json "$T/aid-x.json"
TOKEN=$ADMIN batch_add GET "/api/v1/uploads/$MINE" 404 not_found ""
batch_run
unchanged "another operator"

log "wrong offsets, bad offsets, wrong content types"
for off in 0 999 1001 5000; do
	TOKEN=$OPER batch_add PATCH "/api/v1/uploads/$MINE" 409 conflict "" application/offset+octet-stream \
		"$T/one" "Upload-Offset: $off"
done
TOKEN=$OPER batch_add PATCH "/api/v1/uploads/$MINE" 400 bad_request "" application/offset+octet-stream "$T/one"
for off in -1 abc 1e3 99999999999999999999999 ""; do
	TOKEN=$OPER batch_add PATCH "/api/v1/uploads/$MINE" 400 bad_request "" application/offset+octet-stream \
		"$T/one" "Upload-Offset: $off"
done
batch_run
TOKEN=$OPER api PATCH "/api/v1/uploads/$MINE?offset=999" -H 'Content-Type: application/offset+octet-stream' \
	-H 'Upload-Offset: 1000' --data-binary @"$T/one"
expect 400 bad_request
TOKEN=$OPER api PATCH "/api/v1/uploads/$MINE" -H 'Content-Type: application/json' \
	-H 'Upload-Offset: 1000' --data-binary @"$T/one"
expect 415 unsupported_media_type
TOKEN=$OPER api PATCH "/api/v1/uploads/$MINE" -H 'Content-Type: application/offset+octet-stream' \
	-H 'Upload-Offset: 1000' --data-binary ''
expect 400 bad_request
TOKEN=$OPER api POST /api/v1/uploads -H 'Content-Type: text/plain' -d '{"size": 10}'
expect 415 unsupported_media_type
unchanged "offsets and content types"

log "a chunk above 8 MiB is refused before it is read (413)"
head -c $((CHUNK + 1)) /dev/zero >"$T/big-chunk"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X PATCH -H "Authorization: Bearer $OPER" \
	-H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 1000' \
	--data-binary @"$T/big-chunk" "$API/api/v1/uploads/$MINE" || true)
[[ $code == 413 ]] || fail "a 8 MiB + 1 chunk: $code"
TOKEN=$OPER api POST "/api/v1/artifacts?id=big" -H 'Content-Type: application/octet-stream' --data-binary @"$T/big-chunk"
expect 413
sed -i '$d' "$RESPONSES" # libevent's HTML 413 (documented as text/html)
unchanged "chunk too large"

log "size overflow and malformed sessions"
TOKEN=$OPER api POST /api/v1/uploads -H 'Content-Type: application/json' -d "{\"size\": $((MAX_UPLOAD + 1))}"
expect 413 payload_too_large
[[ $(jbody .error.field) == size ]] || fail "413 field"
k=0
for b in '{"size": 0}' '{"size": -5}' '{"size": "10"}' '{"size": 1.5}' '{}' '{"size": 10, "x": 1}' \
	'{"size": 99999999999999999999999}' '{"size": 10, "sha256": "ABC"}' \
	'{"size": 10, "sha256": "../../../../etc/passwd"}' '{"size": 10' '[10]'; do
	k=$((k + 1))
	printf '%s' "$b" >"$T/session-$k.json"
	TOKEN=$OPER batch_add POST /api/v1/uploads 400 "" "" application/json "$T/session-$k.json"
done
batch_run
unchanged "size overflow"

log "path traversal and malformed ids"
for id in "..%2F..%2Fetc%2Fpasswd" "%2e%2e" ".hidden" "u_..%2F..%2Fx" "u_0123456789abcdef0123456789abcdeg" \
	"u_0123456789ABCDEF0123456789ABCDEF" "u_0123456789abcdef0123456789abcdef0" "fw%00x" "..%2Fstore"; do
	TOKEN=$OPER batch_add GET "/api/v1/uploads/$id" 400 bad_request ""
	TOKEN=$OPER batch_add PATCH "/api/v1/uploads/$id" 400 bad_request "" application/offset+octet-stream \
		"$T/one" 'Upload-Offset: 0'
	TOKEN=$OPER batch_add DELETE "/api/v1/uploads/$id" 400 bad_request ""
	TOKEN=$OPER batch_add POST "/api/v1/uploads/$id/artifact" 400 bad_request "" application/json "$T/aid-x.json"
done
k=0
while read -r j; do
	k=$((k + 1))
	printf '%s' "$j" >"$T/aid-$k.json"
	TOKEN=$OPER batch_add POST "/api/v1/uploads/$MINE/artifact" 400 bad_request field=artifact_id \
		application/json "$T/aid-$k.json"
done < <(jq -nc --args '$ARGS.positional[] | {artifact_id: .}' "../../etc/passwd" ".hidden" "a/b" "")
((k == 4)) || fail "artifact_id bodies"
batch_run
unchanged "path traversal"

log "a bundle whose image was changed: 422 OTA_ERR_HASH, nothing stored"
TOKEN=$OPER create "$FX/chunks-changed.otab"
BAD=$UP
TOKEN=$OPER send_all "$FX/chunks-changed.otab"
BEFORE_ART=$(art_count)
BEFORE_STORE=$(store_state)
TOKEN=$OPER api POST "/api/v1/uploads/$BAD/artifact" -H 'Content-Type: application/json' -d '{"artifact_id": "evil"}'
expect 422 OTA_ERR_HASH
[[ $(art_count) == "$BEFORE_ART" ]] || fail "a changed image made an artifact"
sql_eq 0 "SELECT count(*) FROM artifacts WHERE artifact_id = 'evil' OR version = '2.6.0'" || fail "artifact row"
[[ $(store_state) == "$BEFORE_STORE" ]] || fail "a changed image reached the store: $(ls -A "$STORE")"
sql_eq 0 "SELECT count(*) FROM audit WHERE object = 'artifact:evil'" || fail "audit of a refused bundle"
sql_eq 1 "SELECT count(*) FROM uploads WHERE upload_id = '$BAD'" || fail "a refused finish dropped the session"
TOKEN=$OPER api DELETE "/api/v1/uploads/$BAD"
expect 200

log "a bundle that is not the declared sha256: 422 OTA_ERR_HASH, nothing stored"
TOKEN=$OPER create "$FX/fw2.otab" "$(sha256sum <"$FX/fw1.otab" | cut -c1-64)"
TOKEN=$OPER send_all "$FX/fw2.otab"
TOKEN=$ADMIN api POST /api/v1/keylists -H 'Content-Type: application/octet-stream' --data-binary @"$FX/keylist2.bin"
expect 201
BEFORE_ART=$(art_count)
BEFORE_STORE=$(store_state)
TOKEN=$OPER api POST "/api/v1/uploads/$UP/artifact" -H 'Content-Type: application/json' -d '{"artifact_id": "fw-1.2.0"}'
expect 422 OTA_ERR_HASH
[[ $(jbody .error.field) == sha256 ]] || fail "sha256 field"
[[ $(art_count) == "$BEFORE_ART" && $(store_state) == "$BEFORE_STORE" ]] || fail "a sha256 mismatch stored something"
TOKEN=$OPER api DELETE "/api/v1/uploads/$UP"
expect 200

log "unknown signing key, truncated header: 422"
TOKEN=$OPER create "$FX/fw-unknown-key.otab"
TOKEN=$OPER send_all "$FX/fw-unknown-key.otab"
TOKEN=$OPER api POST "/api/v1/uploads/$UP/artifact" -H 'Content-Type: application/json' -d '{"artifact_id": "evil"}'
expect 422 OTA_ERR_KEY_UNKNOWN
TOKEN=$OPER api DELETE "/api/v1/uploads/$UP"
expect 200
head -c 100 "$FX/docs.otab" >"$T/trunc.otab"
TOKEN=$OPER create "$T/trunc.otab"
TOKEN=$OPER send_all "$T/trunc.otab"
TOKEN=$OPER api POST "/api/v1/uploads/$UP/artifact" -H 'Content-Type: application/json' -d '{"artifact_id": "evil"}'
expect 422 OTA_ERR_FORMAT
TOKEN=$OPER api DELETE "/api/v1/uploads/$UP"
expect 200
sql_eq 0 "SELECT count(*) FROM artifacts WHERE artifact_id = 'evil'" || fail "evil stored"
BEFORE=$(state)

log "two requests for the same offset: exactly one writes"
TOKEN=$OPER create "$FX/docs.otab" ""
RACE=$UP
RACE_PIDS=()
chunk "$FX/docs.otab" 0 4096
cp "$T/chunk" "$T/race-a"
head -c 4096 /dev/urandom >"$T/race-b"
for w in a b; do
	curl -sS -o /dev/null -w '%{http_code}\n' -X PATCH -H "Authorization: Bearer $OPER" \
		-H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 0' \
		--data-binary @"$T/race-$w" "$API/api/v1/uploads/$RACE" >"$T/race-$w.code" &
	RACE_PIDS+=($!)
done
wait "${RACE_PIDS[@]}"
codes=$(cat "$T/race-a.code" "$T/race-b.code" | sort | tr '\n' ' ')
[[ $codes == "200 409 " ]] || fail "same-offset race: $codes"
winner=$(grep -l 200 "$T/race-a.code" "$T/race-b.code" | sed 's/\.code$//')
cmp -s "$UPDIR/$RACE" "$winner" || fail "the file does not hold the winner's chunk"
sql_eq 4096 "SELECT upload_offset FROM uploads WHERE upload_id = '$RACE'" || fail "race offset"
TOKEN=$OPER api DELETE "/api/v1/uploads/$RACE"
expect 200

log "bounds: at most 16 open sessions"
n=$(sql -c "SELECT count(*) FROM uploads")
printf '%s' '{"size": 100}' >"$T/size100.json"
for i in $(seq $((n + 1)) 16); do
	TOKEN=$OPER2 batch_add POST /api/v1/uploads 201 "" "" application/json "$T/size100.json"
done
TOKEN=$OPER2 batch_add POST /api/v1/uploads 409 conflict "" application/json "$T/size100.json"
batch_run
sql_eq 16 "SELECT count(*) FROM uploads" || fail "session bound"

log "expiry: an expired session is gone, purged (row, file, audit) before the next is created"
sql -c "UPDATE uploads SET expires_at = now() - interval '1 second' WHERE token_id <> (SELECT id FROM api_tokens WHERE name = 'up-ci')"
# a file without a row (a crash between the two), untouched for two days
STALE=u_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
: >"$UPDIR/$STALE"
touch -d '2 days ago' "$UPDIR/$STALE"
TOKEN=$OPER api GET "/api/v1/uploads/$MINE"
expect 200
EXPIRED=$(sql -c "SELECT upload_id FROM uploads WHERE expires_at < now() LIMIT 1")
TOKEN=$OPER2 api GET "/api/v1/uploads/$EXPIRED"
expect 404 not_found
[[ -f $UPDIR/$EXPIRED ]] || fail "expired file gone before the purge"
TOKEN=$OPER2 api POST /api/v1/uploads -H 'Content-Type: application/json' -d '{"size": 100}'
expect 201
sql_eq 2 "SELECT count(*) FROM uploads" || fail "expired sessions not purged"
[[ ! -e $UPDIR/$EXPIRED ]] || fail "expired session's file left"
[[ ! -e $UPDIR/$STALE ]] || fail "stale file without a session left"
sql_eq 15 "SELECT count(*) FROM audit WHERE action = 'upload.expire' AND actor = 'server'" || fail "expiry audit"
[[ $(ls -A "$UPDIR" | wc -l) == 2 ]] || fail "upload dir: $(ls -A "$UPDIR")"

log "peak RSS: a ~100 MB bundle in 8 MiB chunks does not grow the server's memory with its size"
check_server_exit
start_server
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SERVER_PID/status"; }
for _ in $(seq 1 50); do
	TOKEN=$OPER api GET /api/v1/me
	[[ $(status) == 200 ]] && break
	sleep 0.1
done
expect 200
HWM0=$(hwm)
T0=$(date +%s.%N)
TOKEN=$OPER create "$FX/big.otab"
TOKEN=$OPER send_all "$FX/big.otab"
TOKEN=$OPER api POST "/api/v1/uploads/$UP/artifact" -H 'Content-Type: application/json' -d '{"artifact_id": "fw-big"}'
expect 201
[[ $(jbody .image_size) == "$BIG_BYTES" ]] || fail "big artifact: $(body)"
T1=$(date +%s.%N)
HWM1=$(hwm)
GROWTH=$(((HWM1 - HWM0) / 1024))
log "VmHWM before ${HWM0} kB, after ${HWM1} kB: +${GROWTH} MiB for a $((BIG_BYTES / 1000000)) MB bundle in $(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }') s"
((GROWTH < 48)) || fail "peak RSS grew by $GROWTH MiB for a $((BIG_BYTES / 1000000)) MB bundle"
BIMG=$(jbody .image_sha256)
[[ $(stat -c %s "$STORE/$BIMG") == "$BIG_BYTES" ]] || fail "big image size in the store"
check_server_exit

log "contract: validate every recorded response against openapi.yaml"
wait "$NPM_PID" || fail "npm tools"
NODE_PATH=$NPM_DIR/node_modules node "$TOP/tests/integration/web-api/validate_contract.mjs" \
	"$TOP/web-api/openapi.yaml" "$RESPONSES" --cover Uploads || fail "responses do not match openapi.yaml"
log "PASS ($(wc -l <"$RESPONSES") responses validated)"
