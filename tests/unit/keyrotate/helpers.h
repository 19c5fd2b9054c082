/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers for the keyrotate unit tests: temp dirs, keys, signed lists. */
#ifndef FLEETOTA_TEST_KEYS_HELPERS_H
#define FLEETOTA_TEST_KEYS_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleetota/sign.h"
#include "kr.h"

/* A fresh temp dir, removed (with its files) by tmpdir_remove. */
static inline void tmpdir_make(char *buf, size_t cap)
{
	snprintf(buf, cap, "/tmp/kr-unit.XXXXXX");
	assert_non_null(mkdtemp(buf));
}

static inline void tmpdir_remove(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static inline EVP_PKEY *key_new(enum ota_alg alg)
{
	EVP_PKEY *pkey = NULL;
	assert_int_equal(kr_key_generate(alg, &pkey, NULL), OTA_OK);
	return pkey;
}

static inline Fleetota__V1__PublicKey *pub_new(EVP_PKEY *pkey, const char *name,
					       uint64_t not_before, uint64_t not_after)
{
	Fleetota__V1__PublicKey *pub = NULL;
	assert_int_equal(ota_pubkey_from_pkey(pkey, name, not_before, not_after, &pub), OTA_OK);
	return pub;
}

/* An envelope over body signed by keys[0..n) as type (heap). */
static inline Fleetota__V1__Signed *signed_new(const uint8_t *body, size_t len,
					       enum ota_obj_type type, EVP_PKEY **keys, size_t n)
{
	Fleetota__V1__Signed *env = NULL;
	assert_int_equal(kr_envelope_new(body, len, &env), OTA_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ota_envelope_add_signature(env, type, keys[i]), OTA_OK);
	return env;
}

static inline void write_bytes(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

#endif
