/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper for the server integration tests (stands in for the REST
 * API's artifact upload and for a device's MQTT payloads):
 *
 *   srv_testtool fixtures DIR ID:VERSION:CODE:SIZE...
 *       signed RootList/KeyList (DIR/rootlist.bin, DIR/keylist.bin,
 *       DIR/trust.sql; the KeyList also lists the timestamp role's key,
 *       DIR/timestamp.key; DIR/operational.key is the KeyList's
 *       operational key, the one that signs the manifests; DIR/root.key
 *       is the RootList's key, DIR/root.pem its public half) and per
 *       artifact DIR/ID.manifest, DIR/ID.image, DIR/ID.otab, DIR/ID.sql
 *       (the artifacts row; the image goes into the store as
 *       DIR/store/<sha256>).
 *   srv_testtool report FILE DEVICE SEQ STATE VERSION CODE COUNTER [ARTIFACT]
 *       [EVENT_SEQ:KIND[:ERROR] | health:REBOOTS:PERMILLE]...   a StatusReport
 *       (health: post-install health, StatusReport 30..32)
 *   srv_testtool notify FILE           prints "kind artifact version code"
 *       and, when the Notify carries a health window, its seconds
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fleetota/crypto.h"
#include "fleetota/hex.h"
#include "fleetota/limits.h"
#include "ota.pb-c.h"
#include "ota_fixture.h"

static void hex(FILE *f, const uint8_t *data, size_t len)
{
	char *text = malloc(2 * len + 1);

	if (text == NULL)
		abort();
	ota_hex_encode(data, len, text);
	fputs(text, f);
	free(text);
}

static char *path2(const char *dir, const char *name, const char *ext)
{
	size_t len = strlen(dir) + strlen(name) + strlen(ext) + 3;
	char *p = malloc(len);

	if (p == NULL)
		abort();
	snprintf(p, len, "%s/%s%s", dir, name, ext);
	return p;
}

static int cmd_fixtures(int argc, char **argv)
{
	const char *dir = argv[0];
	EVP_PKEY *root = ota_fx_key_new(OTA_ALG_ED25519);
	EVP_PKEY *op = ota_fx_key_new(OTA_ALG_ED25519);
	EVP_PKEY *ts = ota_fx_key_new(OTA_ALG_ED25519);
	struct ota_fx_rootlist rl = {0};
	struct ota_fx_keylist kl = {0};
	struct ota_fx_opkey opkeys[2] = {
		{.key = op}, {.key = ts, .role = FLEETOTA__V1__KEY_ROLE__KEY_ROLE_TIMESTAMP}};
	Fleetota__V1__Signed *root_env, *kl_env;
	struct ota_fx_buf rl_bytes, kl_bytes;
	uint8_t op_id[OTA_KEY_ID_BYTES], digest[32];
	char *p, *store;
	FILE *f;

	store = path2(dir, "store", "");
	mkdir(store, 0755);
	rl.version = 1;
	rl.threshold = 1;
	rl.keys = &root;
	rl.n_keys = 1;
	rl.issued_at = 1700000000;
	rl.signers = &root;
	rl.n_signers = 1;
	root_env = ota_fx_rootlist(&rl);
	kl.version = 1;
	kl.issued_at = 1700000000;
	kl.rootlist_version = 1;
	kl.keys = opkeys;
	kl.n_keys = 2;
	kl.signers = &root;
	kl.n_signers = 1;
	kl_env = ota_fx_keylist(&kl);
	rl_bytes = ota_fx_env_bytes(root_env);
	kl_bytes = ota_fx_env_bytes(kl_env);
	p = path2(dir, "rootlist", ".bin");
	ota_fx_write_file(p, rl_bytes.data, rl_bytes.len);
	free(p);
	p = path2(dir, "keylist", ".bin");
	ota_fx_write_file(p, kl_bytes.data, kl_bytes.len);
	free(p);
	p = path2(dir, "root", ".pem");
	ota_fx_key_write_pem(p, root, false);
	free(p);
	p = path2(dir, "timestamp", ".key");
	ota_fx_key_write_pem(p, ts, true);
	chmod(p, 0600);
	free(p);
	/* the operational and root keys too: a server given either as timestamp_key refuses */
	p = path2(dir, "operational", ".key");
	ota_fx_key_write_pem(p, op, true);
	chmod(p, 0600);
	free(p);
	p = path2(dir, "root", ".key");
	ota_fx_key_write_pem(p, root, true);
	chmod(p, 0600);
	free(p);
	ota_fx_key_id(op, op_id);
	p = path2(dir, "trust", ".sql");
	f = fopen(p, "w");
	free(p);
	if (f == NULL)
		abort();
	ota_sha256(rl_bytes.data, rl_bytes.len, digest);
	fprintf(f, "INSERT INTO rootlists (version, bytes, sha256) VALUES (1, '\\x");
	hex(f, rl_bytes.data, rl_bytes.len);
	fprintf(f, "', '\\x");
	hex(f, digest, 32);
	fprintf(f, "') ON CONFLICT DO NOTHING;\n");
	ota_sha256(kl_bytes.data, kl_bytes.len, digest);
	fprintf(f, "INSERT INTO keylists (version, rootlist_version, bytes, sha256, key_ids)"
		   " VALUES (1, 1, '\\x");
	hex(f, kl_bytes.data, kl_bytes.len);
	fprintf(f, "', '\\x");
	hex(f, digest, 32);
	fprintf(f, "', ARRAY['\\x");
	hex(f, op_id, 32);
	fprintf(f, "'::bytea]) ON CONFLICT DO NOTHING;\n");
	fclose(f);

	for (int i = 1; i < argc; i++) {
		char spec[256], *id, *version, *code, *size_s, store_name[65];
		struct ota_fx_manifest m;
		struct ota_fx_bundle b = {0};
		Fleetota__V1__Signed *menv;
		struct ota_fx_buf mbytes, bundle;
		uint8_t *image;
		size_t size;

		snprintf(spec, sizeof(spec), "%s", argv[i]);
		id = strtok(spec, ":");
		version = strtok(NULL, ":");
		code = strtok(NULL, ":");
		size_s = strtok(NULL, ":");
		if (id == NULL || version == NULL || code == NULL || size_s == NULL) {
			fprintf(stderr, "bad artifact spec %s\n", argv[i]);
			return 2;
		}
		size = strtoul(size_s, NULL, 10);
		image = malloc(size + 1);
		if (image == NULL)
			abort();
		for (size_t j = 0; j < size; j++)
			image[j] = (uint8_t)((j * 131u + (size_t)i * 7u) ^ (j >> 9));
		ota_fx_manifest_init(&m, image, size);
		m.product = "fx-model";
		m.version = version;
		m.version_code = strtoull(code, NULL, 10);
		m.security_counter = m.version_code;
		m.sequence = m.version_code;
		m.image_name = id;
		m.signers = &op;
		m.n_signers = 1;
		menv = ota_fx_manifest(&m);
		mbytes = ota_fx_env_bytes(menv);
		b.manifest = menv;
		b.keylist = kl_env;
		b.rootlist = root_env;
		b.image = image;
		b.image_len = size;
		bundle = ota_fx_bundle_bytes(&b);
		p = path2(dir, id, ".manifest");
		ota_fx_write_file(p, mbytes.data, mbytes.len);
		free(p);
		p = path2(dir, id, ".image");
		ota_fx_write_file(p, image, size);
		free(p);
		p = path2(dir, id, ".otab");
		ota_fx_write_file(p, bundle.data, bundle.len);
		free(p);
		ota_hex_encode(m.image_sha256, 32, store_name);
		p = path2(store, store_name, "");
		ota_fx_write_file(p, image, size);
		free(p);
		p = path2(dir, id, ".sql");
		f = fopen(p, "w");
		free(p);
		if (f == NULL)
			abort();
		ota_sha256(mbytes.data, mbytes.len, digest);
		fprintf(f,
			"INSERT INTO artifacts (artifact_id, digest, manifest, product, version,"
			" version_code, security_counter, issued_at, image_sha256, image_size,"
			" image_name, signing_key_id, store_path) VALUES ('%s', '\\x",
			id);
		hex(f, digest, 32);
		fprintf(f, "', '\\x");
		hex(f, mbytes.data, mbytes.len);
		fprintf(f, "', 'fx-model', '%s', %s, %s, 1700000000, '\\x", version, code, code);
		hex(f, m.image_sha256, 32);
		fprintf(f, "', %zu, '%s', '\\x", size, id);
		hex(f, op_id, 32);
		fprintf(f, "', '%s');\n", store_name);
		fclose(f);
		ota_fx_buf_free(&mbytes);
		ota_fx_buf_free(&bundle);
		ota_fx_env_free(menv);
		free(image);
	}
	ota_fx_buf_free(&rl_bytes);
	ota_fx_buf_free(&kl_bytes);
	ota_fx_env_free(root_env);
	ota_fx_env_free(kl_env);
	EVP_PKEY_free(root);
	EVP_PKEY_free(op);
	EVP_PKEY_free(ts);
	free(store);
	return 0;
}

static int state_from_name(const char *name)
{
	static const char *const names[] = {"unknown",	"idle",	 "downloading", "verifying",
					    "pending",	"trial", "confirmed",	"reverted",
					    "rejected", "failed"};

	for (int i = 0; i < 10; i++) {
		if (strcmp(names[i], name) == 0)
			return i;
	}
	return atoi(name);
}

static int cmd_report(int argc, char **argv)
{
	Fleetota__V1__StatusReport r = FLEETOTA__V1__STATUS_REPORT__INIT;
	Fleetota__V1__Event events[OTA_MAX_REPORT_EVENTS * 2];
	Fleetota__V1__Event *event_ptrs[OTA_MAX_REPORT_EVENTS * 2];
	char specs[OTA_MAX_REPORT_EVENTS * 2][128];
	size_t n_events = 0, len;
	uint8_t *buf;
	int first_event = 8;

	if (argc < 7)
		return 2;
	r.device_id = argv[1];
	r.seq = strtoull(argv[2], NULL, 10);
	r.state = (Fleetota__V1__DeviceState)state_from_name(argv[3]);
	r.version = argv[4];
	r.version_code = strtoull(argv[5], NULL, 10);
	r.security_counter = strtoull(argv[6], NULL, 10);
	r.model = "fx-model";
	r.hw_revision = "rev-a";
	r.keylist_version = 1;
	r.rootlist_version = 1;
	if (argc > 7 && strchr(argv[7], ':') == NULL)
		r.artifact = argv[7];
	else
		first_event = 7;
	for (int i = first_event; i < argc && n_events < OTA_MAX_REPORT_EVENTS * 2; i++) {
		Fleetota__V1__Event *e = &events[n_events];
		char *seq, *kind, *error, *end;

		if (strncmp(argv[i], "health:", 7) == 0) {
			r.health_known = true;
			r.unexpected_reboots = (uint32_t)strtoul(argv[i] + 7, &end, 10);
			r.health_permille =
				*end == ':' ? (uint32_t)strtoul(end + 1, NULL, 10) : 1000;
			continue;
		}
		fleetota__v1__event__init(e);
		snprintf(specs[n_events], sizeof(specs[0]), "%s", argv[i]);
		seq = strtok(specs[n_events], ":");
		kind = strtok(NULL, ":");
		error = strtok(NULL, ":");
		e->seq = strtoull(seq, NULL, 10);
		e->kind = (Fleetota__V1__EventKind)(kind != NULL ? atoi(kind) : 0);
		if (error != NULL) {
			e->error = error;
			r.error = error; /* the report carries the last failure too */
		}
		e->version = r.version;
		e->version_code = r.version_code;
		e->security_counter = r.security_counter;
		event_ptrs[n_events] = e;
		n_events++;
	}
	r.n_events = n_events;
	r.events = event_ptrs;
	len = fleetota__v1__status_report__get_packed_size(&r);
	buf = malloc(len + 1);
	if (buf == NULL)
		abort();
	fleetota__v1__status_report__pack(&r, buf);
	ota_fx_write_file(argv[0], buf, len);
	free(buf);
	return 0;
}

static int cmd_notify(const char *path)
{
	struct ota_fx_buf buf = ota_fx_read_file(path);
	Fleetota__V1__Notify *n = fleetota__v1__notify__unpack(NULL, buf.len, buf.data);

	ota_fx_buf_free(&buf);
	if (n == NULL) {
		fprintf(stderr, "not a Notify\n");
		return 1;
	}
	printf("%d %s %s %llu", (int)n->kind, n->artifact, n->version,
	       (unsigned long long)n->version_code);
	if (n->health_window_seconds != 0)
		printf(" %u", (unsigned)n->health_window_seconds);
	printf("\n");
	fleetota__v1__notify__free_unpacked(n, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "fixtures") == 0)
		return cmd_fixtures(argc - 2, argv + 2);
	if (argc >= 3 && strcmp(argv[1], "report") == 0)
		return cmd_report(argc - 2, argv + 2);
	if (argc == 3 && strcmp(argv[1], "notify") == 0)
		return cmd_notify(argv[2]);
	fprintf(stderr, "usage: see the comment on top of srv_testtool.c\n");
	return 2;
}
