/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "srv-limits.h"
#include "tls-internal.h"

/*
 * Sessions (srv_tls_sessions_enable): resumption only through tickets
 * (no server-side cache), so every resumption passes ticket_dec_cb. A
 * ticket carries, inside its encrypted and authenticated body, the
 * SHA-256 of the client CA and CRL files it was issued under (the
 * "store fingerprint", made from the files' bytes so that every replica
 * with the same files computes the same one). A ticket whose fingerprint
 * is not the current one (the CRL or the CA changed since) resumes only
 * if the certificate in the session verifies again against the current
 * store; else the client gets a full handshake, which a revoked
 * certificate fails. An expired certificate never resumes.
 *
 * Revocation without dropping connections: srv_tls_server_reload() builds
 * a complete fresh context from the files and moves its certificate, key,
 * client CA list and verify store (CA + CRL) into the live SSL_CTX, so only
 * new handshakes see them. Each reload bumps a generation number kept on
 * the context; the verify callback stamps every handshake with the
 * generation it was verified under, and srv_tls_peer_verified() verifies a
 * connection's client certificate again (once) when the generation moved:
 * a device revoked while it holds a keep-alive connection is refused on
 * its next request.
 *
 * TLS 1.2 session cache: OpenSSL decodes every ticket it takes (the client
 * certificate inside through OpenSSL 3.0's slow key decoders: about three
 * quarters of a resumed TLS 1.2 connection's instructions). So a TLS 1.2
 * session that resumed through its ticket (or got a renewed one) leaves a
 * copy in a small direct-mapped table, under the ticket's key name and IV
 * (random, made by a replica's key callback). When a ClientHello offers a
 * ticket of the current encrypting key whose key name and IV are in the
 * table, the key callback declines the ticket (no
 * decryption, no decoding), ticket_dec_cb ignores it without a new ticket,
 * and OpenSSL asks session_get_cb for the ClientHello's session id, which
 * returns the copy. Only a session that ticket_dec_cb would take as it is
 * comes from the table: verified under the current CA and CRL generation,
 * not expired, its certificate not expired, a ClientHello with a session id
 * (OpenSSL resumes a TLS 1.2 ticket through it). Everything else (another
 * replica's ticket, a key being rotated out, a reload since, a slot taken by
 * a newer session) takes the ticket path as before. Like a session id, the
 * key name and IV travel in clear; resuming still needs the master secret.
 *
 * Verified client certificates (cert_verify_cb): a full handshake's chain
 * (every certificate the client sent, DER) that X509_verify_cert accepted
 * under the context's current generation is remembered in a direct-mapped
 * table under its SHA-256, with the time it stops being valid (the
 * earliest notAfter of the verified chain and nextUpdate of the store's
 * CRLs). The same chain again (the DER compared whole), under the same
 * generation and before that time, is accepted without X509_verify_cert:
 * no chain building, no CA signature check, no CRL lookup. The client's
 * proof that it holds the key (CertificateVerify) is OpenSSL's as always.
 * A reload bumps the generation: a chain revoked by the new CRL is
 * verified again, and fails, at its next handshake. docs/server.md,
 * "Verified client certificates", has the argument.
 */

/*
 * ex_data indexes are per class: an SSL_CTX index names nothing on an SSL
 * (the same number there is another slot, counted_index's).
 */
static int gen_index = -1; /* SSL_CTX: its generation */
static int stamp_index = -1; /* SSL: 1 + the generation it was verified under; NULL: never */
static int fp_index = -1; /* SSL_CTX: the store fingerprint, SRV_TLS_FP_BYTES, OPENSSL_malloc'd */
static int metrics_index = -1; /* SSL_CTX: struct srv_tls_metrics *, borrowed */
static int counted_index = -1; /* SSL: the handshake was counted */
static int cache_index = -1; /* SSL_CTX: struct session_cache *, owned */
static int pending_index = -1; /* SSL: SSL_SESSION * from the cache for session_get_cb, owned */
static int refill_index = -1; /* SSL: the ticket id the cache missed (cache_refill), owned */
static int verify_index = -1; /* SSL_CTX: struct verify_cache *, owned, made on first use */

#define SRV_TLS_FP_BYTES 32u
/* A CA or CRL file larger than this is refused (a CRL of ~1M entries). */
#define SRV_TLS_MAX_VERIFY_FILE_BYTES (64u * 1024u * 1024u)

static void fp_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	OPENSSL_free(ptr);
}

/* TLS 1.2 sessions kept (a power of two): SRV_TLS_SESSION_CACHE_SLOTS in srv-limits.h. */
struct session_slot {
	unsigned char id[SRV_TLS_TICKET_ID_BYTES]; /* the ticket's key name and IV */
	uintptr_t generation; /* verified under: 1 + the context's generation */
	SSL_SESSION *session; /* NULL: empty */
};

struct session_cache {
	struct session_slot slots[SRV_TLS_SESSION_CACHE_SLOTS];
};

static void cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct session_cache *cache = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (cache == NULL)
		return;
	for (size_t i = 0; i < SRV_TLS_SESSION_CACHE_SLOTS; i++)
		SSL_SESSION_free(cache->slots[i].session);
	OPENSSL_clear_free(cache, sizeof(*cache));
}

static void pending_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			 void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	SSL_SESSION_free(ptr);
}

/* Verified client certificate chains (SRV_TLS_VERIFY_CACHE_SLOTS, a power of two). */
struct verify_slot {
	unsigned char digest[SHA256_DIGEST_LENGTH]; /* of der */
	unsigned char *der; /* every certificate the client sent, DER; NULL: empty */
	size_t der_len;
	uintptr_t generation; /* verified under: 1 + the context's generation */
	time_t expires; /* valid before this: the chain's notAfter, the CRLs' nextUpdate */
};

struct verify_cache {
	EVP_MD *sha256;
	struct verify_slot slots[SRV_TLS_VERIFY_CACHE_SLOTS];
};

static void verify_cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			      void *argp)
{
	struct verify_cache *cache = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (cache == NULL)
		return;
	for (size_t i = 0; i < SRV_TLS_VERIFY_CACHE_SLOTS; i++)
		OPENSSL_free(cache->slots[i].der);
	EVP_MD_free(cache->sha256);
	OPENSSL_free(cache);
}

static bool indexes_ready(void)
{
	if (gen_index < 0)
		gen_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (fp_index < 0)
		fp_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, fp_free);
	if (metrics_index < 0)
		metrics_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (counted_index < 0)
		counted_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (stamp_index < 0)
		stamp_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (cache_index < 0)
		cache_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, cache_free);
	if (pending_index < 0)
		pending_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, pending_free);
	if (refill_index < 0)
		refill_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, fp_free);
	if (verify_index < 0)
		verify_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, verify_cache_free);
	return gen_index >= 0 && fp_index >= 0 && metrics_index >= 0 && counted_index >= 0 &&
	       stamp_index >= 0 && cache_index >= 0 && pending_index >= 0 && refill_index >= 0 &&
	       verify_index >= 0;
}

/* Adds the bytes of the file path to md (a missing path adds nothing). */
static bool digest_file(EVP_MD_CTX *md, const char *path)
{
	unsigned char buf[SRV_TLS_FILE_CHUNK_BYTES];
	size_t total = 0, n;
	FILE *f;
	bool ok;

	if (path == NULL || path[0] == '\0')
		return EVP_DigestUpdate(md, "-", 1) == 1;
	f = fopen(path, "re");
	if (f == NULL)
		return false;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		total += n;
		if (total > SRV_TLS_MAX_VERIFY_FILE_BYTES || EVP_DigestUpdate(md, buf, n) != 1)
			break;
	}
	ok = ferror(f) == 0 && feof(f) != 0 && total <= SRV_TLS_MAX_VERIFY_FILE_BYTES;
	fclose(f);
	/* the length separates the two files */
	return ok && EVP_DigestUpdate(md, &total, sizeof(total)) == 1;
}

/* The store fingerprint: SHA-256 over the CA file and the CRL file, into fp. */
static bool fingerprint(const char *client_ca, const char *crl, unsigned char fp[SRV_TLS_FP_BYTES])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned len = 0;
	bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
		  digest_file(md, client_ca) && digest_file(md, crl) &&
		  EVP_DigestFinal_ex(md, fp, &len) == 1 && len == SRV_TLS_FP_BYTES;

	EVP_MD_CTX_free(md);
	return ok;
}

static enum ota_err fail(SSL_CTX *ctx, char err[SRV_TLS_ERR_BYTES], enum ota_err code,
			 const char *what, const char *path)
{
	char ssl_err[160];
	unsigned long e = ERR_peek_last_error();

	ssl_err[0] = '\0';
	if (e != 0)
		ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
	ERR_clear_error();
	snprintf(err, SRV_TLS_ERR_BYTES, "%s %s: %s", what, path, e != 0 ? ssl_err : "failed");
	SSL_CTX_free(ctx);
	return code;
}

static uintptr_t ctx_generation(const SSL_CTX *ctx)
{
	return gen_index < 0 ? 0 : (uintptr_t)SSL_CTX_get_ex_data(ctx, gen_index);
}

/* ssl's client certificate verified under its context's current generation. */
static void stamp(SSL *ssl)
{
	SSL_set_ex_data(ssl, stamp_index, (void *)(ctx_generation(SSL_get_SSL_CTX(ssl)) + 1));
}

static bool stamped_now(const SSL *ssl)
{
	return (uintptr_t)SSL_get_ex_data(ssl, stamp_index) ==
	       ctx_generation(SSL_get_SSL_CTX(ssl)) + 1;
}

/* Stamps a verified handshake with the context's generation. */
static int verify_cb(int preverify_ok, X509_STORE_CTX *store_ctx)
{
	SSL *ssl;

	if (preverify_ok != 1 || X509_STORE_CTX_get_error_depth(store_ctx) != 0)
		return preverify_ok;
	ssl = X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	if (ssl != NULL)
		stamp(ssl);
	return preverify_ok;
}

/* The context's table of verified chains, made on first use; NULL when out of memory. */
static struct verify_cache *verify_cache_get(SSL_CTX *ctx)
{
	struct verify_cache *cache = SSL_CTX_get_ex_data(ctx, verify_index);

	if (cache != NULL)
		return cache;
	cache = OPENSSL_zalloc(sizeof(*cache));
	if (cache == NULL || (cache->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    SSL_CTX_set_ex_data(ctx, verify_index, cache) != 1) {
		if (cache != NULL)
			EVP_MD_free(cache->sha256);
		OPENSSL_free(cache);
		ERR_clear_error();
		return NULL;
	}
	return cache;
}

/* Appends x's DER to der (cap SRV_TLS_VERIFY_CACHE_MAX_DER) at *len; false when it does not fit. */
static bool der_append(unsigned char *der, size_t *len, X509 *x)
{
	int n = i2d_X509(x, NULL);
	unsigned char *p = der + *len;

	if (n <= 0 || (size_t)n > SRV_TLS_VERIFY_CACHE_MAX_DER - *len || i2d_X509(x, &p) != n)
		return false;
	*len += (size_t)n;
	return true;
}

/* The chain the client sent (the leaf, then the others), DER, into der. */
static bool sent_chain_der(X509_STORE_CTX *store_ctx, unsigned char *der, size_t *len)
{
	X509 *leaf = X509_STORE_CTX_get0_cert(store_ctx);
	STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(store_ctx);

	*len = 0;
	if (leaf == NULL || !der_append(der, len, leaf))
		return false;
	for (int i = 0; i < sk_X509_num(sent); i++) {
		X509 *x = sk_X509_value(sent, i);

		if (x != leaf && !der_append(der, len, x))
			return false;
	}
	return true;
}

/* t as a time_t (through its distance from now); false when unreadable. */
static bool asn1_time_at(const ASN1_TIME *t, time_t now, time_t *at)
{
	int days = 0, secs = 0;

	if (t == NULL || ASN1_TIME_diff(&days, &secs, NULL, t) != 1)
		return false;
	*at = now + (time_t)days * 86400 + (time_t)secs;
	return true;
}

/*
 * When a chain verified by store_ctx stops being valid: the earliest
 * notAfter of the verified chain and nextUpdate of the CRLs in ctx's store
 * (an outdated CRL fails verification); false when one is unreadable.
 */
static bool verified_until(SSL_CTX *ctx, X509_STORE_CTX *store_ctx, time_t now, time_t *until)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(store_ctx);
	STACK_OF(X509_OBJECT) *objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
	time_t t;

	if (sk_X509_num(chain) <= 0)
		return false;
	*until = (time_t)INT64_MAX;
	for (int i = 0; i < sk_X509_num(chain); i++) {
		if (!asn1_time_at(X509_get0_notAfter(sk_X509_value(chain, i)), now, &t))
			return false;
		if (t < *until)
			*until = t;
	}
	for (int i = 0; i < sk_X509_OBJECT_num(objects); i++) {
		X509_OBJECT *o = sk_X509_OBJECT_value(objects, i);
		const ASN1_TIME *next;

		if (X509_OBJECT_get_type(o) != X509_LU_CRL)
			continue;
		next = X509_CRL_get0_nextUpdate(X509_OBJECT_get0_X509_CRL(o));
		if (next == NULL)
			continue; /* no next update: never outdated */
		if (!asn1_time_at(next, now, &t))
			return false;
		if (t < *until)
			*until = t;
	}
	return true;
}

/*
 * OpenSSL's verification of a client's certificate chain (instead of its
 * X509_verify_cert): the same chain verified under the current generation
 * before, and still within its validity, is accepted as it was (see the
 * comment at the top); anything else is verified, and remembered when it
 * verifies.
 */
static int cert_verify_cb(X509_STORE_CTX *store_ctx, void *arg)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	unsigned char der[SRV_TLS_VERIFY_CACHE_MAX_DER], digest[SHA256_DIGEST_LENGTH];
	struct verify_cache *cache;
	struct verify_slot *slot = NULL;
	struct srv_tls_metrics *metrics;
	uintptr_t generation = 0;
	unsigned digest_len = 0;
	size_t der_len = 0;
	uint64_t h;
	SSL_CTX *ctx = NULL;
	time_t now = time(NULL), until;
	int ok;

	(void)arg;
	if (ssl != NULL && (ctx = SSL_get_SSL_CTX(ssl)) != NULL &&
	    (cache = verify_cache_get(ctx)) != NULL && sent_chain_der(store_ctx, der, &der_len) &&
	    EVP_Digest(der, der_len, digest, &digest_len, cache->sha256, NULL) == 1 &&
	    digest_len == sizeof(digest)) {
		memcpy(&h, digest, sizeof(h));
		slot = &cache->slots[h & (SRV_TLS_VERIFY_CACHE_SLOTS - 1u)];
		generation = ctx_generation(ctx) + 1;
		if (slot->der != NULL && slot->generation == generation && now < slot->expires &&
		    slot->der_len == der_len && memcmp(slot->digest, digest, sizeof(digest)) == 0 &&
		    memcmp(slot->der, der, der_len) == 0) {
			X509_STORE_CTX_set_error(store_ctx, X509_V_OK);
			stamp(ssl);
			metrics = SSL_CTX_get_ex_data(ctx, metrics_index);
			if (metrics != NULL)
				metrics->verify_cached++;
			return 1;
		}
	}
	ERR_clear_error();
	ok = X509_verify_cert(store_ctx);
	if (ok != 1 || slot == NULL || X509_STORE_CTX_get_error(store_ctx) != X509_V_OK ||
	    !verified_until(ctx, store_ctx, now, &until) || until <= now)
		return ok;
	OPENSSL_free(slot->der);
	slot->der = OPENSSL_memdup(der, der_len);
	if (slot->der == NULL) {
		ERR_clear_error();
		return ok;
	}
	memcpy(slot->digest, digest, sizeof(digest));
	slot->der_len = der_len;
	slot->generation = generation;
	slot->expires = until;
	return ok;
}

/*
 * One session id context for every replica and generation: whether a
 * session may resume after a reload is ticket_dec_cb's decision.
 */
static void set_session_context(SSL_CTX *ctx)
{
	static const char sid_ctx[] = "fleetota/device";

	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid_ctx, sizeof(sid_ctx) - 1);
}

/* The client CA and the CRL: a fresh verify store for ctx. */
static enum ota_err load_verify(SSL_CTX *ctx, const char *client_ca, const char *crl,
				char err[SRV_TLS_ERR_BYTES])
{
	STACK_OF(X509_NAME) * names;
	unsigned char fp_before[SRV_TLS_FP_BYTES], *fp;

	if (!fingerprint(client_ca, crl, fp_before))
		return fail(ctx, err, OTA_ERR_STORAGE, "reading client CA and CRL", client_ca);
	if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1)
		return fail(ctx, err, OTA_ERR_STORAGE, "loading client CA", client_ca);
	names = SSL_load_client_CA_file(client_ca);
	if (names == NULL)
		return fail(ctx, err, OTA_ERR_FORMAT, "reading client CA", client_ca);
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
	SSL_CTX_set_cert_verify_callback(ctx, cert_verify_cb, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	set_session_context(ctx);
	if (crl != NULL && crl[0] != '\0') {
		X509_STORE *store = SSL_CTX_get_cert_store(ctx);
		X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());

		if (lookup == NULL || X509_load_crl_file(lookup, crl, X509_FILETYPE_PEM) <= 0)
			return fail(ctx, err, OTA_ERR_STORAGE, "loading CRL", crl);
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	}
	/*
	 * The fingerprint must name exactly what was loaded: files that
	 * changed while being read fail this load (the next reload retries).
	 */
	fp = OPENSSL_malloc(SRV_TLS_FP_BYTES);
	if (fp == NULL || !fingerprint(client_ca, crl, fp) ||
	    CRYPTO_memcmp(fp, fp_before, SRV_TLS_FP_BYTES) != 0 ||
	    SSL_CTX_set_ex_data(ctx, fp_index, fp) != 1) {
		OPENSSL_free(fp);
		return fail(ctx, err, OTA_ERR_STORAGE, "client CA or CRL changed while read",
			    client_ca);
	}
	return OTA_OK;
}

enum ota_err srv_tls_server_ctx(const char *cert, const char *key, const char *client_ca,
				const char *crl, SSL_CTX **ret_ctx, char err[SRV_TLS_ERR_BYTES])
{
	SSL_CTX *ctx;

	if (!indexes_ready() || (ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return fail(NULL, err, OTA_ERR_NOMEM, "TLS", "context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		return fail(ctx, err, OTA_ERR_STORAGE, "loading certificate", cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		return fail(ctx, err, OTA_ERR_STORAGE, "loading key", key);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return fail(ctx, err, OTA_ERR_FORMAT, "key does not match certificate", cert);
	if (client_ca != NULL && client_ca[0] != '\0') {
		enum ota_err code = load_verify(ctx, client_ca, crl, err);

		if (code != OTA_OK)
			return code;
	}
	*ret_ctx = ctx;
	return OTA_OK;
}

enum ota_err srv_tls_server_reload(SSL_CTX *live, const char *cert, const char *key,
				   const char *client_ca, const char *crl,
				   char err[SRV_TLS_ERR_BYTES])
{
	SSL_CTX *fresh = NULL;
	STACK_OF(X509) *chain = NULL;
	STACK_OF(X509_NAME) *names = NULL;
	uintptr_t generation = ctx_generation(live) + 1;
	enum ota_err code;

	code = srv_tls_server_ctx(cert, key, client_ca, crl, &fresh, err);
	if (code != OTA_OK)
		return code;
	SSL_CTX_get0_chain_certs(fresh, &chain);
	if (client_ca != NULL && client_ca[0] != '\0') {
		names = SSL_dup_CA_list(SSL_CTX_get_client_CA_list(fresh));
		if (names == NULL)
			return fail(fresh, err, OTA_ERR_NOMEM, "TLS", "client CA list");
	}
	/* Nothing in live changes unless everything could be taken over. */
	if (SSL_CTX_use_cert_and_key(live, SSL_CTX_get0_certificate(fresh),
				     SSL_CTX_get0_privatekey(fresh), chain, 1) != 1 ||
	    SSL_CTX_set_ex_data(live, gen_index, (void *)generation) != 1) {
		sk_X509_NAME_pop_free(names, X509_NAME_free);
		return fail(fresh, err, OTA_ERR_NOMEM, "TLS", "taking over certificate");
	}
	if (names != NULL) {
		unsigned char *live_fp = SSL_CTX_get_ex_data(live, fp_index);
		const unsigned char *fresh_fp = SSL_CTX_get_ex_data(fresh, fp_index);

		SSL_CTX_set1_cert_store(live, SSL_CTX_get_cert_store(fresh));
		SSL_CTX_set_client_CA_list(live, names);
		if (live_fp != NULL && fresh_fp != NULL)
			memcpy(live_fp, fresh_fp, SRV_TLS_FP_BYTES);
		SSL_CTX_flush_sessions(live, 0);
	}
	SSL_CTX_free(fresh);
	return OTA_OK;
}

/* true when peer (with the untrusted chain, may be NULL) verifies against ctx's store now. */
static bool cert_verifies(SSL_CTX *ctx, X509 *peer, STACK_OF(X509) * chain)
{
	X509_STORE_CTX *store_ctx = X509_STORE_CTX_new();
	bool ok = store_ctx != NULL &&
		  X509_STORE_CTX_init(store_ctx, SSL_CTX_get_cert_store(ctx), peer, chain) == 1 &&
		  X509_STORE_CTX_set_default(store_ctx, "ssl_client") == 1 &&
		  X509_verify_cert(store_ctx) == 1;

	X509_STORE_CTX_free(store_ctx);
	ERR_clear_error();
	return ok;
}

bool srv_tls_peer_verified(SSL *ssl)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	X509 *peer = SSL_get0_peer_certificate(ssl);
	struct srv_tls_metrics *metrics;

	if (peer == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return false;
	if (stamp_index < 0 || stamped_now(ssl))
		return true;
	/* verified under an older CA or CRL (a reload since), or never stamped */
	metrics = metrics_index < 0 ? NULL : SSL_CTX_get_ex_data(ctx, metrics_index);
	if (metrics != NULL)
		metrics->peer_reverified++;
	if (!cert_verifies(ctx, peer, SSL_get_peer_cert_chain(ssl)))
		return false;
	stamp(ssl);
	return true;
}

static struct session_slot *cache_slot(SSL_CTX *ctx, const unsigned char *iv)
{
	struct session_cache *cache =
		cache_index < 0 ? NULL : SSL_CTX_get_ex_data(ctx, cache_index);
	uint64_t h;

	if (cache == NULL)
		return NULL;
	memcpy(&h, iv, sizeof(h)); /* random, made by ticket_key_cb */
	return &cache->slots[h & (SRV_TLS_SESSION_CACHE_SLOTS - 1u)];
}

static void ticket_id(unsigned char id[SRV_TLS_TICKET_ID_BYTES], const unsigned char *key_name,
		      const unsigned char *iv)
{
	memcpy(id, key_name, SRV_TLS_TICKET_ID_BYTES / 2);
	memcpy(id + SRV_TLS_TICKET_ID_BYTES / 2, iv, SRV_TLS_TICKET_ID_BYTES / 2);
}

/* A copy of session into slot under id, verified under ssl's stamp (the current generation). */
static void cache_store(SSL *ssl, struct session_slot *slot, const unsigned char *id,
			const SSL_SESSION *session)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	SSL_SESSION *copy;

	/* with client certificates: only a session verified under the current CA and CRL */
	if (session == NULL || (SSL_CTX_get_ex_data(ctx, fp_index) != NULL && !stamped_now(ssl)))
		return;
	copy = SSL_SESSION_dup(session);
	if (copy == NULL) {
		ERR_clear_error();
		return; /* the ticket path serves it */
	}
	SSL_SESSION_free(slot->session);
	slot->session = copy;
	slot->generation = ctx_generation(ctx) + 1;
	memcpy(slot->id, id, SRV_TLS_TICKET_ID_BYTES);
}

/*
 * A TLS 1.2 ticket is being issued. Only a resumed connection's session
 * (its ticket renewed: a key being rotated out, another CA or CRL) goes
 * into the cache here; a full handshake's waits for its first resumption
 * (cache_refill): devices that never come back take no slot, and a full
 * handshake keeps no session beyond its connection (a full cache of kept
 * sessions made full TLS 1.2 handshakes ~9 % dearer in CPU, not in
 * instructions: docs/bench.md).
 */
static void cache_put(SSL *ssl, const unsigned char *key_name, const unsigned char *iv)
{
	unsigned char id[SRV_TLS_TICKET_ID_BYTES];
	struct session_slot *slot;

	if (SSL_version(ssl) != TLS1_2_VERSION || !SSL_session_reused(ssl) ||
	    (slot = cache_slot(SSL_get_SSL_CTX(ssl), iv)) == NULL)
		return;
	ticket_id(id, key_name, iv);
	cache_store(ssl, slot, id, SSL_get_session(ssl));
}

/*
 * ticket_dec_cb takes a TLS 1.2 ticket of the current key as it is (no new
 * ticket, so no cache_put) that the cache missed: its first resumption, or
 * another replica's, one from before a reload, one whose slot was taken.
 * Its session goes into the cache now, so that its next offers skip the
 * decoding.
 */
static void cache_refill(SSL *ssl, const SSL_SESSION *session)
{
	const unsigned char *id = SSL_get_ex_data(ssl, refill_index);
	struct session_slot *slot;

	if (id == NULL ||
	    (slot = cache_slot(SSL_get_SSL_CTX(ssl), id + SRV_TLS_TICKET_ID_BYTES / 2)) == NULL)
		return;
	cache_store(ssl, slot, id, session);
}

/* Notes id (key name and IV) on ssl for cache_refill. */
static void note_refill(SSL *ssl, const unsigned char *id)
{
	unsigned char *copy;

	if (SSL_get_ex_data(ssl, refill_index) != NULL)
		return;
	copy = OPENSSL_memdup(id, SRV_TLS_TICKET_ID_BYTES);
	if (copy != NULL && SSL_set_ex_data(ssl, refill_index, copy) != 1) {
		OPENSSL_free(copy);
		ERR_clear_error();
	}
}

static bool cache_take(SSL *ssl, const unsigned char *key_name, const unsigned char *iv)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	unsigned char id[SRV_TLS_TICKET_ID_BYTES];
	const unsigned char *sid = NULL;
	struct session_slot *slot;
	SSL_SESSION *session, *copy;
	X509 *peer;
	size_t sid_len;

	if (SSL_version(ssl) != TLS1_2_VERSION || (slot = cache_slot(ctx, iv)) == NULL)
		return false;
	session = slot->session;
	ticket_id(id, key_name, iv);
	if (session == NULL || slot->generation != ctx_generation(ctx) + 1 ||
	    CRYPTO_memcmp(slot->id, id, sizeof(id)) != 0) {
		note_refill(ssl, id);
		return false;
	}
	/* OpenSSL looks the cache up by the ClientHello's session id only */
	sid_len = SSL_client_hello_get0_session_id(ssl, &sid);
	if (sid_len == 0 || sid_len > SSL_MAX_SSL_SESSION_ID_LENGTH)
		return false;
	/*
	 * What OpenSSL and ticket_dec_cb would refuse goes the ticket path
	 * (a second's margin: OpenSSL checks the time again after
	 * session_get_cb, and a session it refuses there gets no new ticket).
	 */
	if ((time_t)SSL_SESSION_get_time(session) + (time_t)SSL_SESSION_get_timeout(session) <=
	    time(NULL) + 1)
		return false;
	peer = SSL_SESSION_get0_peer(session);
	if (SSL_CTX_get_ex_data(ctx, fp_index) != NULL &&
	    (peer == NULL || X509_cmp_current_time(X509_get0_notAfter(peer)) <= 0))
		return false;
	/* a copy with the client's session id, which the ServerHello echoes */
	copy = SSL_SESSION_dup(session);
	if (copy == NULL || SSL_SESSION_set1_id(copy, sid, (unsigned)sid_len) != 1) {
		SSL_SESSION_free(copy);
		ERR_clear_error();
		return false;
	}
	SSL_SESSION_free(SSL_get_ex_data(ssl, pending_index));
	if (SSL_set_ex_data(ssl, pending_index, copy) != 1) {
		SSL_SESSION_free(copy);
		ERR_clear_error();
		return false;
	}
	return true;
}

static const struct srv_tickets_cache cache_hooks = {.put = cache_put, .take = cache_take};

/* OpenSSL's lookup by session id, after cache_take declined the ticket. */
static SSL_SESSION *session_get_cb(SSL *ssl, const unsigned char *id, int id_len, int *copy)
{
	SSL_SESSION *session = pending_index < 0 ? NULL : SSL_get_ex_data(ssl, pending_index);
	struct srv_tls_metrics *metrics;

	(void)id;
	(void)id_len;
	if (session == NULL)
		return NULL;
	SSL_set_ex_data(ssl, pending_index, NULL);
	*copy = 0; /* the reference passes to OpenSSL */
	/* verified under the current store (cache_take checked the generation) */
	stamp(ssl);
	metrics = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), metrics_index);
	if (metrics != NULL)
		metrics->resumed_cached++;
	return session;
}

/* Every ticket carries the store fingerprint it was issued under. */
static int ticket_gen_cb(SSL *ssl, void *arg)
{
	const unsigned char *fp = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), fp_index);
	SSL_SESSION *session = SSL_get_session(ssl);

	(void)arg;
	if (fp == NULL || session == NULL)
		return 1; /* no client certificates: nothing to bind */
	return SSL_SESSION_set1_ticket_appdata(session, fp, SRV_TLS_FP_BYTES);
}

static SSL_TICKET_RETURN ticket_dec_cb(SSL *ssl, SSL_SESSION *session, const unsigned char *keyname,
				       size_t keyname_length, SSL_TICKET_STATUS status, void *arg)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	struct srv_tls_metrics *metrics = SSL_CTX_get_ex_data(ctx, metrics_index);
	const unsigned char *fp = SSL_CTX_get_ex_data(ctx, fp_index);
	X509 *peer = session != NULL ? SSL_SESSION_get0_peer(session) : NULL;
	void *appdata = NULL;
	size_t appdata_len = 0;
	bool renew = status == SSL_TICKET_SUCCESS_RENEW;

	(void)keyname;
	(void)keyname_length;
	(void)arg;
	/* cache_take declined it: no new ticket, session_get_cb resumes */
	if (status == SSL_TICKET_NO_DECRYPT && SSL_get_ex_data(ssl, pending_index) != NULL)
		return SSL_TICKET_RETURN_IGNORE;
	if (status == SSL_TICKET_FATAL_ERR_MALLOC || status == SSL_TICKET_FATAL_ERR_OTHER)
		return SSL_TICKET_RETURN_ABORT;
	if (status == SSL_TICKET_NO_DECRYPT && metrics != NULL)
		metrics->ticket_unknown_key++;
	if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW)
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	if (fp == NULL) /* no client certificates on this listener */
		return renew ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_USE;
	if (peer == NULL || X509_cmp_current_time(X509_get0_notAfter(peer)) <= 0) {
		if (metrics != NULL)
			metrics->resume_refused++;
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	if (SSL_SESSION_get0_ticket_appdata(session, &appdata, &appdata_len) != 1 ||
	    appdata_len != SRV_TLS_FP_BYTES || CRYPTO_memcmp(appdata, fp, SRV_TLS_FP_BYTES) != 0) {
		/* issued under another CA or CRL: the certificate again, now */
		if (metrics != NULL)
			metrics->resume_rechecked++;
		if (!cert_verifies(ctx, peer, NULL)) {
			if (metrics != NULL)
				metrics->resume_refused++;
			return SSL_TICKET_RETURN_IGNORE_RENEW;
		}
		renew = true; /* a ticket with the current fingerprint */
	}
	/* verified under the current store: srv_tls_peer_verified need not check again */
	stamp(ssl);
	if (renew)
		return SSL_TICKET_RETURN_USE_RENEW; /* the new ticket's session goes into the cache */
	cache_refill(ssl, session);
	return SSL_TICKET_RETURN_USE;
}

/* Counts each connection's handshake once (TLS 1.3 servers report "done" again after tickets). */
static void info_cb(const SSL *ssl, int where, int ret)
{
	SSL *mutable_ssl;
	struct srv_tls_metrics *metrics;

	(void)ret;
	if (!(where & SSL_CB_HANDSHAKE_DONE) || SSL_get_ex_data(ssl, counted_index) != NULL)
		return;
	metrics = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), metrics_index);
	/* the callback gets a const SSL; marking it needs a writable one */
	mutable_ssl = (SSL *)(uintptr_t)ssl;
	if (metrics == NULL)
		return;
	SSL_set_ex_data(mutable_ssl, counted_index, (void *)1);
	if (SSL_session_reused(ssl))
		metrics->resumed++;
	else
		metrics->full_handshakes++;
}

enum ota_err srv_tls_sessions_enable(SSL_CTX *ctx, unsigned lifetime_sec,
				     struct srv_tls_metrics *metrics)
{
	struct session_cache *cache;

	if (!indexes_ready() || SSL_CTX_set_ex_data(ctx, metrics_index, metrics) != 1 ||
	    SSL_CTX_set_session_ticket_cb(ctx, ticket_gen_cb, ticket_dec_cb, NULL) != 1)
		return OTA_ERR_NOMEM;
	if (SSL_CTX_get_ex_data(ctx, cache_index) == NULL) {
		cache = OPENSSL_zalloc(sizeof(*cache));
		if (cache == NULL || SSL_CTX_set_ex_data(ctx, cache_index, cache) != 1) {
			OPENSSL_free(cache);
			return OTA_ERR_NOMEM;
		}
	}
	/*
	 * OpenSSL's own cache stays off and empty: the lookup by session id is
	 * session_get_cb's alone, which only returns what cache_take
	 * prepared for this handshake. Without NO_INTERNAL, OpenSSL would
	 * store each session the callback returns in its internal cache (even
	 * with the cache mode off) and resume the next offer of that session
	 * id from there: no generation check, no stamp.
	 */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF | SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_sess_set_get_cb(ctx, session_get_cb);
	srv_tickets_set_cache(&cache_hooks);
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	/*
	 * One TLS 1.3 ticket after a full handshake, not OpenSSL's two: a
	 * device reconnects one connection at a time and resumes with the
	 * one it has (replaced when ticket_dec_cb renews it). Each ticket
	 * costs OpenSSL a session encoding and a decoding of it (the client
	 * certificate through OpenSSL 3.0's slow key decoders): the second
	 * one was about a fifth of a full handshake's instructions
	 * (docs/bench.md, "TLS handshakes: where the CPU goes").
	 */
	if (SSL_CTX_set_num_tickets(ctx, 1) != 1)
		return OTA_ERR_NOMEM;
	SSL_CTX_set_timeout(ctx, (long)lifetime_sec);
	SSL_CTX_set_info_callback(ctx, info_cb);
	return OTA_OK;
}

void srv_tls_close_notify(SSL *ssl)
{
	if (ssl == NULL || !SSL_is_init_finished(ssl) ||
	    (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) != 0)
		return;
	/* one non-blocking try: a full socket buffer means no close_notify */
	(void)SSL_shutdown(ssl);
	ERR_clear_error();
}

enum ota_err srv_tls_cert_cn(const char *path, char *out, size_t cap, char err[SRV_TLS_ERR_BYTES])
{
	FILE *f = fopen(path, "re");
	X509 *cert = NULL;
	X509_NAME *name;
	ASN1_STRING *data;
	const unsigned char *cn;
	int idx, len;
	enum ota_err code = OTA_ERR_FORMAT;

	if (f == NULL) {
		snprintf(err, SRV_TLS_ERR_BYTES, "%s: cannot open", path);
		return OTA_ERR_STORAGE;
	}
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	snprintf(err, SRV_TLS_ERR_BYTES, "%s: no certificate with exactly one printable CN", path);
	if (cert == NULL)
		return OTA_ERR_FORMAT;
	name = X509_get_subject_name(cert);
	idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (idx < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
		goto out;
	data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	len = ASN1_STRING_length(data);
	if (len <= 0 || (size_t)len >= cap)
		goto out;
	cn = ASN1_STRING_get0_data(data);
	for (int i = 0; i < len; i++) {
		if (cn[i] < 0x21 || cn[i] > 0x7e)
			goto out;
	}
	memcpy(out, cn, (size_t)len);
	out[len] = '\0';
	err[0] = '\0';
	code = OTA_OK;
out:
	X509_free(cert);
	return code;
}
