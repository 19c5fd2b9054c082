/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Session ticket keys (tickets-internal.h). The key set hangs on the
 * SSL_CTX (ex_data, wiped when the context is freed); the ticket callback
 * (OpenSSL 3's EVP_MAC form) picks the encryption key by position and the
 * decryption key by name. A ticket decrypted with a key other than the
 * encrypting one is accepted and renewed, so clients move to the current
 * key as they resume.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "srv-limits.h"
#include "tickets-internal.h"

#define NAME_BYTES 16u
#define HMAC_BYTES 32u
#define AES_BYTES 32u
#define KEY_BYTES (NAME_BYTES + HMAC_BYTES + AES_BYTES)
/* the session cache names a ticket by its key name and its AES-256-CBC IV (16 bytes) */
_Static_assert(2u * NAME_BYTES == SRV_TLS_TICKET_ID_BYTES, "ticket id: key name + IV");

struct ticket_key {
	unsigned char name[NAME_BYTES];
	unsigned char hmac[HMAC_BYTES];
	unsigned char aes[AES_BYTES];
};

struct ticket_keys {
	size_t n;
	size_t encrypt; /* index of the encrypting key */
	struct ticket_key keys[SRV_TICKETS_MAX_KEYS];
};

static int keys_index = -1;
static const struct srv_tickets_cache *session_cache; /* tls.c's, or NULL */

void srv_tickets_set_cache(const struct srv_tickets_cache *cache)
{
	session_cache = cache;
}

static void keys_free(struct ticket_keys *keys)
{
	if (keys != NULL)
		OPENSSL_clear_free(keys, sizeof(*keys));
}

static void keys_free_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			 void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	keys_free(ptr);
}

/* One line (no newline) into keys; false on a bad line. Blank and '#' lines add nothing. */
static bool parse_line(const char *line, size_t len, struct ticket_keys *keys)
{
	unsigned char raw[KEY_BYTES];
	char hex[2 * KEY_BYTES + 1];
	struct ticket_key *key;
	size_t i = 0, n = 0;
	int ok;

	while (i < len && isspace((unsigned char)line[i]))
		i++;
	while (len > i && isspace((unsigned char)line[len - 1]))
		len--;
	if (i == len || line[i] == '#')
		return true;
	if (len - i != 2 * KEY_BYTES || keys->n == SRV_TICKETS_MAX_KEYS)
		return false;
	memcpy(hex, line + i, 2 * KEY_BYTES);
	hex[2 * KEY_BYTES] = '\0';
	ok = OPENSSL_hexstr2buf_ex(raw, sizeof(raw), &n, hex, '\0');
	OPENSSL_cleanse(hex, sizeof(hex));
	if (ok != 1 || n != KEY_BYTES) {
		OPENSSL_cleanse(raw, sizeof(raw));
		ERR_clear_error();
		return false;
	}
	key = &keys->keys[keys->n++];
	memcpy(key->name, raw, NAME_BYTES);
	memcpy(key->hmac, raw + NAME_BYTES, HMAC_BYTES);
	memcpy(key->aes, raw + NAME_BYTES + HMAC_BYTES, AES_BYTES);
	OPENSSL_cleanse(raw, sizeof(raw));
	return true;
}

static enum ota_err read_file(const char *path, struct ticket_keys *keys, char *err, size_t err_cap)
{
	char text[SRV_TICKETS_MAX_FILE_BYTES + 1];
	struct stat st;
	size_t len, start = 0, line_no = 1;
	enum ota_err code = OTA_OK;
	FILE *f = fopen(path, "re");

	if (f == NULL) {
		snprintf(err, err_cap, "ticket keys %s: %s", path, strerror(errno));
		return OTA_ERR_STORAGE;
	}
	if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077) != 0) {
		fclose(f);
		snprintf(err, err_cap, "ticket keys %s: must not be readable by group or others",
			 path);
		return OTA_ERR_STORAGE;
	}
	len = fread(text, 1, sizeof(text), f);
	fclose(f);
	if (len > SRV_TICKETS_MAX_FILE_BYTES) {
		OPENSSL_cleanse(text, sizeof(text));
		snprintf(err, err_cap, "ticket keys %s: larger than %u bytes", path,
			 SRV_TICKETS_MAX_FILE_BYTES);
		return OTA_ERR_FORMAT;
	}
	for (size_t i = 0; i <= len && code == OTA_OK; i++) {
		if (i < len && text[i] != '\n')
			continue;
		if (!parse_line(text + start, i - start, keys)) {
			snprintf(err, err_cap,
				 "ticket keys %s:%zu: not a key (160 hex digits, at most %u keys)",
				 path, line_no, SRV_TICKETS_MAX_KEYS);
			code = OTA_ERR_FORMAT;
		}
		start = i + 1;
		line_no++;
	}
	OPENSSL_cleanse(text, sizeof(text));
	if (code == OTA_OK && keys->n == 0) {
		snprintf(err, err_cap, "ticket keys %s: no key", path);
		code = OTA_ERR_FORMAT;
	}
	return code;
}

static bool mac_init(EVP_MAC_CTX *hctx, struct ticket_key *key)
{
	OSSL_PARAM params[3];

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key->hmac, HMAC_BYTES);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, params) == 1;
}

/* 1: done; 2: decrypted with an older key, renew; 0: no such key; -1: error. */
static int ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
			 EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct ticket_keys *keys = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), keys_index);
	const EVP_CIPHER *cipher = EVP_aes_256_cbc();
	struct ticket_key *key;

	if (keys == NULL || keys->n == 0)
		return enc ? -1 : 0;
	if (enc) {
		key = &keys->keys[keys->encrypt];
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(cipher)) != 1 ||
		    EVP_EncryptInit_ex(cctx, cipher, NULL, key->aes, iv) != 1 ||
		    !mac_init(hctx, key))
			return -1;
		memcpy(key_name, key->name, NAME_BYTES);
		if (session_cache != NULL)
			session_cache->put(ssl, key_name, iv);
		return 1;
	}
	for (size_t i = 0; i < keys->n; i++) {
		key = &keys->keys[i];
		if (CRYPTO_memcmp(key_name, key->name, NAME_BYTES) != 0)
			continue;
		/* TLS 1.2, the current key, its session kept: no decryption (tls.c) */
		if (i == keys->encrypt && session_cache != NULL &&
		    session_cache->take(ssl, key_name, iv))
			return 0;
		if (!mac_init(hctx, key) ||
		    EVP_DecryptInit_ex(cctx, cipher, NULL, key->aes, iv) != 1)
			return -1;
		return i == keys->encrypt ? 1 : 2;
	}
	return 0;
}

enum ota_err srv_tickets_load(SSL_CTX *ctx, const char *path, char *err, size_t err_cap)
{
	struct ticket_keys *keys, *old;
	enum ota_err code;

	if (keys_index < 0)
		keys_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, keys_free_ex);
	keys = OPENSSL_zalloc(sizeof(*keys));
	if (keys_index < 0 || keys == NULL) {
		snprintf(err, err_cap, "ticket keys: out of memory");
		OPENSSL_free(keys);
		return OTA_ERR_NOMEM;
	}
	if (path != NULL && path[0] != '\0') {
		code = read_file(path, keys, err, err_cap);
		if (code != OTA_OK) {
			keys_free(keys);
			return code;
		}
	} else {
		keys->n = 1;
		if (RAND_bytes((unsigned char *)&keys->keys[0], sizeof(keys->keys[0])) != 1) {
			keys_free(keys);
			snprintf(err, err_cap, "ticket keys: no random bytes");
			return OTA_ERR_NOMEM;
		}
	}
	keys->encrypt = keys->n >= 2 ? keys->n - 2 : 0;
	old = SSL_CTX_get_ex_data(ctx, keys_index);
	if (SSL_CTX_set_ex_data(ctx, keys_index, keys) != 1) {
		keys_free(keys);
		snprintf(err, err_cap, "ticket keys: out of memory");
		return OTA_ERR_NOMEM;
	}
	keys_free(old);
	if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) != 1) {
		snprintf(err, err_cap, "ticket keys: callback refused");
		return OTA_ERR_NOMEM;
	}
	return OTA_OK;
}

void srv_tls_metrics_render(const struct srv_tls_metrics *m, struct evbuffer *out)
{
	evbuffer_add_printf(
		out,
		"# HELP fleetota_tls_handshakes_total Completed TLS handshakes on the device "
		"listener that were full (certificate verified) handshakes.\n"
		"# TYPE fleetota_tls_handshakes_total counter\n"
		"fleetota_tls_handshakes_total %llu\n"
		"# HELP fleetota_tls_resumed_total Completed TLS handshakes on the device listener "
		"that resumed a session (a ticket).\n"
		"# TYPE fleetota_tls_resumed_total counter\n"
		"fleetota_tls_resumed_total %llu\n"
		"# HELP fleetota_tls_resumed_cached_total TLS 1.2 sessions resumed from the "
		"server's session cache without decoding their ticket (counted in "
		"fleetota_tls_resumed_total too).\n"
		"# TYPE fleetota_tls_resumed_cached_total counter\n"
		"fleetota_tls_resumed_cached_total %llu\n"
		"# HELP fleetota_tls_resume_rechecked_total Tickets issued under another device CA "
		"or CRL whose certificate was verified again before resuming.\n"
		"# TYPE fleetota_tls_resume_rechecked_total counter\n"
		"fleetota_tls_resume_rechecked_total %llu\n"
		"# HELP fleetota_tls_resume_refused_total Tickets refused because their "
		"certificate "
		"is revoked, expired or no longer verifies (a full handshake instead).\n"
		"# TYPE fleetota_tls_resume_refused_total counter\n"
		"fleetota_tls_resume_refused_total %llu\n"
		"# HELP fleetota_tls_ticket_unknown_key_total Tickets no key of the ticket key "
		"file "
		"decrypts (a full handshake instead).\n"
		"# TYPE fleetota_tls_ticket_unknown_key_total counter\n"
		"fleetota_tls_ticket_unknown_key_total %llu\n"
		"# HELP fleetota_tls_peer_reverified_total Times a device connection's certificate "
		"was verified again on a request because the device CA or CRL was reloaded since "
		"it was verified.\n"
		"# TYPE fleetota_tls_peer_reverified_total counter\n"
		"fleetota_tls_peer_reverified_total %llu\n"
		"# HELP fleetota_tls_verify_cached_total Full handshakes on the device listener "
		"whose client certificate chain was accepted as verified under the current device "
		"CA and CRL before (no chain verification; the key's proof is checked as always).\n"
		"# TYPE fleetota_tls_verify_cached_total counter\n"
		"fleetota_tls_verify_cached_total %llu\n",
		(unsigned long long)m->full_handshakes, (unsigned long long)m->resumed,
		(unsigned long long)m->resumed_cached, (unsigned long long)m->resume_rechecked,
		(unsigned long long)m->resume_refused, (unsigned long long)m->ticket_unknown_key,
		(unsigned long long)m->peer_reverified, (unsigned long long)m->verify_cached);
}
