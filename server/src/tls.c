/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "http-internal.h"

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

enum ota_err srv_tls_server_ctx(const char *cert, const char *key, const char *client_ca,
				const char *crl, SSL_CTX **ret_ctx, char err[SRV_TLS_ERR_BYTES])
{
	static const unsigned char sid_ctx[] = "fleetota";
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
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
		STACK_OF(X509_NAME) * names;

		if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1)
			return fail(ctx, err, OTA_ERR_STORAGE, "loading client CA", client_ca);
		names = SSL_load_client_CA_file(client_ca);
		if (names == NULL)
			return fail(ctx, err, OTA_ERR_FORMAT, "reading client CA", client_ca);
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		SSL_CTX_set_verify_depth(ctx, 4);
		SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
		if (crl != NULL && crl[0] != '\0') {
			X509_STORE *store = SSL_CTX_get_cert_store(ctx);
			X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());

			if (lookup == NULL ||
			    X509_load_crl_file(lookup, crl, X509_FILETYPE_PEM) <= 0)
				return fail(ctx, err, OTA_ERR_STORAGE, "loading CRL", crl);
			X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
		}
	}
	*ret_ctx = ctx;
	return OTA_OK;
}
