/* SPDX-License-Identifier: Apache-2.0 */
/* The REST API over libcurl: one easy handle per request, bounded answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "ctl.h"

struct sink {
	char *data;
	size_t len;
	bool too_big;
};

struct source {
	const char *data;
	size_t len;
	size_t pos;
	const struct ctl_request *req;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	char *grown;

	if (s->len + n > CTL_MAX_RESPONSE) {
		s->too_big = true;
		return 0;
	}
	grown = realloc(s->data, s->len + n + 1);
	if (grown == NULL)
		return 0;
	s->data = grown;
	memcpy(s->data + s->len, ptr, n);
	s->len += n;
	s->data[s->len] = '\0';
	return n;
}

static size_t on_header(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct ctl_response *r = arg;
	size_t n = size * nmemb;
	char line[CTL_HTTP_LINE_BYTES];
	size_t len = n < sizeof(line) - 1 ? n : sizeof(line) - 1;

	memcpy(line, buf, len);
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (strncasecmp(line, "ETag:", 5) == 0) {
		const char *v = line + 5 + strspn(line + 5, " ");

		snprintf(r->etag, sizeof(r->etag), "%s", v);
	} else if (strncasecmp(line, "Upload-Offset:", 14) == 0) {
		r->upload_offset = strtoull(line + 14, NULL, 10);
		r->has_upload_offset = true;
	}
	return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct source *src = arg;
	size_t n = size * nmemb;

	if (n > src->len - src->pos)
		n = src->len - src->pos;
	memcpy(buf, src->data + src->pos, n);
	src->pos += n;
	return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	const struct ctl_request *req = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	if (req->progress != NULL)
		req->progress(req->progress_arg, (uint64_t)ulnow);
	return 0;
}

void ctl_response_clear(struct ctl_response *r)
{
	json_decref(r->body);
	memset(r, 0, sizeof(*r));
}

bool ctl_http(const struct ctl *ctl, const struct ctl_request *req, struct ctl_response *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *headers = NULL;
	struct sink sink = {0};
	struct source src = {0};
	char url[CTL_URL_BYTES], auth[CTL_AUTH_HEADER_BYTES];
	char *json_text = NULL;
	CURLcode rc;
	bool ok = false;

	memset(r, 0, sizeof(*r));
	if (c == NULL) {
		snprintf(r->error, sizeof(r->error), "out of memory");
		return false;
	}
	snprintf(url, sizeof(url), "%s%s", ctl->server, req->path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(ctl->timeout_s * 1000.0));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (ctl->cacert[0] != '\0')
		curl_easy_setopt(c, CURLOPT_CAINFO, ctl->cacert);
	if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (ctl->token[0] != '\0') {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ctl->token);
		headers = curl_slist_append(headers, auth);
	}
	headers = curl_slist_append(headers, "Accept: application/json");
	for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++)
		headers = curl_slist_append(headers, req->headers[i]);
	if (req->json != NULL) {
		json_text = json_dumps(req->json, JSON_COMPACT);
		if (json_text == NULL) {
			snprintf(r->error, sizeof(r->error), "out of memory");
			goto out;
		}
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_text);
	} else if (req->raw != NULL) {
		char ctype[CTL_CTYPE_BYTES];

		snprintf(ctype, sizeof(ctype), "Content-Type: %s", req->raw_type);
		headers = curl_slist_append(headers, ctype);
		headers = curl_slist_append(headers, "Expect:");
		src.data = req->raw;
		src.len = req->raw_len;
		src.req = req;
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &src);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->raw_len);
		/* CURLOPT_UPLOAD makes it a PUT; the custom method names the real one */
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
		if (req->max_send_bps > 0)
			curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE,
					 (curl_off_t)req->max_send_bps);
		if (req->progress != NULL) {
			curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
			curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
			curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)req);
		}
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		snprintf(r->error, sizeof(r->error), "%s%s", curl_easy_strerror(rc),
			 sink.too_big ? " (answer too large)" : "");
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (sink.len > 0) {
		r->body = json_loadb(sink.data, sink.len, 0, NULL);
		if (r->body == NULL && r->status < 300) {
			snprintf(r->error, sizeof(r->error), "the answer is not JSON");
			goto out;
		}
	}
	if (r->status >= 400) {
		const json_t *e = json_object_get(r->body, "error");

		snprintf(r->error, sizeof(r->error), "HTTP %ld %s: %s", r->status,
			 json_string_value(json_object_get(e, "code")) ?: "error",
			 json_string_value(json_object_get(e, "message")) ?: "");
	}
	ok = true;
out:
	free(json_text);
	free(sink.data);
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	return ok;
}

void ctl_report_error(const struct ctl_response *r)
{
	fprintf(stderr, "ota-ctl: %s\n", r->error[0] != '\0' ? r->error : "request failed");
}

static bool request_2xx(const struct ctl *ctl, const char *method, const char *path,
			const json_t *body, struct ctl_response *r)
{
	struct ctl_request req = {.method = method, .path = path, .json = body};

	if (!ctl_http(ctl, &req, r) || r->status < 200 || r->status >= 300) {
		ctl_report_error(r);
		/* the caller only returns on failure: nothing of the answer outlives it */
		json_decref(r->body);
		r->body = NULL;
		return false;
	}
	return true;
}

bool ctl_get(const struct ctl *ctl, const char *path, struct ctl_response *r)
{
	return request_2xx(ctl, "GET", path, NULL, r);
}

bool ctl_post(const struct ctl *ctl, const char *path, const json_t *body, struct ctl_response *r)
{
	return request_2xx(ctl, "POST", path, body, r);
}

void ctl_query(char *out, size_t cap, const char *base, const char *const *pairs)
{
	size_t used = (size_t)snprintf(out, cap, "%s", base);
	char sep = strchr(base, '?') != NULL ? '&' : '?';

	for (size_t i = 0; pairs[i] != NULL; i += 2) {
		char *enc;

		if (pairs[i + 1] == NULL || used >= cap)
			continue;
		enc = curl_easy_escape(NULL, pairs[i + 1], 0);
		if (enc == NULL)
			continue;
		used += (size_t)snprintf(out + used, cap - used, "%c%s=%s", sep, pairs[i], enc);
		sep = '&';
		curl_free(enc);
	}
}
