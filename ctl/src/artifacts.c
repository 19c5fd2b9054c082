/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ota-ctl artifacts: list, show, and upload through a resumable upload
 * session (POST /api/v1/uploads, PATCH chunks at Upload-Offset, POST
 * .../artifact). The session id is kept in a state file named by the
 * bundle's SHA-256 (~/.cache/fleetota/uploads/), so an upload cut by a
 * dropped connection, a killed process or a reboot resumes from the
 * server's offset when the same command runs again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ctl.h"
#include "fleetota/hex.h"

struct upload {
	const struct ctl *ctl;
	int fd;
	uint64_t size;
	uint64_t offset; /* confirmed by the server */
	char sha256[CTL_SHA256_HEX];
	char id[CTL_MAX_ID];
	char state_path[CTL_STATE_PATH_BYTES];
	long rate;
	bool tty;
	double started;
	uint64_t started_offset;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void artifact_row(const json_t *a)
{
	printf("%-24s %-12s %-10s counter %-4lld %s%-10lld key %.16s\n", ctl_str(a, "artifact_id"),
	       ctl_str(a, "product"), ctl_str(a, "version"), ctl_num(a, "security_counter"),
	       json_is_true(json_object_get(a, "is_security_update")) ? "security " : "",
	       ctl_num(a, "image_size"), ctl_str(a, "signing_key_id"));
}

static bool file_sha256(int fd, char hex[CTL_SHA256_HEX])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char buf[CTL_HASH_CHUNK_BYTES], out[OTA_SHA256_BYTES];
	unsigned int out_len = 0;
	ssize_t n;
	bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;

	for (off_t at = 0; ok && (n = pread(fd, buf, sizeof(buf), at)) > 0; at += n)
		ok = EVP_DigestUpdate(md, buf, (size_t)n) == 1;
	ok = ok && EVP_DigestFinal_ex(md, out, &out_len) == 1 && out_len == OTA_SHA256_BYTES;
	EVP_MD_CTX_free(md);
	if (ok)
		ota_hex_encode(out, OTA_SHA256_BYTES, hex);
	return ok;
}

static void progress_draw(struct upload *up, uint64_t in_chunk)
{
	uint64_t done = up->offset + in_chunk;
	double secs = now_s() - up->started;
	double rate = secs > 0 ? (double)(done - up->started_offset) / secs : 0;
	char bar[CTL_PROGRESS_BAR_BYTES];

	if (!up->tty)
		return;
	ctl_bar(bar, sizeof(bar), 40, up->size, done, 0, 0);
	fprintf(stderr, "\r[%s] %3u%% %llu/%llu bytes %.0f kB/s ", bar,
		(unsigned)(done * 100 / (up->size ? up->size : 1)), (unsigned long long)done,
		(unsigned long long)up->size, rate / 1000.0);
}

static void on_progress(void *arg, uint64_t sent)
{
	progress_draw(arg, sent);
}

static void state_path(struct upload *up)
{
	const char *cache = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char dir[CTL_MAX_PATH];

	if (cache != NULL && cache[0] == '/')
		snprintf(dir, sizeof(dir), "%s/fleetota", cache);
	else
		snprintf(dir, sizeof(dir), "%s/.cache/fleetota", home != NULL ? home : ".");
	ctl_mkdir_p(dir);
	snprintf(up->state_path, sizeof(up->state_path), "%s/upload-%s", dir, up->sha256);
}

/* The session saved by an earlier run for this bundle and server, if any. */
static bool state_load(struct upload *up)
{
	char *text = ctl_read_file(up->state_path, 2048, NULL);
	char server[CTL_SAVED_SERVER_BYTES] = "", id[CTL_MAX_ID] = "";
	bool ok;

	if (text == NULL)
		return false;
	ok = sscanf(text, "%599s %63s", server, id) == 2 && strcmp(server, up->ctl->server) == 0 &&
	     strncmp(id, "u_", 2) == 0;
	free(text);
	if (ok)
		snprintf(up->id, sizeof(up->id), "%s", id);
	return ok;
}

static void state_save(const struct upload *up)
{
	FILE *f = fopen(up->state_path, "w");

	if (f != NULL) {
		fprintf(f, "%s %s\n", up->ctl->server, up->id);
		fclose(f);
	}
}

/* HEAD the session: its offset. false when it is gone (404) or unreachable. */
static bool session_offset(struct upload *up, long *ret_status)
{
	char path[CTL_URL_PATH_SHORT];
	struct ctl_request req = {.method = "HEAD", .path = path};
	struct ctl_response r;
	bool ok;

	snprintf(path, sizeof(path), "/api/v1/uploads/%s", up->id);
	ok = ctl_http(up->ctl, &req, &r) && r.status == 200 && r.has_upload_offset;
	*ret_status = r.status;
	if (ok)
		up->offset = r.upload_offset;
	ctl_response_clear(&r);
	return ok;
}

static bool session_create(struct upload *up)
{
	json_t *body = json_pack("{s:I, s:s}", "size", (json_int_t)up->size, "sha256", up->sha256);
	struct ctl_response r;
	bool ok = body != NULL && ctl_post(up->ctl, "/api/v1/uploads", body, &r);

	json_decref(body);
	if (!ok)
		return false;
	snprintf(up->id, sizeof(up->id), "%s", ctl_str(r.body, "id"));
	up->offset = 0;
	ctl_response_clear(&r);
	state_save(up);
	return true;
}

/* One chunk at up->offset. 1 sent, 0 transient failure (retry), -1 refused. */
static int send_chunk(struct upload *up, uint64_t chunk_size)
{
	uint64_t len = up->size - up->offset < chunk_size ? up->size - up->offset : chunk_size;
	char path[CTL_URL_PATH_SHORT], offset_hdr[CTL_OFFSET_HEADER_BYTES];
	const char *headers[] = {offset_hdr, NULL};
	struct ctl_request req = {.method = "PATCH",
				  .path = path,
				  .raw_type = "application/offset+octet-stream",
				  .headers = headers,
				  .max_send_bps = up->rate,
				  .progress = on_progress,
				  .progress_arg = up};
	struct ctl_response r;
	char *buf = malloc(len);
	ssize_t n;
	int rc;

	if (buf == NULL)
		return -1;
	n = pread(up->fd, buf, len, (off_t)up->offset);
	if (n < 0 || (uint64_t)n != len) {
		free(buf);
		fprintf(stderr, "ota-ctl: cannot read the bundle\n");
		return -1;
	}
	snprintf(path, sizeof(path), "/api/v1/uploads/%s", up->id);
	snprintf(offset_hdr, sizeof(offset_hdr), "Upload-Offset: %llu",
		 (unsigned long long)up->offset);
	req.raw = buf;
	req.raw_len = len;
	if (!ctl_http(up->ctl, &req, &r)) {
		rc = 0; /* the connection broke: ask the server where it stands */
	} else if (r.status == 200 && r.has_upload_offset) {
		up->offset = r.upload_offset;
		rc = 1;
	} else if (r.status == 409 && r.has_upload_offset) {
		up->offset = r.upload_offset; /* the server has more (or less) than we thought */
		rc = 1;
	} else if (r.status == 429 || r.status >= 500) {
		rc = 0;
	} else {
		ctl_report_error(&r);
		rc = -1;
	}
	if (rc == 0 && up->tty)
		fputc('\n', stderr);
	if (rc == 0)
		fprintf(stderr, "ota-ctl: chunk at %llu not confirmed (%s): resuming\n",
			(unsigned long long)up->offset, r.error[0] ? r.error : "retry");
	ctl_response_clear(&r);
	free(buf);
	return rc;
}

static int upload(struct ctl *ctl, int argc, char **argv)
{
	static const char *const allowed[] = {"--id", "--chunk", "--rate", NULL};
	const char *id = ctl_opt(argc, argv, 3, "--id");
	const char *chunk_opt = ctl_opt(argc, argv, 3, "--chunk");
	const char *rate_opt = ctl_opt(argc, argv, 3, "--rate");
	uint64_t chunk = chunk_opt != NULL ? strtoull(chunk_opt, NULL, 10) : CTL_DEFAULT_CHUNK;
	struct upload up = {.ctl = ctl, .fd = -1, .tty = isatty(STDERR_FILENO) == 1};
	struct ctl_response r;
	struct stat st;
	char path[CTL_URL_PATH_SHORT];
	json_t *body;
	int retries = 0, rc = CTL_EXIT_FAIL;
	long status = 0;

	if (argc < 3 || !ctl_opts_known(argc, argv, 3, allowed) || id == NULL || chunk < 1024 ||
	    chunk > CTL_MAX_CHUNK) {
		fprintf(stderr, "usage: ota-ctl artifacts upload FILE.otab --id ARTIFACT_ID "
				"[--chunk BYTES (1024..8388608)]\n");
		return CTL_EXIT_USAGE;
	}
	up.rate = rate_opt != NULL ? atol(rate_opt) : 0;
	up.fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (up.fd < 0 || fstat(up.fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		fprintf(stderr, "ota-ctl: %s: %s\n", argv[2],
			up.fd < 0 ? strerror(errno) : "not a bundle file");
		goto out;
	}
	up.size = (uint64_t)st.st_size;
	if (!file_sha256(up.fd, up.sha256))
		goto out;
	state_path(&up);
	if (state_load(&up) && session_offset(&up, &status)) {
		fprintf(stderr, "ota-ctl: resuming upload %s at offset %llu of %llu\n", up.id,
			(unsigned long long)up.offset, (unsigned long long)up.size);
	} else if (!session_create(&up)) {
		goto out;
	}
	up.started = now_s();
	up.started_offset = up.offset;
	while (up.offset < up.size) {
		int sent = send_chunk(&up, chunk);

		if (sent < 0)
			goto out;
		if (sent > 0) {
			retries = 0;
			continue;
		}
		if (++retries > CTL_UPLOAD_RETRIES) {
			fprintf(stderr,
				"ota-ctl: giving up after %d tries; run the same command again "
				"to resume upload %s\n",
				CTL_UPLOAD_RETRIES, up.id);
			goto out;
		}
		sleep((unsigned)retries);
		if (!session_offset(&up, &status) && status == 404) {
			fprintf(stderr, "ota-ctl: upload session %s is gone\n", up.id);
			unlink(up.state_path);
			goto out;
		}
	}
	progress_draw(&up, 0);
	if (up.tty)
		fputc('\n', stderr);
	snprintf(path, sizeof(path), "/api/v1/uploads/%s/artifact", up.id);
	body = json_pack("{s:s}", "artifact_id", id);
	if (body == NULL || !ctl_post(ctl, path, body, &r)) {
		json_decref(body);
		goto out;
	}
	json_decref(body);
	unlink(up.state_path);
	if (ctl->json)
		ctl_print_json(r.body);
	else
		artifact_row(r.body);
	ctl_response_clear(&r);
	rc = CTL_EXIT_OK;
out:
	if (up.fd >= 0)
		close(up.fd);
	return rc;
}

int ctl_cmd_artifacts(struct ctl *ctl, int argc, char **argv)
{
	char path[CTL_URL_PATH];
	struct ctl_response r;

	if (argc == 2 && strcmp(argv[1], "list") == 0)
		return ctl_list(ctl, "/api/v1/artifacts?limit=500", artifact_row);
	if (argc == 3 && strcmp(argv[1], "show") == 0) {
		snprintf(path, sizeof(path), "/api/v1/artifacts/%s", argv[2]);
		return ctl_shown(ctl, ctl_get(ctl, path, &r), &r, artifact_row);
	}
	if (argc >= 2 && strcmp(argv[1], "upload") == 0)
		return upload(ctl, argc, argv);
	fprintf(stderr, "usage: ota-ctl artifacts list | show ID | upload FILE --id ID\n");
	return CTL_EXIT_USAGE;
}
