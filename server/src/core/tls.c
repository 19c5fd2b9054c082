/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "http-internal.h"

/*
 * Revocation without dropping connections: srv_tls_server_reload() builds
 * a complete fresh context from the files and moves its certificate, key,
 * client CA list and verify store (CA + CRL) into the live SSL_CTX, so only
 * new handshakes see them. Each reload bumps a generation number kept on
 * the context; the verify callback stamps every handshake with the
 * generation it was verified under, and srv_tls_peer_verified() verifies a
 * connection's client certificate again (once) when the generation moved:
 * a device revoked while it holds a keep-alive connection is refused on
 * its next request.
 */

static int gen_index = -1; /* ex_data slot on SSL_CTX and on SSL */

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

/* Stamps a verified handshake with the context's generation. */
static int verify_cb(int preverify_ok, X509_STORE_CTX *store_ctx)
{
	SSL *ssl;

	if (preverify_ok != 1 || X509_STORE_CTX_get_error_depth(store_ctx) != 0)
		return preverify_ok;
	ssl = X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	if (ssl != NULL)
		SSL_set_ex_data(ssl, gen_index, (void *)ctx_generation(SSL_get_SSL_CTX(ssl)));
	return preverify_ok;
}

/* A new session id context per generation: no session from before resumes. */
static void set_session_context(SSL_CTX *ctx, uintptr_t generation)
{
	char sid_ctx[32];
	int len = snprintf(sid_ctx, sizeof(sid_ctx), "fleetota/%lu", (unsigned long)generation);

	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid_ctx, (unsigned)len);
}

/* The client CA and the CRL: a fresh verify store for ctx. */
static enum ota_err load_verify(SSL_CTX *ctx, const char *client_ca, const char *crl,
				char err[SRV_TLS_ERR_BYTES])
{
	STACK_OF(X509_NAME) * names;

	if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1)
		return fail(ctx, err, OTA_ERR_STORAGE, "loading client CA", client_ca);
	names = SSL_load_client_CA_file(client_ca);
	if (names == NULL)
		return fail(ctx, err, OTA_ERR_FORMAT, "reading client CA", client_ca);
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
	SSL_CTX_set_verify_depth(ctx, 4);
	set_session_context(ctx, ctx_generation(ctx));
	if (crl != NULL && crl[0] != '\0') {
		X509_STORE *store = SSL_CTX_get_cert_store(ctx);
		X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());

		if (lookup == NULL || X509_load_crl_file(lookup, crl, X509_FILETYPE_PEM) <= 0)
			return fail(ctx, err, OTA_ERR_STORAGE, "loading CRL", crl);
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	}
	return OTA_OK;
}

enum ota_err srv_tls_server_ctx(const char *cert, const char *key, const char *client_ca,
				const char *crl, SSL_CTX **ret_ctx, char err[SRV_TLS_ERR_BYTES])
{
	SSL_CTX *ctx;

	if (gen_index < 0)
		gen_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (gen_index < 0 || (ctx = SSL_CTX_new(TLS_server_method())) == NULL)
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
		SSL_CTX_set1_cert_store(live, SSL_CTX_get_cert_store(fresh));
		SSL_CTX_set_client_CA_list(live, names);
		set_session_context(live, generation);
		SSL_CTX_flush_sessions(live, 0);
	}
	SSL_CTX_free(fresh);
	return OTA_OK;
}

bool srv_tls_peer_verified(SSL *ssl)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	X509 *peer = SSL_get0_peer_certificate(ssl);
	uintptr_t generation = ctx_generation(ctx);
	X509_STORE_CTX *store_ctx;
	bool ok;

	if (peer == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return false;
	if (gen_index < 0 || (uintptr_t)SSL_get_ex_data(ssl, gen_index) == generation)
		return true;
	store_ctx = X509_STORE_CTX_new();
	ok = store_ctx != NULL &&
	     X509_STORE_CTX_init(store_ctx, SSL_CTX_get_cert_store(ctx), peer,
				 SSL_get_peer_cert_chain(ssl)) == 1 &&
	     X509_STORE_CTX_set_default(store_ctx, "ssl_client") == 1 &&
	     X509_verify_cert(store_ctx) == 1;
	X509_STORE_CTX_free(store_ctx);
	ERR_clear_error();
	if (ok)
		SSL_set_ex_data(ssl, gen_index, (void *)generation);
	return ok;
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
