#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ota-ctl against a real PostgreSQL and ota-server (the REST API test
# world of tests/integration/web-api/lib.sh): every command, --json, the
# profile file, exit codes, shell completion, and an artifact upload cut
# by a killed process (its connection dropped mid-chunk) that resumes from
# the server's offset when the same command runs again.
source "$TOP/tests/integration/web-api/lib.sh"
: "${OTA_CTL:?}"
BIG_BYTES=3000000
setup_world
"$WA_FIXTURES" "$FX" "$BIG_BYTES" >/dev/null || fail "big fixture"
start_server
ADMIN=$(new_token admin ctl-admin)
export HOME=$T/home XDG_CACHE_HOME=$T/home/.cache
mkdir -p "$HOME"
CTL=("$OTA_CTL" --server "$API")
ctl() { "${CTL[@]}" "$@"; }
code() { local rc=0; "$@" >"$T/out" 2>"$T/err" || rc=$?; echo "$rc"; }

log "usage errors exit 2; an unknown server or token exits 1"
[[ $(code "$OTA_CTL" --server "$API" frobnicate) == 2 ]] || fail "unknown command"
[[ $(code "$OTA_CTL" devices) == 2 ]] || fail "no server: $(cat "$T/err")"
rc=$(code "$OTA_CTL" --server "$API" --token fota_bad devices list)
[[ $rc == 1 ]] || fail "bad token: exit $rc: $(head -c 2000 "$T/err")"
grep -q "HTTP 401 unauthorized" "$T/err" || fail "401 not named: $(cat "$T/err")"

log "login: checks the token, writes the profile (0600), later commands use it"
[[ $(code "$OTA_CTL" --profile lab login --server "$API/" --token fota_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx) == 1 ]] ||
	fail "login with an unknown token"
[[ ! -e "$HOME/.config/fleetota/ctl.conf" ]] || fail "a refused login wrote the profile"
echo "$ADMIN" >"$T/admin.token"
"$OTA_CTL" --profile lab login --server "$API/" --token-file "$T/admin.token" >"$T/out" || fail "login"
grep -q "as token:[0-9]*:ctl-admin (admin)" "$T/out" || fail "login: $(cat "$T/out")"
[[ $(stat -c %a "$HOME/.config/fleetota/ctl.conf") == 600 ]] || fail "profile mode"
"$OTA_CTL" --profile lab --json tokens list >"$T/out" || fail "tokens with the profile"
jq -e '.items | length >= 1' "$T/out" >/dev/null || fail "tokens list --json"
export OTA_CTL_PROFILE=lab
CTL=("$OTA_CTL")

log "tokens: create (printed once), list, revoke"
OPER=$(ctl tokens create --role operator --name ctl-oper) || fail "tokens create"
[[ $OPER =~ ^fota_[A-Za-z0-9_-]{43}$ ]] || fail "token: $OPER"
VIEW=$(ctl tokens create --role viewer --name ctl-view)
id=$(ctl --json tokens list | jq -r '.items[] | select(.name == "ctl-view") | .id')
ctl tokens list | grep -q "ctl-oper *operator" || fail "tokens list: $(ctl tokens list)"
[[ $(code "$OTA_CTL" --token "$VIEW" tokens list) == 1 ]] || fail "a viewer listed tokens"
grep -q "HTTP 403 forbidden" "$T/err" || fail "403 not named"
ctl tokens revoke "$id" | grep -q "revoked" || fail "revoke"
[[ $(code "$OTA_CTL" --token "$VIEW" devices list) == 1 ]] || fail "a revoked token still works"

log "artifacts upload (a small bundle), list, show"
bin=(-H 'Content-Type: application/octet-stream')
TOKEN=$ADMIN api POST /api/v1/rootlists "${bin[@]}" --data-binary @"$FX/rootlist1.bin"
TOKEN=$ADMIN api POST /api/v1/rootlists "${bin[@]}" --data-binary @"$FX/rootlist2.bin"
TOKEN=$ADMIN api POST /api/v1/keylists "${bin[@]}" --data-binary @"$FX/keylist1.bin"
expect 201
"$OTA_CTL" --token "$OPER" artifacts upload "$FX/fw1.otab" --id fw-1.1.0 >"$T/out" 2>"$T/err" ||
	fail "upload: $(cat "$T/err")"
grep -q "^fw-1.1.0 *fx-model *1.1.0" "$T/out" || fail "upload output: $(cat "$T/out")"
ctl --json artifacts show fw-1.1.0 | jq -e '.image_size == 65536' >/dev/null || fail "show"
ctl artifacts list | grep -q "^fw-1.1.0 " || fail "list"
[[ -z "$(ls -A "$XDG_CACHE_HOME/fleetota" 2>/dev/null)" ]] || fail "upload state left behind"

log "the upload's progress bar, drawn when stderr is a terminal (script(1) gives it one)"
n=$(stat -c %s "$FX/docs.otab")
script -qec "$(printf '%q ' "$OTA_CTL" --token "$OPER" artifacts upload "$FX/docs.otab" --id fw-2.0.0 --chunk 16384)" \
	/dev/null >"$T/tty.out" || fail "upload on a terminal: $(cat "$T/tty.out")"
tr '\r' '\n' <"$T/tty.out" >"$T/tty.lines"
grep -q "^\[#\{40\}\] 100% $n/$n bytes [0-9]* kB/s" "$T/tty.lines" || fail "no full bar: $(cat "$T/tty.lines")"
# drawn as it goes: a part-full bar before the full one
grep -q "^\[#*\.\.*\] *[0-9]*% [0-9]*/$n bytes" "$T/tty.lines" || fail "no partial bar: $(cat "$T/tty.lines")"
grep -q "^fw-2.0.0 *fx-model *2.0.0" "$T/tty.lines" || fail "upload on a terminal: $(cat "$T/tty.lines")"

log "a cut upload resumes: kill ota-ctl mid-chunk (80 kB/s), run it again"
size=$(stat -c %s "$FX/big.otab")
patches_before=$(grep -c "access PATCH /api/v1/uploads/.* 200" "$T/server.log" || true)
"$OTA_CTL" --token "$OPER" artifacts upload "$FX/big.otab" --id big-1 --chunk 262144 --rate 80000 \
	>"$T/cut.out" 2>"$T/cut.err" &
CUT_PID=$!
wait_offset() {
	[[ $(sql -c "SELECT coalesce(max(upload_offset), 0) FROM uploads") -ge 524288 ]]
}
for _ in $(seq 1 300); do
	wait_offset && break
	kill -0 "$CUT_PID" 2>/dev/null || fail "the upload ended early: $(cat "$T/cut.err")"
	sleep 0.1
done
wait_offset || fail "the upload did not get going"
kill -KILL "$CUT_PID"
wait "$CUT_PID" 2>/dev/null || true
sleep 0.5
cut_at=$(sql -c "SELECT upload_offset FROM uploads")
((cut_at > 0 && cut_at < size)) || fail "offset after the cut: $cut_at of $size"
# the killed chunk was never confirmed: the server kept only whole chunks
((cut_at % 262144 == 0)) || fail "a partial chunk was kept: $cut_at"
"$OTA_CTL" --token "$OPER" --json artifacts upload "$FX/big.otab" --id big-1 --chunk 262144 \
	>"$T/out" 2>"$T/err" || fail "resume: $(cat "$T/err")"
grep -q "resuming upload u_[0-9a-f]* at offset $cut_at of $size" "$T/err" || fail "not resumed: $(cat "$T/err")"
jq -e --argjson n $((BIG_BYTES)) '.artifact_id == "big-1" and .image_size == $n' "$T/out" >/dev/null ||
	fail "resumed artifact: $(cat "$T/out")"
sql_eq 0 "SELECT count(*) FROM uploads" || fail "the session was not closed"
# resumed, not restarted: the second run sent only what was missing
patches=$(($(grep -c "access PATCH /api/v1/uploads/.* 200" "$T/server.log" || true) - patches_before))
((patches == (size + 262143) / 262144)) || fail "$patches chunks acknowledged for $size bytes"
log "   cut at $cut_at of $size bytes, resumed there: $patches chunks of 256 KiB acknowledged in all"

log "devices list: query filters and the dynamic-group filter language"
ctl devices list --model fx-model | awk '{print $1}' | sort | tr '\n' ' ' | grep -qx "dev-1 dev-2 dev-4 " ||
	fail "devices --model: $(ctl devices list --model fx-model)"
ctl --json devices list --filter '{"field":"version_code","op":"ge","value":2}' |
	jq -e '[.items[].device_id] == ["dev-3", "dev-4"]' >/dev/null || fail "devices --filter"
[[ $(code "$OTA_CTL" devices list --filter '{"field":"nope","op":"eq","value":1}') == 1 ]] || fail "bad filter"
[[ $(code "$OTA_CTL" devices list --colour red) == 2 ]] || fail "unknown option"

log "campaign create from JSON, start, watch (exit code by outcome, 304 while unchanged)"
cat >"$T/c1.json" <<'JSON'
{"id": "ctl-1", "artifact": "fw-1.1.0", "target": {"model": "fx-model"},
 "stages": [{"count": 1, "failure_ratio": 0.5}, {"percent": 100}], "rate_per_minute": 60}
JSON
"$OTA_CTL" --token "$OPER" campaign create "$T/c1.json" | grep -q "^ctl-1  draft" || fail "create"
cat >"$T/c2.yaml" <<'YAML'
# the same body as YAML: plain scalars typed, quoted ones strings
id: "ctl-2"
artifact: fw-1.1.0
target: {model: [fx-model], tags_any: ["1.5"]}
stages:
  - count: 1
    failure_ratio: 0.25
  - percent: 100
rate_per_minute: 30
requires_approval: true
YAML
"$OTA_CTL" --token "$OPER" --json campaign create "$T/c2.yaml" >"$T/out" || fail "create from YAML"
jq -e '.id == "ctl-2" and .stages[0].failure_ratio == 0.25 and .stages[1].percent == 100 and
	.rate_per_minute == 30 and .requires_approval == true and .target.tags_any == ["1.5"]' "$T/out" >/dev/null ||
	fail "YAML campaign: $(cat "$T/out")"
{
	echo 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]'
	for l in b c d e f g; do
		p=$(printf '%s' "$l" | tr 'b-g' 'a-f')
		echo "$l: &$l [*$p, *$p, *$p, *$p, *$p, *$p, *$p, *$p, *$p, *$p]"
	done
} >"$T/laughs.yaml"
[[ $(code "$OTA_CTL" campaign create "$T/laughs.yaml") == 2 ]] || fail "an alias bomb was expanded"
grep -q "too many values" "$T/err" || fail "alias bomb: $(cat "$T/err")"
echo '{"id": "ctl-x", "stages": [' >"$T/bad.json"
[[ $(code "$OTA_CTL" campaign create "$T/bad.json") == 2 ]] || fail "malformed JSON file"
"$OTA_CTL" --token "$OPER" campaign start ctl-1 >/dev/null || fail "start"
sql -c "SELECT count(*) FROM rollout_tick('ctl-test')" >/dev/null
ctl campaign list --state running | grep -q "^ctl-1 " || fail "list --state"
ctl campaign show ctl-1 | grep -qE "^  stage 1 \[[#x>.]{30}\] 0/1 confirmed" || fail "show: $(ctl campaign show ctl-1)"
"$OTA_CTL" --token "$VIEW" campaign pause ctl-1 2>/dev/null && fail "a revoked viewer paused"
"$OTA_CTL" campaign watch ctl-1 --interval 0.2 >"$T/watch.out" 2>"$T/watch.err" &
W=$!
# paused once the watch has been answered 304 (unchanged) twice: not after a
# fixed 2 s, which a loaded machine may spend starting it
unchanged() { (($(grep -c "access GET /api/v1/campaigns/ctl-1 304 " "$T/server.log" || true) >= 2)); }
for _ in $(seq 1 300); do
	unchanged && break
	kill -0 "$W" 2>/dev/null || break
	sleep 0.1
done
unchanged || fail "the watch got no 304 in 30 s: $(cat "$T/watch.err")"
"$OTA_CTL" --token "$OPER" campaign pause ctl-1 >/dev/null || fail "pause"
rc=0
wait "$W" || rc=$?
((rc == 3)) || fail "watch of a paused campaign exited $rc: $(cat "$T/watch.err")"
grep -qE "unchanged: 304" "$T/watch.err" && [[ $(sed -nE 's/.*, ([0-9]+) unchanged.*/\1/p' "$T/watch.err") -gt 0 ]] ||
	fail "watch never got a 304: $(cat "$T/watch.err")"
grep -q "ctl-1  paused" "$T/watch.out" || fail "watch output: $(cat "$T/watch.out")"
"$OTA_CTL" --token "$OPER" campaign cancel ctl-1 >/dev/null || fail "cancel"
[[ $(code "$OTA_CTL" --json campaign watch ctl-1) == 4 ]] || fail "watch of a cancelled campaign"
jq -e '.state == "cancelled"' "$T/out" >/dev/null || fail "watch --json: $(cat "$T/out")"
[[ $(code "$OTA_CTL" campaign watch nope) == 1 ]] || fail "watch of an unknown campaign"

log "audit: filtered by action"
ctl --json audit --action campaign.pause | jq -e '.items | length == 1 and .[0].object == "ctl-1"' >/dev/null ||
	fail "audit: $(ctl audit --action campaign.pause)"
ctl audit --object ctl-1 | grep -c "campaign\." | grep -qx 4 || fail "audit --object"

log "a viewer cannot pause: HTTP 403 forbidden named, the campaign unchanged"
VIEW2=$(ctl tokens create --role viewer --name ctl-view2)
before=$(sql -c "SELECT state, updated_at FROM campaigns WHERE campaign_id = 'ctl-2'")
for a in pause start; do
	[[ $(code "$OTA_CTL" --token "$VIEW2" campaign "$a" ctl-2) == 1 ]] || fail "a viewer's $a of ctl-2 went through"
	grep -q "HTTP 403 forbidden" "$T/err" || fail "viewer $a: $(cat "$T/err")"
done
[[ $(sql -c "SELECT state, updated_at FROM campaigns WHERE campaign_id = 'ctl-2'") == "$before" ]] ||
	fail "the viewer's refused start changed ctl-2"
"$OTA_CTL" --token "$VIEW2" campaign show ctl-2 >/dev/null || fail "a viewer cannot show ctl-2"

log "campaign approve: not by its creator (four eyes), then by another token"
"$OTA_CTL" --token "$OPER" campaign start ctl-2 | grep -q "^ctl-2  awaiting_approval " ||
	fail "start of ctl-2 (requires approval)"
[[ $(code "$OTA_CTL" --token "$OPER" campaign approve ctl-2) == 1 ]] || fail "the creator approved ctl-2"
grep -q "HTTP 403 forbidden" "$T/err" || fail "creator's approve: $(cat "$T/err")"
[[ $(ctl --json campaign approve ctl-2 | jq -r .state) == running ]] || fail "approve by another token"
sql -c "SELECT count(*) FROM rollout_tick('ctl-test')" >/dev/null
[[ $(code "$OTA_CTL" campaign watch ctl-2) == 0 ]] || fail "ctl-2 (no device matches) did not complete"

log "campaign resume, then watch exits 0 on a completed campaign, with a full bar"
cat >"$T/c3.json" <<'JSON'
{"id": "ctl-3", "artifact": "fw-1.1.0", "target": {"devices": ["dev-1"]}, "stages": [{"percent": 100}]}
JSON
"$OTA_CTL" --token "$OPER" campaign create "$T/c3.json" >/dev/null || fail "create ctl-3"
"$OTA_CTL" --token "$OPER" campaign start ctl-3 >/dev/null || fail "start ctl-3"
"$OTA_CTL" --token "$OPER" campaign pause ctl-3 | grep -q "^ctl-3  paused " || fail "pause ctl-3"
[[ $("$OTA_CTL" --token "$OPER" --json campaign resume ctl-3 | jq -r .state) == running ]] || fail "resume ctl-3"
sql -c "SELECT count(*) FROM rollout_tick('ctl-test')" >/dev/null
# dev-1 reports that it runs 1.1.0 (version code 2): the campaign's only device confirmed
sql -c "SELECT rollout_report('dev-1', 'confirmed', 2, NULL, NULL, '', 'ctl-3')" >/dev/null
for _ in $(seq 1 50); do
	sql -c "SELECT count(*) FROM rollout_tick('ctl-test')" >/dev/null
	sql_eq completed "SELECT state FROM campaigns WHERE campaign_id = 'ctl-3'" && break
	sleep 0.1
done
rc=$(code "$OTA_CTL" campaign watch ctl-3)
((rc == 0)) || fail "watch of a completed campaign exited $rc: $(cat "$T/err")"
grep -qx "  stage 1 \[#\{30\}\] 1/1 confirmed, 0 failed, 0 timed out, 0 in flight" "$T/out" ||
	fail "watch of ctl-3: $(cat "$T/out")"

log "watch exits 5 on a failed campaign (its artifact expired)"
cat >"$T/c4.json" <<'JSON'
{"id": "ctl-4", "artifact": "big-1", "target": {"devices": ["dev-2"]}, "stages": [{"percent": 100}]}
JSON
"$OTA_CTL" --token "$OPER" campaign create "$T/c4.json" >/dev/null || fail "create ctl-4"
"$OTA_CTL" --token "$OPER" campaign start ctl-4 >/dev/null || fail "start ctl-4"
# the engine fails a campaign whose artifact expired; the fixtures' bundles
# never expire, so the row says this one did
sql -c "UPDATE artifacts SET expires_at = 1 WHERE artifact_id = 'big-1'"
sql -c "SELECT count(*) FROM rollout_tick('ctl-test')" >/dev/null
rc=$(code "$OTA_CTL" campaign watch ctl-4)
((rc == 5)) || fail "watch of a failed campaign exited $rc: $(cat "$T/out") $(cat "$T/err")"
grep -q "^ctl-4  failed  target 1  artifact expired (OTA_ERR_EXPIRED)$" "$T/out" || fail "watch of ctl-4: $(cat "$T/out")"

log "devices show"
ctl devices show dev-1 | grep -q "^dev-1 *fx-model *1.0.0 " || fail "devices show: $(ctl devices show dev-1)"
ctl --json devices show dev-4 | jq -e '.device_id == "dev-4" and .version == "1.1.0"' >/dev/null ||
	fail "devices show --json"
[[ $(code "$OTA_CTL" devices show nope) == 1 ]] || fail "devices show of an unknown device"
grep -q "HTTP 404 " "$T/err" || fail "unknown device: $(cat "$T/err")"
[[ $(code "$OTA_CTL" devices show dev-1 dev-2) == 2 ]] || fail "devices show with two ids"
grep -q "^usage: ota-ctl devices list .* | show ID$" "$T/err" || fail "devices show usage: $(cat "$T/err")"

log "--json: every command prints one JSON object on stdout"
ADMIN_FILE=$T/admin.token
json_ok() { # WHAT ota-ctl-args...
	local what=$1
	shift
	"$OTA_CTL" --json "$@" >"$T/json.out" 2>"$T/json.err" || fail "--json $what: $(cat "$T/json.err")"
	jq -es 'length == 1 and (.[0] | type) == "object"' "$T/json.out" >/dev/null ||
		fail "--json $what: $(head -c 400 "$T/json.out")"
}
json_ok login --config "$T/json.conf" login --server "$API" --token-file "$ADMIN_FILE"
json_ok "artifacts list" artifacts list
json_ok "artifacts show" artifacts show fw-1.1.0
json_ok "campaign list" campaign list
json_ok "campaign show" campaign show ctl-3
sed 's/"ctl-1"/"ctl-5"/' "$T/c1.json" >"$T/c5.json"
json_ok "campaign create" --token "$OPER" campaign create "$T/c5.json"
for a in start pause cancel; do
	json_ok "campaign $a" --token "$OPER" campaign "$a" ctl-5
done
json_ok "devices list" devices list --model fx-model
json_ok "tokens list" tokens list
json_ok "tokens create" tokens create --role viewer --name ctl-json
id=$(jq -r .id "$T/json.out")
json_ok "tokens revoke" tokens revoke "$id"
json_ok audit audit --limit 5

log "shell completion"
"$OTA_CTL" completion bash >"$T/compl.sh"
bash -n "$T/compl.sh" || fail "completion script"
words=$(bash -c "source '$T/compl.sh'; COMP_WORDS=(ota-ctl campaign w); COMP_CWORD=2; _ota_ctl; echo \${COMPREPLY[*]}")
[[ $words == watch ]] || fail "completion of 'campaign w': '$words'"
words=$(bash -c "source '$T/compl.sh'; COMP_WORDS=(ota-ctl --json art); COMP_CWORD=2; _ota_ctl; echo \${COMPREPLY[*]}")
[[ $words == artifacts ]] || fail "completion of 'art': '$words'"
check_server_exit
log "PASS"
