/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kr.h"

static json_t *hex_string(const uint8_t *data, size_t len)
{
	if (len > OTA_MAX_ENVELOPE_BYTES)
		return json_string("(too long)");
	char *buf = malloc(2 * len + 1);
	if (!buf)
		return NULL;
	ota_hex_encode(data, len, buf);
	json_t *j = json_string(buf);
	free(buf);
	return j;
}

/* A string from the wire; jansson wants UTF-8, so anything else is shown as hex. */
static json_t *wire_string(const char *s)
{
	if (!s)
		return json_string("");
	json_t *j = json_string(s);
	return j ? j : hex_string((const uint8_t *)s, strlen(s));
}

static json_t *time_value(uint64_t t)
{
	char buf[KR_TIME_TEXT_BYTES];
	return json_pack("{s:I, s:s}", "epoch", (json_int_t)(t > INT64_MAX ? INT64_MAX : t), "utc",
			 kr_time_format(t, buf, sizeof(buf)));
}

static json_t *u64(uint64_t v)
{
	/* JSON integers are int64 in jansson; larger values are shown as strings */
	if (v > (uint64_t)INT64_MAX) {
		char buf[KR_U64_TEXT_BYTES];
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
		return json_string(buf);
	}
	return json_integer((json_int_t)v);
}

static json_t *pubkey_json(const Fleetota__V1__PublicKey *key)
{
	return json_pack("{s:o, s:s, s:o, s:o, s:o, s:s, s:o}", "name", wire_string(key->name),
			 "alg", kr_alg_name(key->alg), "key_id",
			 hex_string(key->key_id.data, key->key_id.len), "not_before",
			 time_value(key->not_before), "not_after", time_value(key->not_after),
			 "role",
			 key->role == FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP ? "timestamp"
										 : "operational",
			 "public_key", hex_string(key->public_key.data, key->public_key.len));
}

static json_t *keys_json(Fleetota__V1__PublicKey *const *keys, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		json_array_append_new(arr, pubkey_json(keys[i]));
	return arr;
}

static json_t *signatures_json(const Fleetota__V1__Signed *env)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < env->n_signatures; i++) {
		const Fleetota__V1__Signature *sig = env->signatures[i];
		json_array_append_new(arr, json_pack("{s:o, s:s, s:o}", "key_id",
						     hex_string(sig->key_id.data, sig->key_id.len),
						     "alg", kr_alg_name(sig->alg), "sig",
						     hex_string(sig->sig.data, sig->sig.len)));
	}
	return arr;
}

/* The encryption block: recipients by label and key id, never a key. */
static json_t *encryption_json(const Fleetota__V1__Encryption *e)
{
	json_t *rcpts = json_array();
	for (size_t i = 0; rcpts && i < e->n_recipients; i++)
		json_array_append_new(rcpts,
				      json_pack("{s:o, s:o}", "name",
						wire_string(e->recipients[i]->name), "key_id",
						hex_string(e->recipients[i]->key_id.data,
							   e->recipients[i]->key_id.len)));
	return json_pack("{s:s, s:o, s:o, s:o, s:o}", "alg", "aes256gcm-x25519-hkdf-aeskw",
			 "ciphertext_sha256",
			 hex_string(e->ciphertext_sha256.data, e->ciphertext_sha256.len),
			 "ciphertext_size", u64(e->ciphertext_size), "chunk_bytes",
			 u64(e->chunk_bytes), "recipients", rcpts);
}

static json_t *manifest_json(const Fleetota__V1__Manifest *m)
{
	json_t *revs = json_array();
	for (size_t i = 0; revs && i < m->n_hw_revisions; i++)
		json_array_append_new(revs, wire_string(m->hw_revisions[i]));
	json_t *obj = json_pack(
		"{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:o, s:o, s:{s:o, s:o, s:o}}",
		"sequence", u64(m->sequence), "product", wire_string(m->product), "hw_revisions",
		revs, "version", wire_string(m->version), "version_code", u64(m->version_code),
		"security_counter", u64(m->security_counter), "min_installed_version",
		u64(m->min_installed_version), "allow_downgrade", (int)m->allow_downgrade,
		"is_security_update", (int)m->is_security_update, "issued_at",
		time_value(m->issued_at), "expires_at", time_value(m->expires_at), "image",
		"sha256", hex_string(m->image->sha256.data, m->image->sha256.len), "size",
		u64(m->image->size), "name", wire_string(m->image->name));
	if (obj && m->encryption)
		json_object_set_new(obj, "encryption", encryption_json(m->encryption));
	if (obj && m->is_security_update)
		json_object_set_new(obj, "security_fix",
				    json_pack("{s:o, s:o, s:o}", "fixes_version_code_min",
					      u64(m->fixes_version_code_min),
					      "fixes_version_code_max",
					      u64(m->fixes_version_code_max), "advisory",
					      wire_string(m->advisory)));
	if (obj && m->delta)
		json_object_set_new(
			obj, "delta",
			json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "base_sha256",
				  hex_string(m->delta->base_sha256.data, m->delta->base_sha256.len),
				  "base_size", u64(m->delta->base_size), "sha256",
				  hex_string(m->delta->sha256.data, m->delta->sha256.len), "size",
				  u64(m->delta->size), "algorithm",
				  u64((uint64_t)m->delta->algorithm), "chunk_bytes",
				  u64(m->delta->chunk_bytes)));
	return obj;
}

/* The body of a signed object of a known kind, or NULL. */
static json_t *signed_json(const Fleetota__V1__Signed *env, enum kr_obj_kind kind,
			   struct ota_arena *arena)
{
	json_t *body = NULL;
	if (kind == KR_OBJ_ROOTLIST) {
		Fleetota__V1__RootList *r;
		if (ota_rootlist_parse(env, arena, &r) == OTA_OK)
			body = json_pack("{s:o, s:i, s:o, s:o, s:o}", "version", u64(r->version),
					 "threshold", (int)r->threshold, "issued_at",
					 time_value(r->issued_at), "expires_at",
					 time_value(r->expires_at), "keys",
					 keys_json(r->keys, r->n_keys));
	} else if (kind == KR_OBJ_KEYLIST) {
		Fleetota__V1__KeyList *k;
		if (ota_keylist_parse(env, arena, &k) == OTA_OK)
			body = json_pack("{s:o, s:o, s:o, s:o, s:o}", "version", u64(k->version),
					 "rootlist_version", u64(k->rootlist_version), "issued_at",
					 time_value(k->issued_at), "expires_at",
					 time_value(k->expires_at), "keys",
					 keys_json(k->keys, k->n_keys));
	} else if (kind == KR_OBJ_MANIFEST) {
		Fleetota__V1__Manifest *m;
		if (ota_manifest_parse(env, arena, &m) == OTA_OK)
			body = manifest_json(m);
	} else if (kind == KR_OBJ_TIMESTAMP) {
		Fleetota__V1__Timestamp *t;
		if (ota_timestamp_parse(env, arena, &t) == OTA_OK)
			body = json_pack(
				"{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "product",
				wire_string(t->product), "issued_at", time_value(t->issued_at),
				"expires_at", time_value(t->expires_at), "keylist_version",
				u64(t->keylist_version), "version", wire_string(t->version),
				"version_code", u64(t->version_code), "security_counter",
				u64(t->security_counter), "artifact", wire_string(t->artifact),
				"manifest_sha256",
				hex_string(t->manifest_sha256.data, t->manifest_sha256.len));
	}
	if (!body)
		return NULL;
	uint8_t digest[OTA_SHA256_BYTES];
	ota_sha256(env->body.data, env->body.len, digest);
	return json_pack("{s:s, s:o, s:o, s:o, s:o}", "type", kr_obj_kind_name(kind), "body", body,
			 "body_sha256", hex_string(digest, sizeof(digest)), "body_hex",
			 hex_string(env->body.data, env->body.len), "signatures",
			 signatures_json(env));
}

static json_t *bundle_json(const uint8_t *buf, size_t len, uint64_t image_bytes,
			   struct ota_arena *arena)
{
	uint32_t header_len;
	Fleetota__V1__BundleHeader *hdr = NULL;
	if (len < OTA_BUNDLE_PREFIX_BYTES || ota_bundle_prefix_parse(buf, &header_len) != OTA_OK ||
	    len - OTA_BUNDLE_PREFIX_BYTES < header_len ||
	    ota_bundle_header_decode(buf + OTA_BUNDLE_PREFIX_BYTES, header_len, arena, &hdr) !=
		    OTA_OK)
		return NULL;
	json_t *obj = json_pack("{s:s, s:i, s:o, s:o}", "type", "bundle", "header_bytes",
				(int)header_len, "image_bytes_present", u64(image_bytes),
				"manifest", signed_json(hdr->manifest, KR_OBJ_MANIFEST, arena));
	if (!obj)
		return NULL;
	if (hdr->keylist)
		json_object_set_new(obj, "keylist",
				    signed_json(hdr->keylist, KR_OBJ_KEYLIST, arena));
	if (hdr->rootlist)
		json_object_set_new(obj, "rootlist",
				    signed_json(hdr->rootlist, KR_OBJ_ROOTLIST, arena));
	if (hdr->n_rootlist_chain) {
		json_t *chain = json_array();
		for (size_t i = 0; chain && i < hdr->n_rootlist_chain; i++)
			json_array_append_new(
				chain, signed_json(hdr->rootlist_chain[i], KR_OBJ_ROOTLIST, arena));
		json_object_set_new(obj, "rootlist_chain", chain);
	}
	return obj;
}

json_t *kr_inspect_json(const uint8_t *buf, size_t len, uint64_t image_bytes, enum kr_obj_kind kind)
{
	struct kr_arena arena;
	json_t *result = NULL;
	if (kr_arena_init(&arena, KR_HEADER_ARENA_BYTES) != OTA_OK)
		return NULL;
	if (kind == KR_OBJ_UNKNOWN)
		kind = kr_obj_detect(buf, len, &arena.arena);
	ota_arena_reset(&arena.arena);
	if (kind == KR_OBJ_BUNDLE) {
		result = bundle_json(buf, len, image_bytes, &arena.arena);
	} else if (kind == KR_OBJ_PUBKEY) {
		Fleetota__V1__PublicKey *key =
			len <= KR_MAX_OBJECT_FILE_BYTES
				? fleetota__v1__public_key__unpack(&arena.arena.allocator, len, buf)
				: NULL;
		if (key && ota_pubkey_check(key) == OTA_OK) {
			result = pubkey_json(key);
			if (result)
				json_object_set_new(result, "type", json_string("pubkey"));
		}
	} else if (kind != KR_OBJ_UNKNOWN) {
		Fleetota__V1__Signed *env;
		if (ota_envelope_decode(buf, len, &arena.arena, &env) == OTA_OK)
			result = signed_json(env, kind, &arena.arena);
	}
	kr_arena_release(&arena);
	return result;
}

static void print_value(FILE *out, const json_t *value, int depth);

static void indent(FILE *out, int depth)
{
	for (int i = 0; i < depth; i++)
		fputs("  ", out);
}

static void print_scalar(FILE *out, const json_t *value)
{
	if (json_is_string(value))
		fputs(json_string_value(value), out);
	else if (json_is_integer(value))
		fprintf(out, "%lld", (long long)json_integer_value(value));
	else if (json_is_true(value))
		fputs("yes", out);
	else if (json_is_false(value))
		fputs("no", out);
	else
		fputs("-", out);
}

static void print_value(FILE *out, const json_t *value, int depth)
{
	if (json_is_object(value)) {
		const char *key;
		json_t *item;
		json_t *utc = json_object_get(value, "utc");
		if (utc && json_object_size(value) == 2) {
			/* a time: one line */
			fprintf(out, " %s (%lld)\n", json_string_value(utc),
				(long long)json_integer_value(json_object_get(value, "epoch")));
			return;
		}
		fputc('\n', out);
		json_object_foreach((json_t *)value, key, item)
		{
			if (strcmp(key, "body_hex") == 0 || strcmp(key, "public_key") == 0)
				continue; /* for --json readers, not for people */
			indent(out, depth);
			fprintf(out, "%s:", key);
			print_value(out, item, depth + 1);
		}
	} else if (json_is_array(value)) {
		size_t i;
		json_t *item;
		if (json_array_size(value) == 0) {
			fputs(" (none)\n", out);
			return;
		}
		fputc('\n', out);
		json_array_foreach(value, i, item)
		{
			indent(out, depth);
			fprintf(out, "[%zu]", i);
			print_value(out, item, depth + 1);
		}
	} else {
		fputc(' ', out);
		print_scalar(out, value);
		fputc('\n', out);
	}
}

void kr_inspect_print(FILE *out, const json_t *tree)
{
	const char *key;
	json_t *item;
	json_object_foreach((json_t *)tree, key, item)
	{
		fprintf(out, "%s:", key);
		print_value(out, item, 1);
	}
}
