/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "fleetota/crypto.h"
#include "webapi-internal.h"

static const char *const role_names[] = {
	[WA_ROLE_VIEWER] = "viewer",
	[WA_ROLE_OPERATOR] = "operator",
	[WA_ROLE_ADMIN] = "admin",
};

const char *wa_role_name(enum wa_role role)
{
	if (role < WA_ROLE_VIEWER || role > WA_ROLE_ADMIN)
		return NULL;
	return role_names[role];
}

enum wa_role wa_role_from_name(const char *name)
{
	if (name == NULL)
		return WA_ROLE_NONE;
	for (int r = WA_ROLE_VIEWER; r <= WA_ROLE_ADMIN; r++) {
		if (strcmp(name, role_names[r]) == 0)
			return (enum wa_role)r;
	}
	return WA_ROLE_NONE;
}

static bool b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

enum ota_err wa_token_generate(char out[WEBAPI_TOKEN_CHARS + 1])
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t raw[WA_TOKEN_RANDOM_BYTES];
	size_t prefix = strlen(WEBAPI_TOKEN_PREFIX), pos = prefix;
	uint32_t acc = 0;
	int bits = 0;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return OTA_ERR_INTERNAL;
	memcpy(out, WEBAPI_TOKEN_PREFIX, prefix);
	/* base64url without padding: 256 bits -> 43 characters */
	for (size_t i = 0; i < sizeof(raw); i++) {
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[pos++] = alphabet[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[pos++] = alphabet[(acc << (6 - bits)) & 63];
	out[pos] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return pos == WEBAPI_TOKEN_CHARS ? OTA_OK : OTA_ERR_INTERNAL;
}

enum ota_err wa_token_hash(const char *token, char hex_out[SRV_SHA256_HEX_BYTES])
{
	uint8_t digest[OTA_SHA256_BYTES];
	enum ota_err err = ota_sha256(token, strlen(token), digest);

	if (err != OTA_OK)
		return err;
	srv_hex_encode(digest, sizeof(digest), hex_out);
	return OTA_OK;
}

enum ota_err wa_token_hash_header(const char *header, char hex_out[SRV_SHA256_HEX_BYTES])
{
	size_t prefix = strlen(WEBAPI_TOKEN_PREFIX);
	const char *token;

	if (header == NULL || strncmp(header, "Bearer ", 7) != 0)
		return OTA_ERR_FORMAT;
	token = header + 7;
	if (strlen(token) != WEBAPI_TOKEN_CHARS || strncmp(token, WEBAPI_TOKEN_PREFIX, prefix) != 0)
		return OTA_ERR_FORMAT;
	for (size_t i = prefix; i < WEBAPI_TOKEN_CHARS; i++) {
		if (!b64url_char(token[i]))
			return OTA_ERR_FORMAT;
	}
	return wa_token_hash(token, hex_out);
}
