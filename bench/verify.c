/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manifest verifications per second through libotaproto, the way a device
 * or the server checks one: decode the Signed envelope from its bytes, then
 * ota_manifest_verify() against a KeyList (find the signer, check the
 * signature, parse the body, check the key's window). The KeyList itself is
 * verified once against the RootList, as a device does when it stores it.
 *
 *   ota-bench-verify ROOTLIST KEYLIST MANIFEST SECONDS
 *
 * Prints one line: alg=ed25519|p256 verifies=N seconds=S cpu_seconds=C
 * rate=R (per wall-clock second) cpu_rate=R (per CPU second of this process,
 * what `openssl speed` reports without -elapsed: steadier on a loaded
 * machine). Exit 1 when any check fails: a
 * benchmark of a refusal would measure the wrong thing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleetota/arena.h"
#include "fleetota/envelope.h"
#include "fleetota/err.h"
#include "fleetota/limits.h"
#include "fleetota/trust.h"

/* A decoded envelope and its body side by side. */
#define BENCH_ARENA_BYTES (2u * OTA_DECODE_ARENA_BYTES)

static _Alignas(16) uint8_t root_mem[BENCH_ARENA_BYTES];
static _Alignas(16) uint8_t keylist_mem[BENCH_ARENA_BYTES];
static _Alignas(16) uint8_t loop_mem[BENCH_ARENA_BYTES];

/* Reads a whole envelope file of at most OTA_MAX_ENVELOPE_BYTES. */
static int read_envelope_file(const char *path, uint8_t *buf, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		return -1;
	}
	size_t len = fread(buf, 1, OTA_MAX_ENVELOPE_BYTES + 1, f);
	int failed = ferror(f);
	fclose(f);
	if (failed || len == 0 || len > OTA_MAX_ENVELOPE_BYTES) {
		fprintf(stderr, "%s: unreadable, empty or larger than %u bytes\n", path,
			OTA_MAX_ENVELOPE_BYTES);
		return -1;
	}
	*ret_len = len;
	return 0;
}

static double clock_seconds(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, enum ota_err err)
{
	fprintf(stderr, "ota-bench-verify: %s: %s\n", what, ota_err_name(err));
	return 1;
}

int main(int argc, char **argv)
{
	static uint8_t root_buf[OTA_MAX_ENVELOPE_BYTES + 1];
	static uint8_t keylist_buf[OTA_MAX_ENVELOPE_BYTES + 1];
	static uint8_t manifest_buf[OTA_MAX_ENVELOPE_BYTES + 1];
	size_t root_len = 0, keylist_len = 0, manifest_len = 0;

	if (argc != 5) {
		fprintf(stderr, "usage: ota-bench-verify ROOTLIST KEYLIST MANIFEST SECONDS\n");
		return 2;
	}
	char *end = NULL;
	double seconds = strtod(argv[4], &end);
	if (end == argv[4] || *end != '\0' || !(seconds > 0.0 && seconds <= 600.0)) {
		fprintf(stderr, "ota-bench-verify: SECONDS must be in (0, 600]\n");
		return 2;
	}
	if (read_envelope_file(argv[1], root_buf, &root_len) != 0 ||
	    read_envelope_file(argv[2], keylist_buf, &keylist_len) != 0 ||
	    read_envelope_file(argv[3], manifest_buf, &manifest_len) != 0)
		return 1;

	struct ota_arena root_arena, keylist_arena, loop_arena;
	ota_arena_init(&root_arena, root_mem, sizeof(root_mem));
	ota_arena_init(&keylist_arena, keylist_mem, sizeof(keylist_mem));
	ota_arena_init(&loop_arena, loop_mem, sizeof(loop_mem));

	Fleetota__V1__Signed *env = NULL;
	Fleetota__V1__RootList *root = NULL;
	Fleetota__V1__KeyList *keylist = NULL;
	enum ota_err err = ota_envelope_decode(root_buf, root_len, &root_arena, &env);
	if (err == OTA_OK)
		err = ota_rootlist_verify_initial(env, &root_arena, &root);
	if (err != OTA_OK)
		return fail("RootList", err);
	err = ota_envelope_decode(keylist_buf, keylist_len, &keylist_arena, &env);
	if (err == OTA_OK)
		err = ota_keylist_verify(root, env, 0, 0, &keylist_arena, &keylist);
	if (err != OTA_OK)
		return fail("KeyList", err);

	const Fleetota__V1__PublicKey *signer = NULL;
	unsigned long verifies = 0;
	double start = clock_seconds(CLOCK_MONOTONIC), elapsed = 0.0;
	double cpu_start = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
	do {
		/* a batch between clock reads keeps the clock out of the measurement */
		for (int i = 0; i < 64; i++) {
			Fleetota__V1__Manifest *manifest = NULL;
			ota_arena_reset(&loop_arena);
			err = ota_envelope_decode(manifest_buf, manifest_len, &loop_arena, &env);
			if (err == OTA_OK)
				err = ota_manifest_verify(keylist, env, &loop_arena, &manifest,
							  &signer);
			if (err != OTA_OK)
				return fail("manifest", err);
			verifies++;
		}
		elapsed = clock_seconds(CLOCK_MONOTONIC) - start;
	} while (elapsed < seconds);

	const char *alg = "other";
	if (signer->alg == FLEETOTA__V1__ALGORITHM__ALGORITHM_ED25519)
		alg = "ed25519";
	else if (signer->alg == FLEETOTA__V1__ALGORITHM__ALGORITHM_ECDSA_P256_SHA256)
		alg = "p256";
	double cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
	printf("alg=%s verifies=%lu seconds=%.3f cpu_seconds=%.3f rate=%.1f cpu_rate=%.1f\n", alg,
	       verifies, elapsed, cpu, (double)verifies / elapsed,
	       cpu > 0.0 ? (double)verifies / cpu : 0.0);
	return 0;
}
