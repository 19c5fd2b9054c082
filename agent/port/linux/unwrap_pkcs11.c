/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Linux port's key_unwrap with a P-256 recipient key held in a
 * PKCS#11 token (SoftHSM2, a smart card, tpm2-pkcs11): the ECDH step runs
 * in the token (C_DeriveKey, CKM_ECDH1_DERIVE, CKD_NULL), the private key
 * never leaves it; HKDF and the RFC 3394 unwrap run here on the shared
 * secret, which is read once and destroyed in the token. The module is
 * loaded, initialised and finalised per call (an encrypted manifest is
 * rare), under one lock: C_Initialize/C_Finalize are per process and the
 * fleet simulator runs devices on several threads.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <p11-kit/pkcs11.h>

#include "fleetota/crypt_host.h"
#include "ota_linux.h"

/* Bounds on what a token answers. */
#define P11_MAX_SLOTS 64u
#define P11_MAX_PIN_BYTES 256u
#define P11_LABEL_BYTES 32u

/* DER of the P-256 curve's OID, as CKA_EC_PARAMS holds it. */
static const uint8_t p256_params[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

static pthread_mutex_t p11_lock = PTHREAD_MUTEX_INITIALIZER;

struct p11 {
	const struct ota_linux_pkcs11 *cfg;
	void *lib;
	CK_FUNCTION_LIST_PTR f;
	bool initialized, logged_in;
	CK_SESSION_HANDLE session;
	bool session_open;
	CK_OBJECT_HANDLE secret;
	bool secret_made;
};

static const char *rv_name(CK_RV rv)
{
	switch (rv) {
	case CKR_PIN_INCORRECT:
		return "CKR_PIN_INCORRECT";
	case CKR_PIN_LOCKED:
		return "CKR_PIN_LOCKED";
	case CKR_PIN_LEN_RANGE:
		return "CKR_PIN_LEN_RANGE";
	case CKR_PIN_EXPIRED:
		return "CKR_PIN_EXPIRED";
	case CKR_USER_PIN_NOT_INITIALIZED:
		return "CKR_USER_PIN_NOT_INITIALIZED";
	case CKR_TOKEN_NOT_PRESENT:
		return "CKR_TOKEN_NOT_PRESENT";
	case CKR_DEVICE_ERROR:
		return "CKR_DEVICE_ERROR";
	case CKR_DEVICE_REMOVED:
		return "CKR_DEVICE_REMOVED";
	case CKR_MECHANISM_INVALID:
		return "CKR_MECHANISM_INVALID";
	case CKR_MECHANISM_PARAM_INVALID:
		return "CKR_MECHANISM_PARAM_INVALID";
	case CKR_KEY_TYPE_INCONSISTENT:
		return "CKR_KEY_TYPE_INCONSISTENT";
	case CKR_ATTRIBUTE_SENSITIVE:
		return "CKR_ATTRIBUTE_SENSITIVE";
	case CKR_TEMPLATE_INCONSISTENT:
		return "CKR_TEMPLATE_INCONSISTENT";
	case CKR_ARGUMENTS_BAD:
		return "CKR_ARGUMENTS_BAD";
	case CKR_FUNCTION_FAILED:
		return "CKR_FUNCTION_FAILED";
	case CKR_GENERAL_ERROR:
		return "CKR_GENERAL_ERROR";
	case CKR_HOST_MEMORY:
		return "CKR_HOST_MEMORY";
	}
	return "another CKR value";
}

/* One line on stderr (the port has no other channel for why), then KEY_ACCESS. */
static enum ota_err access_fail(const struct p11 *p, const char *what, CK_RV rv)
{
	if (rv != CKR_OK)
		fprintf(stderr, "ota-agent: pkcs11 %s (token '%s', key '%s'): %s (0x%lx)\n", what,
			p->cfg->token, p->cfg->key, rv_name(rv), (unsigned long)rv);
	else
		fprintf(stderr, "ota-agent: pkcs11 %s (token '%s', key '%s')\n", what,
			p->cfg->token, p->cfg->key);
	return OTA_ERR_KEY_ACCESS;
}

static enum ota_err p11_open(struct p11 *p)
{
	CK_C_GetFunctionList get_list;
	p->lib = dlopen(p->cfg->module, RTLD_NOW | RTLD_LOCAL);
	if (!p->lib)
		return access_fail(p, "module cannot be loaded", CKR_OK);
	*(void **)&get_list = dlsym(p->lib, "C_GetFunctionList");
	if (!get_list || get_list(&p->f) != CKR_OK || !p->f)
		return access_fail(p, "module has no C_GetFunctionList", CKR_OK);
	CK_C_INITIALIZE_ARGS args;
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	CK_RV rv = p->f->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
		return access_fail(p, "C_Initialize", rv);
	/* finalise only what this call initialised (another user keeps its own) */
	p->initialized = rv == CKR_OK;
	return OTA_OK;
}

/* The slot whose token label (32 bytes, blank padded) is cfg->token. */
static enum ota_err find_slot(struct p11 *p, CK_SLOT_ID *ret_slot)
{
	CK_SLOT_ID slots[P11_MAX_SLOTS];
	CK_ULONG n = P11_MAX_SLOTS;
	char want[P11_LABEL_BYTES];
	size_t len = strlen(p->cfg->token);
	if (len > P11_LABEL_BYTES)
		return access_fail(p, "token label longer than 32 bytes", CKR_OK);
	memset(want, ' ', sizeof(want));
	memcpy(want, p->cfg->token, len);
	CK_RV rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK)
		return access_fail(p, "C_GetSlotList", rv);
	for (CK_ULONG i = 0; i < n && i < P11_MAX_SLOTS; i++) {
		CK_TOKEN_INFO info;
		if (p->f->C_GetTokenInfo(slots[i], &info) != CKR_OK)
			continue;
		if (memcmp(info.label, want, sizeof(want)) == 0) {
			*ret_slot = slots[i];
			return OTA_OK;
		}
	}
	return access_fail(p, "no token with that label", CKR_OK);
}

/* The one object of class with label cfg->key; NOT_FOUND when there is none. */
static enum ota_err find_key(struct p11 *p, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *ret)
{
	CK_KEY_TYPE type = CKK_EC;
	CK_ATTRIBUTE tmpl[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_KEY_TYPE, &type, sizeof(type)},
		{CKA_LABEL, (void *)p->cfg->key, strlen(p->cfg->key)},
	};
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0;
	CK_RV rv = p->f->C_FindObjectsInit(p->session, tmpl, sizeof(tmpl) / sizeof(tmpl[0]));
	if (rv != CKR_OK)
		return access_fail(p, "C_FindObjectsInit", rv);
	rv = p->f->C_FindObjects(p->session, found, 2, &n);
	(void)p->f->C_FindObjectsFinal(p->session);
	if (rv != CKR_OK)
		return access_fail(p, "C_FindObjects", rv);
	if (n > 1)
		return access_fail(p, "two EC keys of that class have that label", CKR_OK);
	if (n == 0)
		return OTA_ERR_NOT_FOUND;
	*ret = found[0];
	return OTA_OK;
}

/*
 * The public key's point (CKA_EC_POINT: a DER OCTET STRING, or the bare
 * point from some tokens) after checking CKA_EC_PARAMS names P-256.
 */
static enum ota_err public_point(struct p11 *p, CK_OBJECT_HANDLE pub,
				 uint8_t ret_point[OTA_P256_POINT_BYTES])
{
	uint8_t params[OTA_P11_EC_PARAMS_MAX], point[OTA_P256_POINT_BYTES + 2];
	CK_ATTRIBUTE attrs[] = {
		{CKA_EC_PARAMS, params, sizeof(params)},
		{CKA_EC_POINT, point, sizeof(point)},
	};
	CK_RV rv = p->f->C_GetAttributeValue(p->session, pub, attrs, 2);
	if (rv != CKR_OK)
		return access_fail(p, "public key attributes", rv);
	if (attrs[0].ulValueLen != sizeof(p256_params) ||
	    memcmp(params, p256_params, sizeof(p256_params)) != 0)
		return access_fail(p, "key is not on P-256", CKR_OK);
	const uint8_t *q = point;
	if (attrs[1].ulValueLen == OTA_P256_POINT_BYTES + 2 && point[0] == 0x04 &&
	    point[1] == OTA_P256_POINT_BYTES)
		q = point + 2;
	else if (attrs[1].ulValueLen != OTA_P256_POINT_BYTES)
		return access_fail(p, "public key point has an unexpected encoding", CKR_OK);
	memcpy(ret_point, q, OTA_P256_POINT_BYTES);
	return OTA_OK;
}

/* The user PIN from cfg->pin_file: a regular file no one else may read. */
static enum ota_err pin_read(struct p11 *p, char pin[P11_MAX_PIN_BYTES + 1], size_t *ret_len)
{
	struct stat st;
	int fd = open(p->cfg->pin_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		fprintf(stderr, "ota-agent: pkcs11_pin_file %s: %s\n", p->cfg->pin_file,
			strerror(errno));
		return OTA_ERR_KEY_ACCESS;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
		close(fd);
		fprintf(stderr,
			"ota-agent: pkcs11_pin_file %s: must be a regular file of mode 0600\n",
			p->cfg->pin_file);
		return OTA_ERR_KEY_ACCESS;
	}
	ssize_t got = read(fd, pin, P11_MAX_PIN_BYTES + 1);
	close(fd);
	if (got < 0 || (size_t)got > P11_MAX_PIN_BYTES) {
		OPENSSL_cleanse(pin, P11_MAX_PIN_BYTES + 1);
		fprintf(stderr, "ota-agent: pkcs11_pin_file %s: unreadable or over %u bytes\n",
			p->cfg->pin_file, P11_MAX_PIN_BYTES);
		return OTA_ERR_KEY_ACCESS;
	}
	size_t len = (size_t)got;
	while (len > 0 && (pin[len - 1] == '\n' || pin[len - 1] == '\r'))
		len--;
	*ret_len = len;
	return OTA_OK;
}

static enum ota_err login(struct p11 *p)
{
	char pin[P11_MAX_PIN_BYTES + 1];
	size_t len = 0;
	enum ota_err err = pin_read(p, pin, &len);
	if (err != OTA_OK)
		return err;
	CK_RV rv = p->f->C_Login(p->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, len);
	OPENSSL_cleanse(pin, sizeof(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
		return access_fail(p, "C_Login", rv);
	p->logged_in = rv == CKR_OK;
	return OTA_OK;
}

/* Z = the x-coordinate of d * E, derived in the token and read once. */
static enum ota_err derive(struct p11 *p, CK_OBJECT_HANDLE priv,
			   const uint8_t ephemeral[OTA_P256_POINT_BYTES],
			   uint8_t ret_shared[OTA_P256_SHARED_BYTES])
{
	CK_ECDH1_DERIVE_PARAMS params = {
		.kdf = CKD_NULL,
		.pPublicData = (CK_BYTE_PTR)ephemeral,
		.ulPublicDataLen = OTA_P256_POINT_BYTES,
	};
	CK_MECHANISM mech = {CKM_ECDH1_DERIVE, &params, sizeof(params)};
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE type = CKK_GENERIC_SECRET;
	CK_ULONG value_len = OTA_P256_SHARED_BYTES;
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_KEY_TYPE, &type, sizeof(type)},
		{CKA_VALUE_LEN, &value_len, sizeof(value_len)},
		{CKA_TOKEN, &no, sizeof(no)},
		{CKA_SENSITIVE, &no, sizeof(no)},
		{CKA_EXTRACTABLE, &yes, sizeof(yes)},
	};
	CK_RV rv = p->f->C_DeriveKey(p->session, &mech, priv, tmpl, sizeof(tmpl) / sizeof(tmpl[0]),
				     &p->secret);
	if (rv != CKR_OK)
		return access_fail(p, "C_DeriveKey (CKM_ECDH1_DERIVE)", rv);
	p->secret_made = true;
	CK_ATTRIBUTE value = {CKA_VALUE, ret_shared, OTA_P256_SHARED_BYTES};
	rv = p->f->C_GetAttributeValue(p->session, p->secret, &value, 1);
	if (rv != CKR_OK || value.ulValueLen != OTA_P256_SHARED_BYTES) {
		OPENSSL_cleanse(ret_shared, OTA_P256_SHARED_BYTES);
		return access_fail(p, "reading the derived secret", rv);
	}
	return OTA_OK;
}

static void p11_close(struct p11 *p)
{
	if (p->secret_made)
		(void)p->f->C_DestroyObject(p->session, p->secret);
	if (p->logged_in)
		(void)p->f->C_Logout(p->session);
	if (p->session_open)
		(void)p->f->C_CloseSession(p->session);
	if (p->initialized)
		(void)p->f->C_Finalize(NULL);
	if (p->lib)
		dlclose(p->lib);
}

/* The steps after the module is up: the token, its key, the derive, the unwrap. */
static enum ota_err p11_unwrap(struct p11 *p, const struct ota_key_unwrap_request *req,
			       uint8_t ret_key[OTA_CEK_BYTES])
{
	uint8_t point[OTA_P256_POINT_BYTES], id[OTA_KEY_ID_BYTES];
	uint8_t shared[OTA_P256_SHARED_BYTES];
	CK_OBJECT_HANDLE pub = 0, priv = 0;
	CK_SLOT_ID slot = 0;
	EVP_PKEY *own = NULL;
	enum ota_err err = find_slot(p, &slot);
	if (err != OTA_OK)
		return err;
	CK_RV rv = p->f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &p->session);
	if (rv != CKR_OK)
		return access_fail(p, "C_OpenSession", rv);
	p->session_open = true;
	/* the public key is readable without the PIN on most tokens: a stranger's entry costs no login */
	err = find_key(p, CKO_PUBLIC_KEY, &pub);
	if (err == OTA_ERR_NOT_FOUND && (err = login(p)) == OTA_OK)
		err = find_key(p, CKO_PUBLIC_KEY, &pub);
	if (err == OTA_ERR_NOT_FOUND)
		return access_fail(p, "no EC public key object with that label", CKR_OK);
	if (err == OTA_OK)
		err = public_point(p, pub, point);
	if (err == OTA_OK)
		err = ota_crypt_public_from_raw(OTA_RECIPIENT_P256, point, sizeof(point), &own);
	if (err != OTA_OK)
		return err == OTA_ERR_KEY_UNWRAP
			       ? access_fail(p, "public key is not a P-256 point", CKR_OK)
			       : err;
	err = ota_crypt_recipient_id(own, id);
	EVP_PKEY_free(own);
	if (err != OTA_OK)
		return access_fail(p, "public key has no key id", CKR_OK);
	if (memcmp(id, req->key_id, sizeof(id)) != 0)
		return OTA_ERR_NOT_FOUND;
	if (!p->logged_in && (err = login(p)) != OTA_OK)
		return err;
	err = find_key(p, CKO_PRIVATE_KEY, &priv);
	if (err == OTA_ERR_NOT_FOUND)
		return access_fail(p, "no EC private key object with that label", CKR_OK);
	if (err == OTA_OK)
		err = derive(p, priv, req->ephemeral_public, shared);
	if (err == OTA_OK)
		err = ota_crypt_unwrap_shared(shared, sizeof(shared), req->ephemeral_public, point,
					      sizeof(point), req->context, req->wrapped_key,
					      ret_key);
	OPENSSL_cleanse(shared, sizeof(shared));
	return err;
}

enum ota_err ota_linux_pkcs11_unwrap(const struct ota_linux_pkcs11 *cfg,
				     const struct ota_key_unwrap_request *req,
				     uint8_t ret_key[OTA_CEK_BYTES])
{
	EVP_PKEY *eph = NULL;
	if (!cfg->module || req->kind != OTA_RECIPIENT_P256)
		return OTA_ERR_NOT_FOUND;
	/* a point off the curve never reaches the token (invalid-curve attacks) */
	enum ota_err err = ota_crypt_public_from_raw(req->kind, req->ephemeral_public,
						     req->ephemeral_public_len, &eph);
	EVP_PKEY_free(eph);
	if (err != OTA_OK)
		return OTA_ERR_KEY_UNWRAP;
	struct p11 p = {.cfg = cfg};
	pthread_mutex_lock(&p11_lock);
	err = p11_open(&p);
	if (err == OTA_OK)
		err = p11_unwrap(&p, req, ret_key);
	p11_close(&p);
	pthread_mutex_unlock(&p11_lock);
	return err;
}
