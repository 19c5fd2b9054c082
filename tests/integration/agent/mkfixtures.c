/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writes the trust anchors and the attack bundles of the ota-agent CLI
 * test into DIR, plus DIR/cases.txt: one "bundle expected_error" per line
 * (OTA_OK for bundles that must install).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ota_fixture.h"

#define ISSUED 1700000000u
#define V1_LEN 6000u
#define V2_LEN 50000u

struct ctx {
	const char *dir;
	FILE *cases;
	EVP_PKEY *roots[3];
	EVP_PKEY *op;
	EVP_PKEY *revoked;
	EVP_PKEY *old;
	EVP_PKEY *stranger;
	uint8_t v1[V1_LEN];
	uint8_t v2[V2_LEN];
};

static void write_env(struct ctx *c, const char *name, const Fleetota__V1__Signed *env)
{
	char *path = ota_fx_path(c->dir, name);
	ota_fx_env_write(path, env);
	free(path);
}

static void write_buf(struct ctx *c, const char *name, const struct ota_fx_buf *buf)
{
	char *path = ota_fx_path(c->dir, name);
	ota_fx_write_file(path, buf->data, buf->len);
	free(path);
}

static void spec_for(struct ctx *c, struct ota_fx_manifest *spec, const uint8_t *image, size_t len,
		     uint64_t code, uint64_t counter)
{
	ota_fx_manifest_init(spec, image, len);
	spec->product = "fx-model";
	spec->version = code >= 20 ? "2.0.0" : "1.0.0";
	spec->version_code = code;
	spec->security_counter = counter;
	spec->issued_at = ISSUED + 1000;
	spec->signers = &c->op;
	spec->n_signers = 1;
}

/* A bundle of spec + image (+ keylist/rootlist), recorded as a case. */
static void bundle_case(struct ctx *c, const char *name, const struct ota_fx_manifest *spec,
			const uint8_t *image, size_t len, const Fleetota__V1__Signed *kl,
			const Fleetota__V1__Signed *root, const char *expected)
{
	Fleetota__V1__Signed *m = ota_fx_manifest(spec);
	struct ota_fx_bundle bs = {
		.manifest = m, .keylist = kl, .rootlist = root, .image = image, .image_len = len};
	struct ota_fx_buf b = ota_fx_bundle_bytes(&bs);
	write_buf(c, name, &b);
	if (expected)
		fprintf(c->cases, "%s %s\n", name, expected);
	ota_fx_buf_free(&b);
	ota_fx_env_free(m);
}

int main(int argc, char **argv)
{
	struct ctx c;
	memset(&c, 0, sizeof(c));
	if (argc != 2) {
		fprintf(stderr, "usage: mkfixtures DIR\n");
		return 2;
	}
	c.dir = argv[1];
	char *cases_path = ota_fx_path(c.dir, "cases.txt");
	c.cases = fopen(cases_path, "w");
	free(cases_path);
	if (!c.cases)
		return 1;
	for (int i = 0; i < 3; i++)
		c.roots[i] = ota_fx_key_new(i ? OTA_ALG_ED25519 : OTA_ALG_ECDSA_P256_SHA256);
	c.op = ota_fx_key_new(OTA_ALG_ED25519);
	c.revoked = ota_fx_key_new(OTA_ALG_ED25519);
	c.old = ota_fx_key_new(OTA_ALG_ECDSA_P256_SHA256);
	c.stranger = ota_fx_key_new(OTA_ALG_ED25519);
	for (size_t i = 0; i < V1_LEN; i++)
		c.v1[i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < V2_LEN; i++)
		c.v2[i] = (uint8_t)(i * 13 + 5);

	struct ota_fx_rootlist rs = {.version = 1,
				     .threshold = 2,
				     .keys = c.roots,
				     .n_keys = 3,
				     .signers = c.roots,
				     .n_signers = 3};
	Fleetota__V1__Signed *root1 = ota_fx_rootlist(&rs);
	struct ota_fx_opkey keys1[3] = {
		{.key = c.op}, {.key = c.revoked}, {.key = c.old, .not_after = ISSUED}};
	struct ota_fx_keylist ks = {
		.version = 1, .keys = keys1, .n_keys = 3, .signers = c.roots, .n_signers = 2};
	Fleetota__V1__Signed *kl1 = ota_fx_keylist(&ks);
	struct ota_fx_opkey keys2[2] = {{.key = c.op}, {.key = c.old, .not_after = ISSUED}};
	ks.version = 2;
	ks.keys = keys2;
	ks.n_keys = 2;
	Fleetota__V1__Signed *kl2 = ota_fx_keylist(&ks);
	write_env(&c, "root1.env", root1);
	write_env(&c, "kl1.env", kl1);

	struct ota_fx_manifest spec;
	/* v1 carries KeyList 2 (the revocation of `revoked`) to the device */
	spec_for(&c, &spec, c.v1, V1_LEN, 10, 5);
	bundle_case(&c, "v1.otab", &spec, c.v1, V1_LEN, kl2, NULL, NULL);

	spec_for(&c, &spec, c.v2, V2_LEN, 20, 7);
	bundle_case(&c, "good.otab", &spec, c.v2, V2_LEN, NULL, NULL, NULL);
	{
		/* the same update online: DIR/online/<artifact>.{manifest,image} */
		char *online = ota_fx_path(c.dir, "online");
		if (mkdir(online, 0700) != 0 && errno != EEXIST)
			return 1;
		free(online);
		Fleetota__V1__Signed *om = ota_fx_manifest(&spec);
		write_env(&c, "online/art-2.manifest", om);
		write_env(&c, "online/art-bad.manifest", om);
		write_env(&c, "online/keylist", kl2);
		struct ota_fx_buf img = {0};
		ota_fx_buf_append(&img, c.v2, V2_LEN);
		write_buf(&c, "online/art-2.image", &img);
		img.data[V2_LEN / 3] ^= 0x20;
		write_buf(&c, "online/art-bad.image", &img);
		ota_fx_buf_free(&img);
		ota_fx_env_free(om);
		/* an artifact signed by a key only KeyList 3 trusts */
		EVP_PKEY *op3 = ota_fx_key_new(OTA_ALG_ED25519);
		struct ota_fx_opkey keys3[2] = {{.key = c.op}, {.key = op3}};
		struct ota_fx_keylist ks3 = {.version = 3,
					     .keys = keys3,
					     .n_keys = 2,
					     .signers = c.roots,
					     .n_signers = 2};
		Fleetota__V1__Signed *kl3 = ota_fx_keylist(&ks3);
		write_env(&c, "online/keylist3", kl3);
		struct ota_fx_manifest s3;
		spec_for(&c, &s3, c.v2, V2_LEN, 30, 8);
		s3.signers = &op3;
		om = ota_fx_manifest(&s3);
		write_env(&c, "online/art-3.manifest", om);
		img.len = 0;
		ota_fx_buf_append(&img, c.v2, V2_LEN);
		write_buf(&c, "online/art-3.image", &img);
		ota_fx_buf_free(&img);
		ota_fx_env_free(om);
		ota_fx_env_free(kl3);
		EVP_PKEY_free(op3);
	}

	/* tampered image byte */
	Fleetota__V1__Signed *m = ota_fx_manifest(&spec);
	struct ota_fx_bundle bs = {.manifest = m, .image = c.v2, .image_len = V2_LEN};
	struct ota_fx_buf b = ota_fx_bundle_bytes(&bs);
	ota_fx_bundle_corrupt(&b, OTA_FX_PART_IMAGE, V2_LEN - 3);
	write_buf(&c, "tampered-image.otab", &b);
	fprintf(c.cases, "tampered-image.otab OTA_ERR_HASH\n");
	ota_fx_buf_free(&b);
	/* image longer / shorter than declared, trailing bytes */
	b = ota_fx_bundle_bytes(&bs);
	ota_fx_buf_append(&b, "EXTRA", 5);
	write_buf(&c, "trailing.otab", &b);
	fprintf(c.cases, "trailing.otab OTA_ERR_SIZE\n");
	ota_fx_buf_free(&b);
	b = ota_fx_bundle_bytes(&bs);
	ota_fx_buf_truncate(&b, 1);
	write_buf(&c, "shorter.otab", &b);
	fprintf(c.cases, "shorter.otab OTA_ERR_SIZE\n");
	ota_fx_buf_free(&b);
	/* a bundle that ends inside its header; a file that is not a bundle */
	b = ota_fx_bundle_bytes(&bs);
	ota_fx_buf_truncate(&b, V2_LEN + 10);
	write_buf(&c, "cut-header.otab", &b);
	fprintf(c.cases, "cut-header.otab OTA_ERR_FORMAT\n");
	ota_fx_bundle_corrupt(&b, OTA_FX_PART_PREFIX, 0);
	write_buf(&c, "not-a-bundle.otab", &b);
	fprintf(c.cases, "not-a-bundle.otab OTA_ERR_FORMAT\n");
	ota_fx_buf_free(&b);
	/* tampered manifest byte: 2.0.0 -> 3.0.0 inside the signed body */
	for (size_t i = 0; i + 5 <= m->body.len; i++) {
		if (memcmp(m->body.data + i, "2.0.0", 5) == 0)
			m->body.data[i] = '3';
	}
	b = ota_fx_bundle_bytes(&bs);
	write_buf(&c, "tampered-manifest.otab", &b);
	fprintf(c.cases, "tampered-manifest.otab OTA_ERR_SIGNATURE\n");
	ota_fx_buf_free(&b);
	ota_fx_env_free(m);

	spec_for(&c, &spec, c.v2, V2_LEN, 20, 7);
	spec.n_signers = 0;
	bundle_case(&c, "unsigned.otab", &spec, c.v2, V2_LEN, NULL, NULL, "OTA_ERR_SIGNATURE");
	spec_for(&c, &spec, c.v2, V2_LEN, 20, 7);
	spec.signers = &c.stranger;
	bundle_case(&c, "unknown-key.otab", &spec, c.v2, V2_LEN, NULL, NULL, "OTA_ERR_KEY_UNKNOWN");
	spec.signers = &c.revoked;
	bundle_case(&c, "revoked-key.otab", &spec, c.v2, V2_LEN, NULL, NULL, "OTA_ERR_KEY_UNKNOWN");
	spec.signers = &c.old;
	bundle_case(&c, "expired-key.otab", &spec, c.v2, V2_LEN, NULL, NULL, "OTA_ERR_KEY_EXPIRED");
	spec.signers = &c.op;
	spec.sign_type = OTA_OBJ_KEYLIST;
	bundle_case(&c, "cross-type.otab", &spec, c.v2, V2_LEN, NULL, NULL, "OTA_ERR_SIGNATURE");

	spec_for(&c, &spec, c.v2, V2_LEN, 9, 5);
	bundle_case(&c, "older.otab", &spec, c.v2, V2_LEN, NULL, NULL, "OTA_ERR_DOWNGRADE");
	spec_for(&c, &spec, c.v2, V2_LEN, 20, 4);
	bundle_case(&c, "lower-counter.otab", &spec, c.v2, V2_LEN, NULL, NULL, "OTA_ERR_ROLLBACK");
	spec_for(&c, &spec, c.v2, V2_LEN, 9, 4);
	spec.allow_downgrade = true;
	bundle_case(&c, "downgrade-lower-counter.otab", &spec, c.v2, V2_LEN, NULL, NULL,
		    "OTA_ERR_ROLLBACK");
	spec_for(&c, &spec, c.v2, V2_LEN, 9, 5);
	spec.allow_downgrade = true;
	bundle_case(&c, "downgrade-equal-counter.otab", &spec, c.v2, V2_LEN, NULL, NULL, NULL);

	spec_for(&c, &spec, c.v2, V2_LEN, 20, 7);
	spec.product = "other-model";
	bundle_case(&c, "wrong-model.otab", &spec, c.v2, V2_LEN, NULL, NULL, "OTA_ERR_HW_MISMATCH");
	spec_for(&c, &spec, c.v2, V2_LEN, 20, 7);
	const char *revs[] = {"revB"};
	spec.hw_revisions = revs;
	spec.n_hw_revisions = 1;
	bundle_case(&c, "wrong-hw.otab", &spec, c.v2, V2_LEN, NULL, NULL, "OTA_ERR_HW_MISMATCH");
	/* v1's issued_at (ISSUED + 1000) is the device's latest trusted time */
	spec_for(&c, &spec, c.v2, V2_LEN, 20, 7);
	spec.issued_at = ISSUED + 10;
	spec.expires_at = ISSUED + 100;
	bundle_case(&c, "expired-manifest.otab", &spec, c.v2, V2_LEN, NULL, NULL,
		    "OTA_ERR_EXPIRED");
	spec_for(&c, &spec, c.v2, V2_LEN, 20, 7);
	spec.min_installed_version = 11;
	bundle_case(&c, "min-version.otab", &spec, c.v2, V2_LEN, NULL, NULL, "OTA_ERR_MIN_VERSION");
	spec_for(&c, &spec, c.v2, V2_LEN, 20, 7);
	spec.image_size = V2_LEN - 100;
	bundle_case(&c, "longer.otab", &spec, c.v2, V2_LEN, NULL, NULL, "OTA_ERR_SIZE");

	spec_for(&c, &spec, c.v2, V2_LEN, 20, 7);
	bundle_case(&c, "keylist-rollback.otab", &spec, c.v2, V2_LEN, kl1, NULL,
		    "OTA_ERR_KEYLIST_ROLLBACK");
	EVP_PKEY *new_roots[2] = {ota_fx_key_new(OTA_ALG_ED25519), ota_fx_key_new(OTA_ALG_ED25519)};
	EVP_PKEY *few[3] = {c.roots[0], new_roots[0], new_roots[1]};
	struct ota_fx_rootlist rs2 = {.version = 2,
				      .threshold = 2,
				      .keys = new_roots,
				      .n_keys = 2,
				      .signers = few,
				      .n_signers = 3};
	Fleetota__V1__Signed *root2 = ota_fx_rootlist(&rs2);
	bundle_case(&c, "rootlist-few-roots.otab", &spec, c.v2, V2_LEN, NULL, root2,
		    "OTA_ERR_ROOT_CHAIN");

	/* trust anchors of another fleet: a provisioned device must refuse them */
	struct ota_fx_rootlist other_rs = {.version = 1,
					   .threshold = 2,
					   .keys = new_roots,
					   .n_keys = 2,
					   .signers = new_roots,
					   .n_signers = 2};
	Fleetota__V1__Signed *other_root = ota_fx_rootlist(&other_rs);
	struct ota_fx_opkey other_keys[1] = {{.key = c.stranger}};
	struct ota_fx_keylist other_ks = {.version = 1,
					  .keys = other_keys,
					  .n_keys = 1,
					  .signers = new_roots,
					  .n_signers = 2};
	Fleetota__V1__Signed *other_kl = ota_fx_keylist(&other_ks);
	write_env(&c, "other-root.env", other_root);
	write_env(&c, "other-kl.env", other_kl);
	ota_fx_env_free(other_root);
	ota_fx_env_free(other_kl);

	fclose(c.cases);
	ota_fx_env_free(root2);
	ota_fx_env_free(root1);
	ota_fx_env_free(kl1);
	ota_fx_env_free(kl2);
	for (int i = 0; i < 3; i++)
		EVP_PKEY_free(c.roots[i]);
	EVP_PKEY_free(new_roots[0]);
	EVP_PKEY_free(new_roots[1]);
	EVP_PKEY_free(c.op);
	EVP_PKEY_free(c.revoked);
	EVP_PKEY_free(c.old);
	EVP_PKEY_free(c.stranger);
	return 0;
}
