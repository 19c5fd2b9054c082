/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ota-keys: the signing side of the fleetota trust chain (docs/keys.md).
 * Every command prints "OTA_ERR_NAME: detail" on stderr and exits 1 when it
 * refuses or rejects, 2 on a usage error, 0 on success. Each command is its
 * own file (cmd_NAME.c); what they share is in cli.c.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fleetota-version.h"

static const char help_main[] =
	"Usage: ota-keys COMMAND [options]   (ota-keys COMMAND --help; ota-keys --version)\n"
	"Keys and signing for fleetota (docs/keys.md).\n"
	"  root-init     generate root keys and the first RootList (k of n)\n"
	"  root-new      generate a root key for a rotation\n"
	"  op-new        generate an operational key with a validity window\n"
	"  timestamp-new generate the timestamp role's key (signs timestamps only)\n"
	"  keylist       new | sign | merge: the next KeyList, signed by k roots\n"
	"  rootlist      new | sign | merge: the next RootList (rotate roots)\n"
	"  sign          firmware image -> signed manifest and .otab bundle\n"
	"  timestamp     sign a short-lived Timestamp: the current release of a product\n"
	"  verify        verify any signed object or bundle against a RootList\n"
	"  inspect       show an object (--json)\n"
	"  audit-verify  check the signing audit log's hash chain\n"
	"  enc-key-new   generate an X25519 recipient key for encrypted images\n"
	"  rewrap        add (or drop) recipients of an encrypted bundle\n"
	"  decrypt       decrypt an encrypted bundle's image with a recipient key\n";

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{"root-init", cli_cmd_root_init},
	{"op-new", cli_cmd_op_new},
	{"root-new", cli_cmd_root_new},
	{"timestamp-new", cli_cmd_timestamp_new},
	{"keylist", cli_cmd_keylist},
	{"rootlist", cli_cmd_rootlist},
	{"sign", cli_cmd_sign},
	{"timestamp", cli_cmd_timestamp},
	{"verify", cli_cmd_verify},
	{"inspect", cli_cmd_inspect},
	{"audit-verify", cli_cmd_audit_verify},
	{"enc-key-new", cli_cmd_enc_key_new},
	{"rewrap", cli_cmd_rewrap},
	{"decrypt", cli_cmd_decrypt},
};

int main(int argc, char **argv)
{
	int rc = -1;
	if (argc < 2) {
		fputs(help_main, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	argc--;
	argv++;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd, commands[i].name) == 0)
			rc = commands[i].run(argc, argv);
	}
	if (rc >= 0) {
		/* a command ran */
	} else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
		   strcmp(cmd, "help") == 0) {
		fputs(help_main, stdout);
		rc = 0;
	} else if (strcmp(cmd, "--version") == 0) {
		/* only here: after a command, --version is an option (keylist, sign) */
		printf("ota-keys %s\n", fleetota_version());
		rc = 0;
	} else {
		fprintf(stderr, "OTA_ERR_INVALID_ARG: unknown command %s\n", cmd);
		fputs(help_main, stderr);
		rc = EXIT_USAGE;
	}
	kr_pkcs11_shutdown();
	return rc;
}
