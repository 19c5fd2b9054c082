/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signed freshness (TUF's and Uptane's timestamp role): a short-lived
 * statement of the current release of one product line, signed by a key
 * that the KeyList gives the timestamp role and nothing else. The same
 * code runs on the device, in the server (which signs with that key) and
 * in ota-keys.
 */
#include <string.h>

#include "fleetota/limits.h"
#include "fleetota/trust.h"
#include "fleetota/utf8.h"

/* Bounded, present when required, and UTF-8 (protobuf-c does not check). */
static bool text_ok(const char *s, bool required)
{
	if (!s)
		return !required;
	size_t len = 0;
	while (len <= OTA_MAX_STRING_BYTES && s[len] != '\0')
		len++;
	return len <= OTA_MAX_STRING_BYTES && ota_utf8_valid(s, len) && (!required || len > 0);
}

enum ota_err ota_timestamp_parse(const Fleetota__V1__Signed *env, struct ota_arena *arena,
				 Fleetota__V1__Timestamp **ret_ts)
{
	if (ota_envelope_check(env) != OTA_OK)
		return OTA_ERR_FORMAT;
	Fleetota__V1__Timestamp *ts =
		fleetota__v1__timestamp__unpack(&arena->allocator, env->body.len, env->body.data);
	if (!ts || !text_ok(ts->product, true) || !text_ok(ts->version, false) ||
	    !text_ok(ts->artifact, false))
		return OTA_ERR_FORMAT;
	/* never "never": a timestamp that does not expire is no freshness at all */
	if (ts->expires_at == 0 || ts->expires_at <= ts->issued_at ||
	    ts->expires_at - ts->issued_at > OTA_MAX_TIMESTAMP_LIFETIME_S)
		return OTA_ERR_FORMAT;
	if (ts->manifest_sha256.len != 0 && ts->manifest_sha256.len != OTA_SHA256_BYTES)
		return OTA_ERR_FORMAT;
	*ret_ts = ts;
	return OTA_OK;
}

enum ota_err ota_timestamp_verify(const Fleetota__V1__KeyList *keylist,
				  const Fleetota__V1__Signed *env, struct ota_arena *arena,
				  Fleetota__V1__Timestamp **ret_ts,
				  const Fleetota__V1__PublicKey **ret_signer)
{
	Fleetota__V1__Timestamp *ts = NULL;
	enum ota_err err = ota_timestamp_parse(env, arena, &ts);
	if (err != OTA_OK)
		return err;
	err = ota_keylist_signature_verify(keylist, OTA_OBJ_TIMESTAMP,
					   FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP, env,
					   ts->issued_at, ret_signer);
	if (err != OTA_OK)
		return err;
	*ret_ts = ts;
	return OTA_OK;
}

bool ota_timestamp_fresh(const Fleetota__V1__Timestamp *ts, uint64_t now)
{
	return now != 0 && now < ts->expires_at;
}

bool ota_keylist_signed_by_role(const Fleetota__V1__KeyList *keylist,
				const Fleetota__V1__Signed *env, Fleetota__V1__KeyRole role)
{
	if (!keylist || !env)
		return false;
	for (size_t s = 0; s < env->n_signatures; s++) {
		const Fleetota__V1__Signature *sig = env->signatures[s];
		const Fleetota__V1__PublicKey *key =
			ota_keylist_find(keylist, sig->key_id.data, sig->key_id.len);
		if (key && key->role == role)
			return true;
	}
	return false;
}
