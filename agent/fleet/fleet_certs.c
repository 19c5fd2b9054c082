/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device identities for the fleet simulator: what scripts/pki.sh does for
 * one device (a P-256 key, a client certificate with CN = device id signed
 * by the device CA), done with the OpenSSL API in this process, so that
 * 10,000 identities take seconds instead of 20,000 openssl processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fleet_sim.h"

#define CERT_DAYS 3650

struct fleet_ca {
	X509 *cert;
	EVP_PKEY *key;
};

struct fleet_ca *fleet_ca_load(const char *pki_dir)
{
	char path[FLEET_PATH_MAX];
	struct fleet_ca *ca = calloc(1, sizeof(*ca));
	if (!ca)
		return NULL;
	snprintf(path, sizeof(path), "%s/device-ca.crt", pki_dir);
	FILE *f = fopen(path, "r");
	if (f) {
		ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/device-ca.key", pki_dir);
	f = fopen(path, "r");
	if (f) {
		ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (!ca->cert || !ca->key) {
		fleet_ca_free(ca);
		return NULL;
	}
	return ca;
}

void fleet_ca_free(struct fleet_ca *ca)
{
	if (!ca)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca);
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return false;
	bool ok = X509_add_ext(cert, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

/* Writes a PEM file through a temp name, mode 0600, then renames it. */
static bool write_pem(const char *path, EVP_PKEY *key, X509 *cert)
{
	char tmp[FLEET_PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
		return false;
	}
	bool ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1
		      : PEM_write_X509(f, cert) == 1;
	ok = fclose(f) == 0 && ok;
	if (ok && rename(tmp, path) == 0)
		return true;
	unlink(tmp);
	return false;
}

int fleet_cert_issue(struct fleet_ca *ca, const char *pki_dir, const char *device_id)
{
	char crt_path[FLEET_PATH_MAX];
	char key_path[FLEET_PATH_MAX];
	struct stat st;
	snprintf(crt_path, sizeof(crt_path), "%s/devices/%s.crt", pki_dir, device_id);
	snprintf(key_path, sizeof(key_path), "%s/devices/%s.key", pki_dir, device_id);
	if (stat(crt_path, &st) == 0 && stat(key_path, &st) == 0)
		return 0; /* kept, as pki.sh keeps what exists */
	int rc = -1;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	X509_NAME *name = X509_NAME_new();
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	BIGNUM *bn = BN_new();
	if (!key || !cert || !name || !serial || !bn)
		goto out;
	if (!BN_rand(bn, 120, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    !BN_to_ASN1_INTEGER(bn, serial))
		goto out;
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
					(const unsigned char *)"fleetota dev", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)device_id,
					-1, -1, 0))
		goto out;
	if (!X509_set_version(cert, 2) || !X509_set_serialNumber(cert, serial) ||
	    !X509_set_subject_name(cert, name) ||
	    !X509_set_issuer_name(cert, X509_get_subject_name(ca->cert)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(cert), (long)CERT_DAYS * 24 * 3600) ||
	    !X509_set_pubkey(cert, key))
		goto out;
	if (!add_ext(cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(cert, ca->cert, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(cert, ca->cert, NID_ext_key_usage, "clientAuth") ||
	    !add_ext(cert, ca->cert, NID_subject_key_identifier, "hash") ||
	    !add_ext(cert, ca->cert, NID_authority_key_identifier, "keyid"))
		goto out;
	if (X509_sign(cert, ca->key, EVP_sha256()) <= 0)
		goto out;
	if (write_pem(key_path, key, NULL) && write_pem(crt_path, NULL, cert))
		rc = 0;
out:
	BN_free(bn);
	ASN1_INTEGER_free(serial);
	X509_NAME_free(name);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}
