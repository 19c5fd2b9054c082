/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PKCS#11 keys through libp11's OpenSSL ENGINE (Debian 12 ships no
 * pkcs11-provider). The ENGINE API is deprecated in OpenSSL 3, so it is
 * confined to this one file. The private key never leaves the token: the
 * EVP_PKEY is a handle whose sign operation the engine runs in the token.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <stdlib.h>
#include <string.h>

#include <openssl/engine.h>
#include <openssl/err.h>

#include "kr.h"

#ifndef KR_PKCS11_ENGINE_PATH
#define KR_PKCS11_ENGINE_PATH "pkcs11.so"
#endif

static ENGINE *pkcs11_engine;

static enum ota_err engine_start(const char *module, const struct kr_secret *pin,
				 struct kr_diag *diag)
{
	if (pkcs11_engine)
		return OTA_OK;
	const char *so_path = getenv("OTA_PKCS11_ENGINE");
	if (!so_path || !*so_path)
		so_path = KR_PKCS11_ENGINE_PATH;
	if (!module || !*module)
		module = getenv("OTA_PKCS11_MODULE");

	ENGINE_load_dynamic();
	ENGINE *e = ENGINE_by_id("dynamic");
	if (!e)
		return kr_fail(diag, OTA_ERR_INTERNAL, "OpenSSL has no dynamic engine loader");
	if (!ENGINE_ctrl_cmd_string(e, "SO_PATH", so_path, 0) ||
	    !ENGINE_ctrl_cmd_string(e, "ID", "pkcs11", 0) ||
	    !ENGINE_ctrl_cmd_string(e, "LIST_ADD", "1", 0) ||
	    !ENGINE_ctrl_cmd_string(e, "LOAD", NULL, 0)) {
		ENGINE_free(e);
		ERR_clear_error();
		return kr_fail(diag, OTA_ERR_NOT_FOUND, "cannot load the PKCS#11 engine %s",
			       so_path);
	}
	if (module && *module && !ENGINE_ctrl_cmd_string(e, "MODULE_PATH", module, 0)) {
		ENGINE_free(e);
		ERR_clear_error();
		return kr_fail(diag, OTA_ERR_NOT_FOUND, "PKCS#11 module %s refused", module);
	}
	if (pin && pin->buf && !ENGINE_ctrl_cmd_string(e, "PIN", pin->buf, 0)) {
		ENGINE_free(e);
		ERR_clear_error();
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "PKCS#11 engine refused the PIN");
	}
	if (!ENGINE_init(e)) {
		ENGINE_free(e);
		ERR_clear_error();
		return kr_fail(diag, OTA_ERR_NOT_FOUND, "PKCS#11 engine failed to start");
	}
	/* ENGINE_init took a functional reference; drop the structural one */
	ENGINE_free(e);
	pkcs11_engine = e;
	return OTA_OK;
}

enum ota_err kr_pkcs11_load(const char *uri, const char *module, const struct kr_secret *pin,
			    EVP_PKEY **ret_pkey, struct kr_diag *diag)
{
	enum ota_err err = engine_start(module, pin, diag);
	if (err != OTA_OK)
		return err;
	EVP_PKEY *pkey = ENGINE_load_private_key(pkcs11_engine, uri, NULL, NULL);
	if (!pkey) {
		ERR_clear_error();
		return kr_fail(diag, OTA_ERR_NOT_FOUND,
			       "no usable private key in the token for that pkcs11: URI "
			       "(wrong URI or PIN?)");
	}
	*ret_pkey = pkey;
	return OTA_OK;
}

void kr_pkcs11_shutdown(void)
{
	if (pkcs11_engine) {
		ENGINE_finish(pkcs11_engine);
		pkcs11_engine = NULL;
	}
}
