/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ota-ctl: the operator CLI of fleetota, a client of the REST API only.
 *   ota-ctl [--profile P] [--server URL] [--token T] [--json] COMMAND ...
 * The server and token come from the options, else OTA_CTL_SERVER /
 * OTA_CTL_TOKEN, else the profile (ota-ctl login writes it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ctl.h"

struct command {
	const char *name;
	int (*fn)(struct ctl *ctl, int argc, char **argv);
	const char *help;
	const char *subcommands; /* for shell completion */
};

static int cmd_completion(struct ctl *ctl, int argc, char **argv);

static const struct command commands[] = {
	{"login", ctl_cmd_login,
	 "login --server URL (--token T | --token-file F): check and save a profile", ""},
	{"artifacts", ctl_cmd_artifacts,
	 "artifacts list | show ID | upload FILE --id ID [--chunk BYTES]", "list show upload"},
	{"campaign", ctl_cmd_campaign,
	 "campaign list | show ID | create FILE.json|FILE.yaml | watch ID | "
	 "start|approve|pause|resume|cancel ID",
	 "list show create watch start approve pause resume cancel"},
	{"devices", ctl_cmd_devices,
	 "devices list [--model M] [--version V] [--state S] [--tag T] [--filter JSON] [--limit N] "
	 "| show ID",
	 "list show"},
	{"tokens", ctl_cmd_tokens, "tokens list | create --role ROLE --name NAME | revoke ID",
	 "list create revoke"},
	{"audit", ctl_cmd_audit, "audit [--actor A] [--action A] [--object O] [--limit N]", ""},
	{"completion", cmd_completion, "completion bash: a bash completion script", "bash"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ota-ctl [--profile NAME] [--server URL] [--token TOKEN] [--cacert FILE]\n"
		"               [--config FILE] [--timeout S] [--json] COMMAND ...\n\ncommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %s\n", commands[i].help);
	fprintf(f,
		"\nexit codes: 0 ok, 1 refused or failed, 2 usage; campaign watch: 0 completed,\n"
		"3 paused, 4 cancelled, 5 failed\n");
}

static int cmd_completion(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	if (argc != 2 || strcmp(argv[1], "bash") != 0) {
		fprintf(stderr, "usage: ota-ctl completion bash\n");
		return CTL_EXIT_USAGE;
	}
	printf("# bash completion for ota-ctl: source <(ota-ctl completion bash)\n"
	       "_ota_ctl() {\n"
	       "\tlocal cur=${COMP_WORDS[COMP_CWORD]} i cmd=\n"
	       "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	       "\t\tcase ${COMP_WORDS[i]} in "
	       "--profile|--server|--token|--cacert|--config|--timeout) ((i++));;\n"
	       "\t\t-*) ;; *) cmd=${COMP_WORDS[i]}; break;; esac\n"
	       "\tdone\n"
	       "\tcase $cmd in\n"
	       "\t'') COMPREPLY=($(compgen -W '--profile --server --token --cacert --config "
	       "--timeout --json");
	for (size_t i = 0; i < N_COMMANDS; i++)
		printf(" %s", commands[i].name);
	printf("' -- \"$cur\"));;\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		printf("\t%s) COMPREPLY=($(compgen -W '%s --json' -- \"$cur\"));;\n",
		       commands[i].name, commands[i].subcommands);
	printf("\tesac\n}\ncomplete -o default -F _ota_ctl ota-ctl\n");
	return CTL_EXIT_OK;
}

static bool copy_opt(char *dst, size_t cap, const char *v)
{
	if (v == NULL || strlen(v) >= cap) {
		fprintf(stderr, "ota-ctl: option value missing or too long\n");
		return false;
	}
	memcpy(dst, v, strlen(v) + 1);
	return true;
}

int main(int argc, char **argv)
{
	struct ctl ctl = {.timeout_s = 60.0};
	const char *env;
	const char *home = getenv("HOME");
	int i = 1, rc;

	snprintf(ctl.profile, sizeof(ctl.profile), "%s",
		 getenv("OTA_CTL_PROFILE") != NULL ? getenv("OTA_CTL_PROFILE") : "default");
	if ((env = getenv("OTA_CTL_CONFIG")) != NULL)
		snprintf(ctl.config_path, sizeof(ctl.config_path), "%s", env);
	else
		snprintf(ctl.config_path, sizeof(ctl.config_path), "%s/.config/fleetota/ctl.conf",
			 home != NULL ? home : ".");
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool ok = true;

		if (strcmp(o, "--json") == 0) {
			ctl.json = true;
			continue;
		}
		if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
			usage(stdout);
			return CTL_EXIT_OK;
		}
		if (strcmp(o, "--version") == 0) {
			printf("ota-ctl %s\n", FLEETOTA_VERSION);
			return CTL_EXIT_OK;
		}
		if (strcmp(o, "--profile") == 0)
			ok = copy_opt(ctl.profile, sizeof(ctl.profile), v);
		else if (strcmp(o, "--server") == 0)
			ok = copy_opt(ctl.server, sizeof(ctl.server), v);
		else if (strcmp(o, "--token") == 0)
			ok = copy_opt(ctl.token, sizeof(ctl.token), v);
		else if (strcmp(o, "--cacert") == 0)
			ok = copy_opt(ctl.cacert, sizeof(ctl.cacert), v);
		else if (strcmp(o, "--config") == 0)
			ok = copy_opt(ctl.config_path, sizeof(ctl.config_path), v);
		else if (strcmp(o, "--timeout") == 0 && v != NULL && atof(v) > 0)
			ctl.timeout_s = atof(v);
		else {
			fprintf(stderr, "ota-ctl: unknown option %s\n", o);
			usage(stderr);
			return CTL_EXIT_USAGE;
		}
		if (!ok)
			return CTL_EXIT_USAGE;
		i++;
	}
	if (i >= argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	for (int k = i + 1; k < argc; k++) {
		if (strcmp(argv[k], "--help") != 0)
			continue;
		for (size_t c = 0; c < N_COMMANDS; c++) {
			if (strcmp(argv[i], commands[c].name) == 0) {
				printf("usage: ota-ctl [global options] %s\n", commands[c].help);
				return CTL_EXIT_OK;
			}
		}
	}
	if (ctl.server[0] == '\0' && (env = getenv("OTA_CTL_SERVER")) != NULL)
		snprintf(ctl.server, sizeof(ctl.server), "%s", env);
	if (ctl.token[0] == '\0' && (env = getenv("OTA_CTL_TOKEN")) != NULL)
		snprintf(ctl.token, sizeof(ctl.token), "%s", env);
	if (strcmp(argv[i], "login") != 0 && strcmp(argv[i], "completion") != 0) {
		ctl_profile_load(&ctl);
		if (ctl.server[0] == '\0') {
			fprintf(stderr,
				"ota-ctl: no server: ota-ctl login, --server or OTA_CTL_SERVER\n");
			return CTL_EXIT_USAGE;
		}
	}
	{
		size_t n = strlen(ctl.server);

		while (n > 0 && ctl.server[n - 1] == '/')
			ctl.server[--n] = '\0';
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = -1;
	for (size_t k = 0; k < N_COMMANDS; k++) {
		if (strcmp(argv[i], commands[k].name) == 0) {
			rc = commands[k].fn(&ctl, argc - i, argv + i);
			break;
		}
	}
	if (rc < 0) {
		fprintf(stderr, "ota-ctl: unknown command %s\n", argv[i]);
		usage(stderr);
		rc = CTL_EXIT_USAGE;
	}
	curl_global_cleanup();
	return rc;
}
