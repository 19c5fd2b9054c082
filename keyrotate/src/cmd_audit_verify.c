/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys audit-verify: the signing audit log's hash chain. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"

static const char help_audit_verify[] =
	"Usage: ota-keys audit-verify LOG [--expect-head HASH]\n"
	"Checks the hash chain of a signing audit log: every record's hash over its\n"
	"own text, seq counting from 1, every prev equal to the hash before. Names\n"
	"the first bad record (edited, removed, inserted or reordered) and exits 1\n"
	"(OTA_ERR_HASH, or OTA_ERR_FORMAT for a line that is not a record). Prints the\n"
	"head hash; keep it elsewhere and pass it as --expect-head to detect records\n"
	"cut off the end.\n";

int cli_cmd_audit_verify(int argc, char **argv)
{
	static const struct option options[] = {
		{"expect-head", required_argument, NULL, OPT_EXPECT_HEAD},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	const char *expect = NULL;
	struct kr_diag diag = {{0}};
	struct kr_audit_result result;
	int opt, rc;
	while ((opt = cli_next_option(argc, argv, "", options, NULL, help_audit_verify, &rc)) > 0) {
		switch (opt) {
		case OPT_EXPECT_HEAD:
			expect = optarg;
			break;
		}
	}
	if (opt < 0)
		return rc;
	if (optind + 1 != argc)
		return cli_usage_error("audit-verify takes one LOG%s", "");
	enum ota_err err = kr_audit_verify_file(argv[optind], &result, &diag);
	if (err != OTA_OK)
		return cli_fail(err, &diag);
	if (expect && strcmp(expect, result.head) != 0)
		return cli_fail(
			kr_fail(&diag, OTA_ERR_HASH,
				"head %s is not the expected head (records cut off the end?)",
				result.head[0] ? result.head : "(empty log)"),
			&diag);
	printf("OK: %llu records, head %s\n", (unsigned long long)result.records,
	       result.head[0] ? result.head : "(empty)");
	return 0;
}
