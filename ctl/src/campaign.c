/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ota-ctl campaign: list, show, create from a JSON file (the body of POST
 * /api/v1/campaigns), the actions, and watch: per-stage progress bars,
 * polled with If-None-Match (an unchanged campaign costs a 304), and an
 * exit code that says how it ended (0 completed, 3 paused, 4 cancelled,
 * 5 failed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

static void campaign_row(const json_t *c)
{
	printf("%-20s %-9s %-20s %-18s %s\n", ctl_str(c, "id"), ctl_str(c, "kind"),
	       ctl_str(c, "artifact"), ctl_str(c, "state"), ctl_str(c, "reason"));
}

static long long dev(const json_t *stage, const char *key)
{
	return ctl_num(json_object_get(stage, "devices"), key);
}

static void print_status(const json_t *c, FILE *f)
{
	size_t i;
	const json_t *s;

	fprintf(f, "%s  %s  target %lld%s%s\n", ctl_str(c, "id"), ctl_str(c, "state"),
		ctl_num(c, "target_size"),
		json_string_length(json_object_get(c, "reason")) ? "  " : "",
		json_string_length(json_object_get(c, "reason")) ? ctl_str(c, "reason") : "");
	json_array_foreach(json_object_get(c, "stages"), i, s)
	{
		char bar[CTL_PROGRESS_BAR_BYTES];
		long long admitted = dev(s, "admitted");

		ctl_bar(bar, sizeof(bar), 30, (uint64_t)admitted, (uint64_t)dev(s, "confirmed"),
			(uint64_t)(dev(s, "failed") + dev(s, "timed_out")),
			(uint64_t)dev(s, "in_flight"));
		/* stages counted from 1, as people count (the API counts from 0) */
		fprintf(f,
			"  stage %zu [%s] %lld/%lld confirmed, %lld failed, %lld timed out, %lld "
			"in flight\n",
			i + 1, bar, dev(s, "confirmed"), admitted, dev(s, "failed"),
			dev(s, "timed_out"), dev(s, "in_flight"));
	}
}

static void status_row(const json_t *c)
{
	print_status(c, stdout);
}

static int exit_for(const char *state)
{
	if (strcmp(state, "completed") == 0)
		return CTL_EXIT_OK;
	if (strcmp(state, "paused") == 0)
		return CTL_EXIT_PAUSED;
	if (strcmp(state, "cancelled") == 0)
		return CTL_EXIT_CANCELLED;
	if (strcmp(state, "failed") == 0)
		return CTL_EXIT_FAILED;
	return -1; /* still going */
}

static int watch(struct ctl *ctl, const char *id, double interval, double max_s)
{
	char path[CTL_URL_PATH], inm[CTL_IF_NONE_MATCH_BYTES] = "";
	json_t *last = NULL;
	double deadline = max_s > 0 ? (double)time(NULL) + max_s : 0;
	bool tty = isatty(STDOUT_FILENO) == 1 && !ctl->json;
	unsigned polls = 0, not_modified = 0;
	int rc;

	snprintf(path, sizeof(path), "/api/v1/campaigns/%s", id);
	for (;;) {
		const char *headers[] = {inm[0] != '\0' ? inm : NULL, NULL};
		struct ctl_request req = {.method = "GET", .path = path, .headers = headers};
		struct ctl_response r;

		if (!ctl_http(ctl, &req, &r) || (r.status != 200 && r.status != 304)) {
			ctl_report_error(&r);
			ctl_response_clear(&r);
			json_decref(last);
			return CTL_EXIT_FAIL;
		}
		polls++;
		if (r.status == 304) {
			not_modified++;
		} else {
			json_decref(last);
			last = json_incref(r.body);
			if (r.etag[0] != '\0')
				snprintf(inm, sizeof(inm), "If-None-Match: %s", r.etag);
			if (ctl->json) {
				char *line = json_dumps(last, JSON_COMPACT);

				if (line != NULL)
					puts(line);
				free(line);
			} else {
				if (tty)
					fputs("\033[H\033[2J", stdout);
				print_status(last, stdout);
			}
			fflush(stdout);
		}
		ctl_response_clear(&r);
		rc = exit_for(ctl_str(last, "state"));
		if (rc >= 0)
			break;
		if (deadline > 0 && (double)time(NULL) >= deadline) {
			fprintf(stderr, "ota-ctl: %s still %s after %.0f s\n", id,
				ctl_str(last, "state"), max_s);
			rc = CTL_EXIT_FAIL;
			break;
		}
		usleep((useconds_t)(interval * 1e6));
	}
	fprintf(stderr, "ota-ctl: %s %s (%u polls, %u unchanged: 304)\n", id,
		ctl_str(last, "state"), polls, not_modified);
	json_decref(last);
	return rc;
}

int ctl_cmd_campaign(struct ctl *ctl, int argc, char **argv)
{
	static const char *const actions[] = {"start",	"approve", "pause",
					      "resume", "cancel",  NULL};
	char path[CTL_URL_PATH];
	struct ctl_response r;

	if (argc >= 2 && strcmp(argv[1], "list") == 0) {
		static const char *const allowed[] = {"--state", NULL};
		const char *pairs[] = {"state", ctl_opt(argc, argv, 2, "--state"), "limit", "500",
				       NULL};

		if (!ctl_opts_known(argc, argv, 2, allowed))
			return CTL_EXIT_USAGE;
		ctl_query(path, sizeof(path), "/api/v1/campaigns", pairs);
		return ctl_list(ctl, path, campaign_row);
	}
	if (argc == 3 && strcmp(argv[1], "create") == 0) {
		json_error_t jerr;
		const char *ext = strrchr(argv[2], '.');
		bool yaml = ext != NULL && (strcmp(ext, ".yaml") == 0 || strcmp(ext, ".yml") == 0);
		char yerr[CTL_YAML_ERR_BYTES] = "";
		json_t *body = yaml ? ctl_yaml_load(argv[2], yerr, sizeof(yerr))
				    : json_load_file(argv[2], JSON_REJECT_DUPLICATES, &jerr);
		bool ok;

		if (body == NULL) {
			if (yaml)
				fprintf(stderr, "ota-ctl: %s: %s\n", argv[2], yerr);
			else
				fprintf(stderr, "ota-ctl: %s:%d: %s\n", argv[2], jerr.line,
					jerr.text);
			return CTL_EXIT_USAGE;
		}
		ok = ctl_post(ctl, "/api/v1/campaigns", body, &r);
		json_decref(body);
		return ctl_shown(ctl, ok, &r, status_row);
	}
	if (argc >= 3 && strcmp(argv[1], "watch") == 0) {
		static const char *const allowed[] = {"--interval", "--timeout", NULL};
		const char *iv = ctl_opt(argc, argv, 3, "--interval");
		const char *to = ctl_opt(argc, argv, 3, "--timeout");
		double interval = iv != NULL ? atof(iv) : 2.0;

		if (!ctl_opts_known(argc, argv, 3, allowed) || interval < 0.1 || interval > 3600) {
			fprintf(stderr,
				"usage: ota-ctl campaign watch ID [--interval S] [--timeout S]\n");
			return CTL_EXIT_USAGE;
		}
		return watch(ctl, argv[2], interval, to != NULL ? atof(to) : 0);
	}
	if (argc == 3 && strcmp(argv[1], "show") == 0) {
		snprintf(path, sizeof(path), "/api/v1/campaigns/%s", argv[2]);
		return ctl_shown(ctl, ctl_get(ctl, path, &r), &r, status_row);
	}
	for (size_t i = 0; argc == 3 && actions[i] != NULL; i++) {
		if (strcmp(argv[1], actions[i]) != 0)
			continue;
		snprintf(path, sizeof(path), "/api/v1/campaigns/%s/%s", argv[2], actions[i]);
		return ctl_shown(ctl, ctl_post(ctl, path, NULL, &r), &r, status_row);
	}
	fprintf(stderr,
		"usage: ota-ctl campaign list [--state S] | show ID | create FILE.json|FILE.yaml | "
		"watch ID [--interval S] [--timeout S] | start|approve|pause|resume|cancel ID\n");
	return CTL_EXIT_USAGE;
}
