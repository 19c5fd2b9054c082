/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signed freshness on the device (fleetota/freshness.h). Verification is
 * libotaproto's (the same code as the server's and ota-keys'); this file
 * keeps the newest Timestamp and the freeze report in their own record.
 */
#include <string.h>

#include "agent-internal.h"
#include "fleetota/freshness.h"
#include "text-internal.h"

/* One copy of the freshness record. */
#define FRESHNESS_COPY_BYTES (OTA_RECORD_COPY_OVERHEAD + OTA_AGENT_FRESHNESS_RECORD_BYTES)

static enum ota_err freshness_load(struct ota_agent *agent)
{
	uint8_t buf[FRESHNESS_COPY_BYTES];
	struct ota_record_copy copy;
	struct ota_freshness f;
	if (agent->freshness_loaded)
		return OTA_OK;
	memset(&f, 0, sizeof(f));
	enum ota_err err = ota_core_record_read(agent, OTA_REC_FRESHNESS, buf, sizeof(buf), &copy);
	if (err == OTA_OK && ota_freshness_decode(copy.payload, copy.payload_len, &f) != OTA_OK)
		err = OTA_ERR_STORAGE;
	if (err == OTA_ERR_STORAGE) {
		/* both copies lost: start over (the next fresh Timestamp is kept) */
		ota_core_log(agent, OTA_LOG_ERROR, "freshness record unreadable, starting over");
		memset(&f, 0, sizeof(f));
	} else if (err != OTA_OK && err != OTA_ERR_NOT_FOUND) {
		return err;
	}
	agent->freshness = f;
	agent->freshness_loaded = true;
	return OTA_OK;
}

static enum ota_err freshness_store(struct ota_agent *agent, const struct ota_freshness *next)
{
	uint8_t buf[FRESHNESS_COPY_BYTES];
	size_t len = ota_freshness_encode(next, buf + OTA_RECORD_COPY_HEADER_BYTES,
					  sizeof(buf) - OTA_RECORD_COPY_OVERHEAD);
	enum ota_err err = ota_core_record_store(agent, OTA_REC_FRESHNESS, buf, sizeof(buf), len);
	if (err == OTA_OK)
		agent->freshness = *next;
	return err;
}

static void version_copy(char *dst, size_t cap, const char *src)
{
	struct ota_text t;
	ota_text_init(&t, dst, cap);
	ota_text_str(&t, src ? src : "");
}

/* Logs "what: <detail>" and returns err (a refusal that changes nothing). */
static enum ota_err refuse_quietly(struct ota_agent *agent, enum ota_err err, const char *what,
				   uint64_t a, uint64_t b)
{
	char line[OTA_AGENT_DETAIL_BYTES];
	struct ota_text t;
	ota_text_init(&t, line, sizeof(line));
	ota_text_str(&t, ota_err_name(err));
	ota_text_str(&t, ": ");
	ota_text_str(&t, what);
	ota_text_u64(&t, a);
	ota_text_str(&t, " / ");
	ota_text_u64(&t, b);
	ota_core_log(agent, OTA_LOG_WARN, line);
	return err;
}

enum ota_err ota_agent_timestamp(struct ota_agent *agent, const uint8_t *timestamp, size_t len)
{
	struct ota_arena arena;
	Fleetota__V1__KeyList *kl = NULL;
	Fleetota__V1__Signed *env = NULL;
	Fleetota__V1__Timestamp *ts = NULL;
	if (!agent || !timestamp)
		return OTA_ERR_INVALID_ARG;
	enum ota_err err = ota_core_trust(agent, &arena, &kl);
	if (err != OTA_OK)
		return err;
	if (ota_envelope_decode(timestamp, len, &arena, &env) != OTA_OK)
		return ota_core_reject(agent, OTA_ERR_FORMAT, "malformed Timestamp envelope");
	const Fleetota__V1__PublicKey *signer = NULL;
	err = ota_timestamp_verify(kl, env, &arena, &ts, &signer);
	if (err != OTA_OK)
		return ota_core_reject(agent, err,
				       err == OTA_ERR_FORMAT ? "malformed Timestamp"
							     : "Timestamp not signed by the "
							       "timestamp key");
	if (strcmp(ts->product, agent->config.model) != 0)
		return ota_core_reject(agent, OTA_ERR_HW_MISMATCH,
				       "Timestamp is for another product line");
	err = freshness_load(agent);
	if (err != OTA_OK)
		return err;
	const struct ota_freshness *have = &agent->freshness;
	uint64_t clock = 0;
	if (ota_core_clock(agent, &clock) && ts->issued_at > clock &&
	    ts->issued_at - clock > OTA_TIMESTAMP_MAX_SKEW_S)
		return ota_core_reject(agent, OTA_ERR_EXPIRED,
				       "Timestamp issued after the trusted clock");
	/*
	 * The ratchet is per timestamp key: after the roots rotate that key (a
	 * new KeyList), the new key's Timestamps count from scratch, so one
	 * that a stolen key dated far ahead cannot hold a device forever.
	 */
	bool same_key = memcmp(have->signer, signer->key_id.data, OTA_KEY_ID_BYTES) == 0;
	if (same_key && ts->issued_at < have->issued_at)
		return refuse_quietly(agent, OTA_ERR_TIMESTAMP_ROLLBACK,
				      "Timestamp issued / newest kept ", ts->issued_at,
				      have->issued_at);
	uint64_t now = ota_core_now(agent);
	if (now < ts->issued_at)
		now = ts->issued_at;
	bool fresh = ota_timestamp_fresh(ts, now);
	if (same_key && ts->issued_at == have->issued_at && (!fresh || !have->frozen)) {
		/* the one we keep: nothing to write */
		return fresh ? OTA_OK
			     : refuse_quietly(agent, OTA_ERR_EXPIRED,
					      "Timestamp expired at / trusted time ",
					      ts->expires_at, now);
	}

	/*
	 * Newer: kept even when stale (it is authentic, and its expiry says
	 * since when the server's view is old), but only a fresh one closes a
	 * freeze report.
	 */
	struct ota_freshness next = *have;
	struct ota_agent_state state = agent->state;
	bool restored = next.frozen && fresh;
	next.issued_at = ts->issued_at;
	next.expires_at = ts->expires_at;
	next.version_code = ts->version_code;
	next.frozen = next.frozen && !fresh;
	version_copy(next.version, sizeof(next.version), ts->version);
	memcpy(next.signer, signer->key_id.data, OTA_KEY_ID_BYTES);
	if (restored)
		(void)ota_core_event(agent, &state, OTA_EVENT_FRESHNESS_RESTORED, OTA_OK,
				     "fresh Timestamp");
	err = freshness_store(agent, &next);
	if (err != OTA_OK)
		return err;
	/*
	 * Unlike a manifest's, a Timestamp's issued_at does not raise the
	 * latest trusted time: its key is online, and a stolen one must not
	 * be able to expire every manifest and KeyList of the device.
	 */
	if (restored)
		err = ota_core_state_store(agent, &state);
	if (err == OTA_OK && !fresh)
		return refuse_quietly(agent, OTA_ERR_EXPIRED,
				      "Timestamp expired at / trusted time ", ts->expires_at, now);
	return err;
}

enum ota_err ota_agent_freshness_check(struct ota_agent *agent)
{
	if (!agent || !agent->state.provisioned)
		return OTA_ERR_INVALID_ARG;
	uint64_t max_age = agent->config.freshness_max_age_s;
	if (max_age == 0)
		return OTA_OK;
	if (agent->state_lost)
		return OTA_ERR_STORAGE;
	enum ota_err err = freshness_load(agent);
	if (err != OTA_OK)
		return err;
	uint64_t now = ota_core_now(agent);
	struct ota_freshness next = agent->freshness;
	if (now == 0)
		return next.frozen ? OTA_ERR_FROZEN : OTA_OK;
	if (next.issued_at == 0 && next.since == 0) {
		next.since = now; /* the clock of a device that never saw one starts here */
		return freshness_store(agent, &next);
	}
	/* the last moment the device held a fresh Timestamp */
	uint64_t stale_since = next.issued_at ? next.expires_at : next.since;
	if (next.frozen || now < stale_since || now - stale_since < max_age)
		return next.frozen ? OTA_ERR_FROZEN : OTA_OK;

	char detail[OTA_AGENT_DETAIL_BYTES];
	struct ota_text t;
	ota_text_init(&t, detail, sizeof(detail));
	ota_text_str(&t, "no fresh Timestamp since ");
	ota_text_u64(&t, stale_since);
	ota_text_str(&t, ", trusted time ");
	ota_text_u64(&t, now);
	ota_core_log(agent, OTA_LOG_WARN, detail);
	struct ota_agent_state state = agent->state;
	next.frozen = true;
	(void)ota_core_event(agent, &state, OTA_EVENT_FREEZE_SUSPECTED, OTA_ERR_FROZEN, detail);
	err = freshness_store(agent, &next);
	if (err == OTA_OK)
		err = ota_core_state_store(agent, &state);
	return err == OTA_OK ? OTA_ERR_FROZEN : err;
}

enum ota_err ota_agent_freshness(struct ota_agent *agent, struct ota_freshness *ret_freshness)
{
	if (!agent || !ret_freshness)
		return OTA_ERR_INVALID_ARG;
	enum ota_err err = freshness_load(agent);
	if (err != OTA_OK)
		return err;
	*ret_freshness = agent->freshness;
	return OTA_OK;
}
