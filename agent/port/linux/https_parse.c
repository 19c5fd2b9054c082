/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1.1 response side of the delivery client: status line and
 * headers (bounded), Content-Length, chunked encoding, Content-Range, the
 * body limit, and the slow-drip clock. Separate from the TLS code so the
 * fuzzer can feed it bytes.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "https-internal.h"

/* Buffered reads over one connection, with the transfer's clocks. */
struct conn {
	ota_https_read_fn read;
	void *read_ctx;
	uint8_t buf[OTA_HTTPS_READ_BUF];
	size_t pos;
	size_t len;
	const struct timespec *started;
	uint64_t received;
	unsigned stall_s;
	enum ota_err err; /* why the last read failed */
};

static double elapsed_s(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* Refills the buffer; false on EOF or error (c->err says which). */
static bool conn_fill(struct conn *c)
{
	c->pos = 0;
	c->len = 0;
	/* a slow drip is a stall too: after the first stall period, a minimum rate */
	double t = elapsed_s(c->started);
	if (t > c->stall_s && (double)c->received < (t - c->stall_s) * OTA_HTTPS_MIN_BYTES_PER_S) {
		c->err = OTA_ERR_TIMEOUT;
		return false;
	}
	size_t n = 0;
	c->err = c->read(c->read_ctx, c->buf, sizeof(c->buf), &n);
	if (c->err == OTA_OK && n > 0 && n <= sizeof(c->buf)) {
		c->len = n;
		c->received += n;
		return true;
	}
	return false;
}

/* One header line without CRLF into line (cap bytes); false on error. */
static bool conn_line(struct conn *c, char *line, size_t cap, size_t *budget)
{
	size_t n = 0;
	for (;;) {
		if (c->pos == c->len && !conn_fill(c)) {
			if (c->err == OTA_OK)
				c->err = OTA_ERR_TRANSPORT;
			return false;
		}
		char ch = (char)c->buf[c->pos++];
		if (*budget == 0) {
			c->err = OTA_ERR_TRANSPORT;
			return false;
		}
		(*budget)--;
		if (ch == '\n') {
			if (n && line[n - 1] == '\r')
				n--;
			line[n] = '\0';
			return true;
		}
		if (n + 1 >= cap) {
			c->err = OTA_ERR_TRANSPORT;
			return false;
		}
		line[n++] = ch;
	}
}

static bool parse_u64_prefix(const char *s, int base, uint64_t *ret, const char **end)
{
	uint64_t v = 0;
	size_t digits = 0;
	for (; *s; s++, digits++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return false;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (digits == 0)
		return false;
	*ret = v;
	if (end)
		*end = s;
	return true;
}

struct head {
	int status;
	bool has_length;
	uint64_t length;
	bool chunked;
	bool has_range;
	uint64_t range_first;
	unsigned retry_after;
};

static bool header_is(const char *line, const char *name, const char **value)
{
	size_t n = strlen(name);
	if (strncasecmp(line, name, n) != 0 || line[n] != ':')
		return false;
	const char *v = line + n + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	*value = v;
	return true;
}

static enum ota_err read_head(struct conn *c, struct head *h)
{
	char line[OTA_HTTPS_HEADER_LINE_BYTES];
	size_t budget = OTA_HTTPS_MAX_HEADER_BYTES;
	const char *v;
	memset(h, 0, sizeof(*h));
	if (!conn_line(c, line, sizeof(line), &budget))
		return c->err;
	if (strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
	    line[8] != ' ')
		return OTA_ERR_TRANSPORT;
	uint64_t status = 0;
	if (!parse_u64_prefix(line + 9, 10, &status, NULL) || status < 100 || status > 599)
		return OTA_ERR_TRANSPORT;
	h->status = (int)status;
	for (;;) {
		if (!conn_line(c, line, sizeof(line), &budget))
			return c->err;
		if (line[0] == '\0')
			return OTA_OK;
		const char *end = NULL;
		if (header_is(line, "Content-Length", &v)) {
			if (!parse_u64_prefix(v, 10, &h->length, &end) || *end)
				return OTA_ERR_TRANSPORT;
			h->has_length = true;
		} else if (header_is(line, "Transfer-Encoding", &v)) {
			if (strcasecmp(v, "chunked") != 0)
				return OTA_ERR_TRANSPORT;
			h->chunked = true;
		} else if (header_is(line, "Content-Range", &v)) {
			if (strncmp(v, "bytes ", 6) != 0 ||
			    !parse_u64_prefix(v + 6, 10, &h->range_first, NULL))
				return OTA_ERR_TRANSPORT;
			h->has_range = true;
		} else if (header_is(line, "Retry-After", &v)) {
			uint64_t s = 0;
			if (parse_u64_prefix(v, 10, &s, NULL))
				h->retry_after = s > 86400 ? 86400 : (unsigned)s;
		}
	}
}

struct sink {
	ota_https_body_fn fn;
	void *arg;
	uint64_t max_body;
	uint64_t skip; /* a 200 to a Range request: drop the prefix */
	uint64_t delivered;
};

static enum ota_err sink_put(struct sink *s, const uint8_t *data, size_t len)
{
	if (s->skip) {
		size_t drop = s->skip < len ? (size_t)s->skip : len;
		s->skip -= drop;
		data += drop;
		len -= drop;
	}
	if (len == 0)
		return OTA_OK;
	if (len > s->max_body - s->delivered)
		return OTA_ERR_SIZE; /* endless data stops here */
	s->delivered += len;
	return s->fn(s->arg, data, len);
}

/* Copies n bytes of body (n = UINT64_MAX: until EOF). */
static enum ota_err body_copy(struct conn *c, struct sink *s, uint64_t n, bool until_eof)
{
	while (until_eof || n > 0) {
		if (c->pos == c->len && !conn_fill(c)) {
			if (until_eof && c->err == OTA_OK)
				return OTA_OK;
			return c->err == OTA_OK ? OTA_ERR_TRANSPORT : c->err;
		}
		size_t avail = c->len - c->pos;
		size_t take = !until_eof && n < avail ? (size_t)n : avail;
		enum ota_err err = sink_put(s, c->buf + c->pos, take);
		if (err != OTA_OK)
			return err;
		c->pos += take;
		if (!until_eof)
			n -= take;
	}
	return OTA_OK;
}

static enum ota_err body_chunked(struct conn *c, struct sink *s)
{
	char line[OTA_HTTPS_CHUNK_LINE_BYTES];
	size_t budget = OTA_HTTPS_MAX_HEADER_BYTES;
	for (;;) {
		uint64_t size = 0;
		const char *end = NULL;
		budget = OTA_HTTPS_MAX_HEADER_BYTES;
		if (!conn_line(c, line, sizeof(line), &budget))
			return c->err;
		if (!parse_u64_prefix(line, 16, &size, &end) || (*end && *end != ';'))
			return OTA_ERR_TRANSPORT;
		if (size == 0)
			break;
		if (size > s->max_body - s->delivered + s->skip)
			return OTA_ERR_SIZE;
		enum ota_err err = body_copy(c, s, size, false);
		if (err != OTA_OK)
			return err;
		if (!conn_line(c, line, sizeof(line), &budget))
			return c->err;
		if (line[0] != '\0')
			return OTA_ERR_TRANSPORT;
	}
	for (;;) { /* trailers */
		if (!conn_line(c, line, sizeof(line), &budget))
			return c->err;
		if (line[0] == '\0')
			return OTA_OK;
	}
}

enum ota_err ota_https_read_response(ota_https_read_fn read, void *read_ctx,
				     const struct timespec *started, unsigned stall_s,
				     uint64_t range_from, uint64_t max_body, ota_https_body_fn fn,
				     void *arg, struct ota_https_response *ret)
{
	struct head h;
	enum ota_err err;
	struct conn *c = calloc(1, sizeof(*c));
	memset(ret, 0, sizeof(*ret));
	if (!c)
		return OTA_ERR_NOMEM;
	c->read = read;
	c->read_ctx = read_ctx;
	c->started = started;
	c->stall_s = stall_s;
	err = read_head(c, &h);
	if (err != OTA_OK)
		goto out;
	ret->status = h.status;
	ret->retry_after_s = h.retry_after;
	struct sink s = {.fn = fn, .arg = arg, .max_body = max_body};
	if (h.status == 206) {
		if (!h.has_range || h.range_first != range_from) {
			err = OTA_ERR_TRANSPORT;
			goto out;
		}
	} else if (h.status == 200) {
		s.skip = range_from; /* the server ignored the Range */
	} else {
		err = OTA_ERR_TRANSPORT;
		goto out;
	}
	if (h.chunked) {
		err = body_chunked(c, &s);
	} else if (h.has_length) {
		if (h.length > max_body + s.skip) {
			err = OTA_ERR_SIZE;
			goto out;
		}
		err = body_copy(c, &s, h.length, false);
	} else {
		err = body_copy(c, &s, 0, true);
	}
	if (err == OTA_OK && s.skip)
		err = OTA_ERR_TRANSPORT; /* shorter than the offset we resume from */
	ret->body_bytes = s.delivered;
out:
	free(c);
	return err;
}
