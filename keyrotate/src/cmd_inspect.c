/* SPDX-License-Identifier: Apache-2.0 */
/* ota-keys inspect: show an object. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"

static const char help_inspect[] =
	"Usage: ota-keys inspect FILE [--json] [--type rootlist|keylist|manifest|pubkey|bundle]\n"
	"Shows a RootList, KeyList, manifest, key descriptor or bundle (header only)\n"
	"for people, or as JSON. Shows; does not verify: use `ota-keys verify`.\n";

int cli_cmd_inspect(int argc, char **argv)
{
	static const struct option options[] = {
		{"json", no_argument, NULL, OPT_JSON},
		{"type", required_argument, NULL, OPT_TYPE},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	enum kr_obj_kind kind = KR_OBJ_UNKNOWN;
	struct kr_diag diag = {{0}};
	int as_json = 0, opt, rc = EXIT_REJECTED;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t image_bytes = 0;
	enum ota_err err;

	while ((opt = cli_next_option(argc, argv, "", options, NULL, help_inspect, &rc)) > 0) {
		switch (opt) {
		case OPT_JSON:
			as_json = 1;
			break;
		case OPT_TYPE:
			if (kr_obj_kind_parse(optarg, &kind) != OTA_OK)
				return cli_usage_error("unknown --type %s", optarg);
			break;
		}
	}
	if (opt < 0)
		return rc;
	if (optind + 1 != argc)
		return cli_usage_error("inspect takes one FILE%s", "");
	const char *path = argv[optind];
	FILE *f = fopen(path, "rb");
	if (!f)
		return cli_fail(kr_fail(&diag, OTA_ERR_STORAGE, "cannot open %s", path), &diag);
	uint8_t head[OTA_BUNDLE_PREFIX_BYTES];
	uint32_t header_len = 0;
	size_t got = fread(head, 1, sizeof(head), f);
	if (got == sizeof(head) && ota_bundle_prefix_parse(head, &header_len) == OTA_OK) {
		/* a bundle: the header only, never the image */
		buf = malloc(sizeof(head) + header_len);
		if (buf && fread(buf + sizeof(head), 1, header_len, f) == header_len) {
			memcpy(buf, head, sizeof(head));
			len = sizeof(head) + header_len;
			struct stat st;
			if (fstat(fileno(f), &st) == 0 && (uint64_t)st.st_size >= len)
				image_bytes = (uint64_t)st.st_size - len;
		}
		fclose(f);
		if (!len) {
			err = kr_fail(&diag, OTA_ERR_FORMAT, "%s: truncated bundle header", path);
			goto cli_fail;
		}
	} else {
		fclose(f);
		if ((err = kr_file_read(path, KR_MAX_OBJECT_FILE_BYTES, &buf, &len, &diag)) !=
		    OTA_OK)
			goto cli_fail;
	}
	json_t *tree = kr_inspect_json(buf, len, image_bytes, kind);
	if (!tree) {
		err = kr_fail(&diag, OTA_ERR_FORMAT, "%s: not a fleetota object%s", path,
			      kind != KR_OBJ_UNKNOWN ? " of that type" : "");
		goto cli_fail;
	}
	if (as_json) {
		json_dumpf(tree, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
	} else {
		kr_inspect_print(stdout, tree);
	}
	json_decref(tree);
	rc = 0;
	goto out;
cli_fail:
	rc = cli_fail(err, &diag);
out:
	free(buf);
	return rc;
}
