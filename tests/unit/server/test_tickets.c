/* SPDX-License-Identifier: Apache-2.0 */
/* The ticket key file (server/src/core/tickets.c): format, limits, permissions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tickets-internal.h"

#define KEY_HEX                                                                                  \
	"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aa" \
	"bbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

struct fixture {
	char dir[64];
	char path[128];
	SSL_CTX *ctx;
	char err[256];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/srv-tickets-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/keys", f->dir);
	f->ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(f->ctx);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	SSL_CTX_free(f->ctx);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Writes text to the fixture's file with mode. */
static void write_keys(struct fixture *f, const char *text, mode_t mode)
{
	FILE *out = fopen(f->path, "w");

	assert_non_null(out);
	assert_int_equal(fputs(text, out) >= 0, 1);
	assert_int_equal(fclose(out), 0);
	assert_int_equal(chmod(f->path, mode), 0);
}

static enum ota_err load(struct fixture *f)
{
	f->err[0] = '\0';
	return srv_tickets_load(f->ctx, f->path, f->err, sizeof(f->err));
}

static void test_valid(void **state)
{
	struct fixture *f = *state;

	write_keys(f, "# rotated daily\n\n" KEY_HEX "\n  " KEY_HEX "  \r\n" KEY_HEX, 0600);
	assert_int_equal(load(f), OTA_OK);
	write_keys(f, KEY_HEX "\n", 0400);
	assert_int_equal(load(f), OTA_OK);
	/* no file: random keys of this process */
	assert_int_equal(srv_tickets_load(f->ctx, NULL, f->err, sizeof(f->err)), OTA_OK);
	assert_int_equal(srv_tickets_load(f->ctx, "", f->err, sizeof(f->err)), OTA_OK);
}

static void test_permissions(void **state)
{
	struct fixture *f = *state;

	write_keys(f, KEY_HEX "\n", 0644);
	assert_int_equal(load(f), OTA_ERR_STORAGE);
	assert_non_null(strstr(f->err, "group or others"));
	write_keys(f, KEY_HEX "\n", 0640);
	assert_int_equal(load(f), OTA_ERR_STORAGE);
	unlink(f->path);
	assert_int_equal(load(f), OTA_ERR_STORAGE);
}

static void test_bad_lines(void **state)
{
	struct fixture *f = *state;
	char text[4096];

	/* one digit short, on line 2: named, and no key bytes in the message */
	snprintf(text, sizeof(text), "%s\n%.159s\n", KEY_HEX, KEY_HEX);
	write_keys(f, text, 0600);
	assert_int_equal(load(f), OTA_ERR_FORMAT);
	assert_non_null(strstr(f->err, ":2:"));
	assert_null(strstr(f->err, "00112233"));
	/* a non-hex digit */
	snprintf(text, sizeof(text), "%.100sg%s\n", KEY_HEX, KEY_HEX + 101);
	write_keys(f, text, 0600);
	assert_int_equal(load(f), OTA_ERR_FORMAT);
	/* one digit too many */
	write_keys(f, KEY_HEX "0\n", 0600);
	assert_int_equal(load(f), OTA_ERR_FORMAT);
	/* no key at all */
	write_keys(f, "# nothing yet\n\n", 0600);
	assert_int_equal(load(f), OTA_ERR_FORMAT);
	assert_non_null(strstr(f->err, "no key"));
}

static void test_limits(void **state)
{
	struct fixture *f = *state;
	char text[SRV_TICKETS_MAX_FILE_BYTES + 512];
	size_t len = 0;

	for (unsigned i = 0; i < SRV_TICKETS_MAX_KEYS; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s\n", KEY_HEX);
	write_keys(f, text, 0600);
	assert_int_equal(load(f), OTA_OK);
	/* one key more than allowed */
	snprintf(text + len, sizeof(text) - len, "%s\n", KEY_HEX);
	write_keys(f, text, 0600);
	assert_int_equal(load(f), OTA_ERR_FORMAT);
	/* a file larger than the limit, even of comments */
	memset(text, '#', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	write_keys(f, text, 0600);
	assert_int_equal(load(f), OTA_ERR_FORMAT);
	assert_non_null(strstr(f->err, "larger than"));
}

static void test_metrics(void **state)
{
	struct srv_tls_metrics m = {
		.full_handshakes = 3, .resumed = 7, .resume_refused = 1, .peer_reverified = 2};
	struct evbuffer *out = evbuffer_new();
	char *text;

	(void)state;
	assert_non_null(out);
	srv_tls_metrics_render(&m, out);
	assert_int_equal(evbuffer_add(out, "", 1), 0);
	text = (char *)evbuffer_pullup(out, -1);
	assert_non_null(strstr(text, "\nfleetota_tls_handshakes_total 3\n"));
	assert_non_null(strstr(text, "\nfleetota_tls_resumed_total 7\n"));
	assert_non_null(strstr(text, "\nfleetota_tls_resume_refused_total 1\n"));
	assert_non_null(strstr(text, "\nfleetota_tls_ticket_unknown_key_total 0\n"));
	assert_non_null(strstr(text, "\nfleetota_tls_peer_reverified_total 2\n"));
	evbuffer_free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test(test_metrics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
