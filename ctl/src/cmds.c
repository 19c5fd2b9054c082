/* SPDX-License-Identifier: Apache-2.0 */
/* login, devices, tokens, audit: thin commands over one API call each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* The value of "--name VALUE" among argv[from..], or NULL. */
const char *ctl_opt(int argc, char **argv, int from, const char *name)
{
	for (int i = from; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return NULL;
}

/* Every "--x" of argv[from..] is in allowed (each takes a value). */
bool ctl_opts_known(int argc, char **argv, int from, const char *const *allowed)
{
	for (int i = from; i < argc; i++) {
		bool ok = false;

		if (strncmp(argv[i], "--", 2) != 0) {
			fprintf(stderr, "ota-ctl: unexpected argument %s\n", argv[i]);
			return false;
		}
		for (size_t k = 0; allowed[k] != NULL && !ok; k++)
			ok = strcmp(argv[i], allowed[k]) == 0;
		if (!ok || i + 1 >= argc) {
			fprintf(stderr, "ota-ctl: %s %s\n", ok ? "no value for" : "unknown option",
				argv[i]);
			return false;
		}
		i++;
	}
	return true;
}

const char *ctl_str(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : "-";
}

long long ctl_num(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

int ctl_cmd_login(struct ctl *ctl, int argc, char **argv)
{
	static const char *const allowed[] = {"--server", "--token", "--token-file", "--cacert",
					      NULL};
	const char *file = ctl_opt(argc, argv, 1, "--token-file");
	const char *server = ctl_opt(argc, argv, 1, "--server");
	const char *token = ctl_opt(argc, argv, 1, "--token");
	const char *cacert = ctl_opt(argc, argv, 1, "--cacert");
	struct ctl_response r;

	if (!ctl_opts_known(argc, argv, 1, allowed))
		return CTL_EXIT_USAGE;
	if (server != NULL) {
		snprintf(ctl->server, sizeof(ctl->server), "%s", server);
		while (strlen(ctl->server) > 0 && ctl->server[strlen(ctl->server) - 1] == '/')
			ctl->server[strlen(ctl->server) - 1] = '\0';
	}
	if (token != NULL)
		snprintf(ctl->token, sizeof(ctl->token), "%s", token);
	if (cacert != NULL)
		snprintf(ctl->cacert, sizeof(ctl->cacert), "%s", cacert);
	if (file != NULL) {
		char *t = ctl_read_file(file, 200, NULL);

		if (t == NULL) {
			fprintf(stderr, "ota-ctl: cannot read %s\n", file);
			return CTL_EXIT_FAIL;
		}
		t[strcspn(t, "\r\n")] = '\0';
		snprintf(ctl->token, sizeof(ctl->token), "%s", t);
		free(t);
	}
	if (ctl->server[0] == '\0' || ctl->token[0] == '\0') {
		fprintf(stderr, "usage: ota-ctl [--profile P] login --server URL (--token T | "
				"--token-file F) [--cacert F]\n");
		return CTL_EXIT_USAGE;
	}
	if (!ctl_get(ctl, "/api/v1/me", &r))
		return CTL_EXIT_FAIL;
	if (!ctl_profile_save(ctl)) {
		fprintf(stderr, "ota-ctl: cannot write %s\n", ctl->config_path);
		ctl_response_clear(&r);
		return CTL_EXIT_FAIL;
	}
	if (ctl->json)
		ctl_print_json(r.body);
	else
		printf("profile %s: %s as %s (%s), saved in %s\n", ctl->profile, ctl->server,
		       ctl_str(r.body, "actor"), ctl_str(r.body, "role"), ctl->config_path);
	ctl_response_clear(&r);
	return CTL_EXIT_OK;
}

/* GET path and print it: JSON, or one line per item through row(). */
int ctl_shown(const struct ctl *ctl, bool ok, struct ctl_response *r,
	      void (*human)(const json_t *obj))
{
	if (!ok)
		return CTL_EXIT_FAIL;
	if (ctl->json)
		ctl_print_json(r->body);
	else
		human(r->body);
	ctl_response_clear(r);
	return CTL_EXIT_OK;
}

int ctl_list(const struct ctl *ctl, const char *path, void (*row)(const json_t *item))
{
	struct ctl_response r;
	size_t i;
	json_t *item;

	if (!ctl_get(ctl, path, &r))
		return CTL_EXIT_FAIL;
	if (ctl->json) {
		ctl_print_json(r.body);
	} else {
		json_array_foreach(json_object_get(r.body, "items"), i, item) row(item);
		if (json_is_string(json_object_get(r.body, "next_cursor")))
			printf("(more: --cursor %s)\n", ctl_str(r.body, "next_cursor"));
	}
	ctl_response_clear(&r);
	return CTL_EXIT_OK;
}

static void device_row(const json_t *d)
{
	printf("%-24s %-12s %-10s %-12s kl v%-3lld %-20.20s %s\n", ctl_str(d, "device_id"),
	       ctl_str(d, "model"), ctl_str(d, "version"), ctl_str(d, "state"),
	       ctl_num(d, "keylist_version"), ctl_str(d, "last_seen"), ctl_str(d, "last_error"));
}

int ctl_cmd_devices(struct ctl *ctl, int argc, char **argv)
{
	static const char *const allowed[] = {"--model",  "--version", "--state",
					      "--tag",	  "--filter",  "--limit",
					      "--cursor", "--q",       NULL};
	char path[CTL_URL_PATH_LONG];

	if (argc == 3 && strcmp(argv[1], "show") == 0) {
		snprintf(path, sizeof(path), "/api/v1/devices/%s", argv[2]);
		struct ctl_response r;

		return ctl_shown(ctl, ctl_get(ctl, path, &r), &r, device_row);
	}
	if (argc < 2 || strcmp(argv[1], "list") != 0 || !ctl_opts_known(argc, argv, 2, allowed)) {
		fprintf(stderr, "usage: ota-ctl devices list [--model M] [--version V] [--state S] "
				"[--tag T] [--filter JSON] [--q TEXT] [--limit N] [--cursor C] | "
				"show ID\n");
		return CTL_EXIT_USAGE;
	}
	if (ctl_opt(argc, argv, 2, "--filter") != NULL || ctl_opt(argc, argv, 2, "--q") != NULL) {
		/* the dynamic-group filter language (GET /api/v1/fleet/devices) */
		const char *pairs[] = {"filter", ctl_opt(argc, argv, 2, "--filter"),
				       "q",	 ctl_opt(argc, argv, 2, "--q"),
				       "limit",	 ctl_opt(argc, argv, 2, "--limit"),
				       "cursor", ctl_opt(argc, argv, 2, "--cursor"),
				       NULL};

		if (ctl_opt(argc, argv, 2, "--model") != NULL ||
		    ctl_opt(argc, argv, 2, "--version") != NULL ||
		    ctl_opt(argc, argv, 2, "--state") != NULL ||
		    ctl_opt(argc, argv, 2, "--tag") != NULL) {
			fprintf(stderr, "ota-ctl: --filter/--q do not combine with --model, "
					"--version, --state, --tag (put them in the filter)\n");
			return CTL_EXIT_USAGE;
		}
		ctl_query(path, sizeof(path), "/api/v1/fleet/devices", pairs);
	} else {
		const char *pairs[] = {"model",	  ctl_opt(argc, argv, 2, "--model"),
				       "version", ctl_opt(argc, argv, 2, "--version"),
				       "state",	  ctl_opt(argc, argv, 2, "--state"),
				       "tag",	  ctl_opt(argc, argv, 2, "--tag"),
				       "limit",	  ctl_opt(argc, argv, 2, "--limit"),
				       "cursor",  ctl_opt(argc, argv, 2, "--cursor"),
				       NULL};

		ctl_query(path, sizeof(path), "/api/v1/devices", pairs);
	}
	return ctl_list(ctl, path, device_row);
}

static void token_row(const json_t *t)
{
	printf("%-6lld %-24s %-9s %-26.26s %s\n", ctl_num(t, "id"), ctl_str(t, "name"),
	       ctl_str(t, "role"), ctl_str(t, "created_at"),
	       json_is_string(json_object_get(t, "revoked_at")) ? "revoked" : "active");
}

int ctl_cmd_tokens(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_response r;
	char path[CTL_URL_PATH];

	if (argc == 2 && strcmp(argv[1], "list") == 0)
		return ctl_list(ctl, "/api/v1/tokens?limit=500", token_row);
	if (argc >= 2 && strcmp(argv[1], "create") == 0) {
		static const char *const allowed[] = {"--role", "--name", NULL};
		const char *role = ctl_opt(argc, argv, 2, "--role"),
			   *name = ctl_opt(argc, argv, 2, "--name");
		json_t *body;
		bool ok;

		if (!ctl_opts_known(argc, argv, 2, allowed) || role == NULL || name == NULL) {
			fprintf(stderr, "usage: ota-ctl tokens create --role viewer|operator|admin "
					"--name NAME\n");
			return CTL_EXIT_USAGE;
		}
		body = json_pack("{s:s, s:s}", "role", role, "name", name);
		ok = body != NULL && ctl_post(ctl, "/api/v1/tokens", body, &r);
		json_decref(body);
		if (!ok)
			return CTL_EXIT_FAIL;
		if (ctl->json)
			ctl_print_json(r.body);
		else /* the token is shown once: the server keeps only its hash */
			printf("%s\n", ctl_str(r.body, "token"));
		ctl_response_clear(&r);
		return CTL_EXIT_OK;
	}
	if (argc == 3 && strcmp(argv[1], "revoke") == 0) {
		struct ctl_request req = {.method = "DELETE", .path = path};

		snprintf(path, sizeof(path), "/api/v1/tokens/%s", argv[2]);
		if (!ctl_http(ctl, &req, &r) || r.status != 200) {
			ctl_report_error(&r);
			ctl_response_clear(&r);
			return CTL_EXIT_FAIL;
		}
		if (ctl->json)
			ctl_print_json(r.body);
		else
			printf("token %s revoked\n", argv[2]);
		ctl_response_clear(&r);
		return CTL_EXIT_OK;
	}
	fprintf(stderr, "usage: ota-ctl tokens list | create --role R --name N | revoke ID\n");
	return CTL_EXIT_USAGE;
}

static void audit_row(const json_t *a)
{
	printf("%-6lld %-26.26s %-28s %-24s %s\n", ctl_num(a, "id"), ctl_str(a, "at"),
	       ctl_str(a, "actor"), ctl_str(a, "action"), ctl_str(a, "object"));
}

int ctl_cmd_audit(struct ctl *ctl, int argc, char **argv)
{
	static const char *const allowed[] = {"--actor", "--action", "--object",
					      "--limit", "--cursor", NULL};
	const char *pairs[] = {"actor",	 ctl_opt(argc, argv, 1, "--actor"),
			       "action", ctl_opt(argc, argv, 1, "--action"),
			       "object", ctl_opt(argc, argv, 1, "--object"),
			       "limit",	 ctl_opt(argc, argv, 1, "--limit"),
			       "cursor", ctl_opt(argc, argv, 1, "--cursor"),
			       NULL};
	char path[CTL_URL_PATH_QUERY];

	if (!ctl_opts_known(argc, argv, 1, allowed)) {
		fprintf(stderr,
			"usage: ota-ctl audit [--actor A] [--action A] [--object O] [--limit N]\n");
		return CTL_EXIT_USAGE;
	}
	ctl_query(path, sizeof(path), "/api/v1/audit", pairs);
	return ctl_list(ctl, path, audit_row);
}
