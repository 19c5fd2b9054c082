/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_CTL_H
#define OTA_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "fleetota/limits.h"

/*
 * ota-ctl: the operator CLI over the REST API (web-api/openapi.yaml). One
 * file per command group, a command table in main.c (wireguard-tools'
 * layout). Every command prints JSON with --json.
 */

/* Exit codes. campaign watch also ends with CTL_EXIT_PAUSED etc. */
#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1 /* the API refused, or the transport failed */
#define CTL_EXIT_USAGE 2
#define CTL_EXIT_PAUSED 3
#define CTL_EXIT_CANCELLED 4
#define CTL_EXIT_FAILED 5

/* Bounds of what the CLI reads from the server or from files. */
#define CTL_MAX_RESPONSE (16u * 1024u * 1024u)
#define CTL_MAX_JSON_FILE (1024u * 1024u)
#define CTL_DEFAULT_CHUNK (4u * 1024u * 1024u)
#define CTL_MAX_CHUNK (8u * 1024u * 1024u)
/* A local file or directory name (config, CA file, upload state). */
#define CTL_MAX_PATH 1024u
/* An artifact id as the upload state keeps it. */
#define CTL_MAX_ID 64u
/* An image's SHA-256 in hex with its NUL. */
#define CTL_SHA256_HEX (2u * OTA_SHA256_BYTES + 1u)
/* A profile name (a [section] of the config file). */
#define CTL_MAX_PROFILE 64u
/* API paths ctl builds: one resource, a resource with a sub-path, a query, a long query. */
#define CTL_URL_PATH_SHORT 128u
#define CTL_URL_PATH 256u
#define CTL_URL_PATH_QUERY 2048u
#define CTL_URL_PATH_LONG 4096u
/* The whole URL of a request, its Authorization header, a response line, its Content-Type. */
#define CTL_URL_BYTES 2048u
#define CTL_AUTH_HEADER_BYTES 200u
#define CTL_HTTP_LINE_BYTES 256u
#define CTL_CTYPE_BYTES 96u
/* Profile fields: server URL, token; a response's ETag and error text. */
#define CTL_SERVER_BYTES 512u
/* The server URL saved with an upload session (read back with %599s). */
#define CTL_SAVED_SERVER_BYTES 600u
/* Read chunk when hashing a bundle. */
#define CTL_HASH_CHUNK_BYTES (64u * 1024u)
#define CTL_TOKEN_BYTES 128u
#define CTL_ETAG_BYTES 80u
#define CTL_ERROR_BYTES 256u
/* If-None-Match header, Content-Range-style offset header, YAML error text. */
#define CTL_IF_NONE_MATCH_BYTES 120u
#define CTL_OFFSET_HEADER_BYTES 64u
#define CTL_YAML_ERR_BYTES 160u
/* A progress bar line; an upload's resume-state file path. */
#define CTL_PROGRESS_BAR_BYTES 64u
#define CTL_STATE_PATH_BYTES 1200u
/* A line of the profile file, and the path of its temporary copy. */
#define CTL_PROFILE_LINE_BYTES 1024u
#define CTL_PROFILE_TMP_BYTES 1100u
/* Upload attempts before giving up. */
#define CTL_UPLOAD_RETRIES 5
/* YAML nesting depth and values per document. */
#define CTL_YAML_MAX_DEPTH 32
#define CTL_YAML_MAX_VALUES 100000u

struct ctl {
	char server[CTL_SERVER_BYTES]; /* http(s)://host:port, no trailing slash */
	char token[CTL_TOKEN_BYTES];
	char profile[CTL_MAX_PROFILE];
	char config_path[CTL_MAX_PATH];
	char cacert[CTL_MAX_PATH]; /* optional CA file for https */
	bool json;
	double timeout_s; /* per request */
};

struct ctl_response {
	long status;
	json_t *body; /* parsed JSON or NULL */
	char etag[CTL_ETAG_BYTES];
	uint64_t upload_offset; /* Upload-Offset, when given */
	bool has_upload_offset;
	char error[CTL_ERROR_BYTES]; /* transport error, or the API's "code: message" */
};

void ctl_response_clear(struct ctl_response *r);

/*
 * One request: path starts with "/api/v1/...", body (borrowed JSON) or raw
 * bytes (raw, raw_len, raw_type), extra headers (NULL-terminated). Returns
 * false on a transport failure (r->error says why); HTTP statuses are in
 * r->status. max_send_bps > 0 caps the upload speed (tests, slow links).
 */
struct ctl_request {
	const char *method;
	const char *path;
	const json_t *json;
	const void *raw;
	size_t raw_len;
	const char *raw_type;
	const char *const *headers;
	long max_send_bps;
	void (*progress)(void *arg, uint64_t sent_now);
	void *progress_arg;
};
bool ctl_http(const struct ctl *ctl, const struct ctl_request *req, struct ctl_response *r);

/* GET/POST shortcuts: false and a message on stderr unless 2xx. */
bool ctl_get(const struct ctl *ctl, const char *path, struct ctl_response *r);
bool ctl_post(const struct ctl *ctl, const char *path, const json_t *body, struct ctl_response *r);
/* Prints "ota-ctl: CODE: message" for a non-2xx answer or a transport error. */
void ctl_report_error(const struct ctl_response *r);

/* Appends "?a=b&c=d" pairs (values URL-encoded, NULL values skipped). */
void ctl_query(char *out, size_t cap, const char *base, const char *const *pairs);

/* Prints a JSON value (indented) on stdout. */
void ctl_print_json(const json_t *v);
/* A bar of width cells for done/total (segments: ok, bad, flight) on a FILE. */
void ctl_bar(char *out, size_t cap, unsigned width, uint64_t total, uint64_t ok, uint64_t bad,
	     uint64_t flight);
/* mkdir -p with mode 0700 (errors show at the next open). */
void ctl_mkdir_p(const char *path);
/* Reads a whole small file (bounded) into a NUL-terminated buffer. */
char *ctl_read_file(const char *path, size_t max, size_t *ret_len);

/* Subcommand arguments (cmds.c): "--name VALUE" pairs from argv[from]. */
const char *ctl_opt(int argc, char **argv, int from, const char *name);
/* Every "--x" of argv[from..] is in allowed (NULL-terminated); else a message. */
bool ctl_opts_known(int argc, char **argv, int from, const char *const *allowed);
/* A string member, or "-"; an integer member, or 0. */
const char *ctl_str(const json_t *o, const char *key);
long long ctl_num(const json_t *o, const char *key);
/*
 * The end of a one-object command: CTL_EXIT_FAIL unless ok, else prints
 * r's body as JSON (--json) or through human(), and clears r.
 */
int ctl_shown(const struct ctl *ctl, bool ok, struct ctl_response *r,
	      void (*human)(const json_t *obj));
/* GET path; print JSON (--json) or row() per item of "items". */
int ctl_list(const struct ctl *ctl, const char *path, void (*row)(const json_t *item));

/* A YAML file as JSON (yaml.c); NULL and a message in err. */
json_t *ctl_yaml_load(const char *path, char *err, size_t err_cap);

/* Commands (argc/argv start at the command's own name). */
int ctl_cmd_login(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_artifacts(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_campaign(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_devices(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_tokens(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_audit(struct ctl *ctl, int argc, char **argv);

/* The profile file: "[name]" sections of "server = ..." / "token = ...". */
bool ctl_profile_load(struct ctl *ctl);
bool ctl_profile_save(const struct ctl *ctl);

#endif
