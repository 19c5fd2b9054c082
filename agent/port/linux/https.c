/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ota_https.h"

#define HOST_MAX 256u
#define READ_BUF 16384u

struct url {
	char host[HOST_MAX];
	char port[8];
	char prefix[256];
};

/* Buffered reads over one TLS connection, with the transfer's clocks. */
struct conn {
	SSL *ssl;
	int fd;
	uint8_t buf[READ_BUF];
	size_t pos;
	size_t len;
	struct timespec started;
	uint64_t received;
	unsigned stall_s;
	enum ota_err err; /* why the last read failed */
};

static void set_err(char *err, size_t cap, const char *what)
{
	unsigned long e = ERR_get_error();
	if (e) {
		char ssl_err[128];
		ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
		snprintf(err, cap, "%s: %s", what, ssl_err);
	} else {
		snprintf(err, cap, "%s", what);
	}
	ERR_clear_error();
}

bool ota_https_pin_parse(const char *hex, uint8_t out[32])
{
	if (strlen(hex) != 64)
		return false;
	for (size_t i = 0; i < 32; i++) {
		unsigned v = 0;
		for (size_t j = 0; j < 2; j++) {
			char c = hex[2 * i + j];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= (unsigned)(c - 'A' + 10);
			else
				return false;
		}
		out[i] = (uint8_t)v;
	}
	return true;
}

enum ota_err ota_https_init(struct ota_https *client, const struct ota_https_config *config,
			    char *err, size_t err_cap)
{
	memset(client, 0, sizeof(*client));
	if (!config->ca_file || !config->cert_file || !config->key_file || config->n_pins == 0 ||
	    config->n_pins > OTA_HTTPS_MAX_PINS) {
		snprintf(err, err_cap,
			 "ca_file, device_cert, device_key and 1..8 server_pins needed");
		return OTA_ERR_TRANSPORT;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		set_err(err, err_cap, "SSL_CTX_new");
		return OTA_ERR_TRANSPORT;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* the configured CA and nothing else: no system store */
	if (SSL_CTX_load_verify_locations(ctx, config->ca_file, NULL) != 1) {
		set_err(err, err_cap, "ca_file");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, config->cert_file) != 1) {
		set_err(err, err_cap, "device_cert");
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, config->key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		set_err(err, err_cap, "device_key");
		goto fail;
	}
	client->ctx = ctx;
	memcpy(client->pins, config->pins, config->n_pins * 32);
	client->n_pins = config->n_pins;
	client->stall_timeout_s = config->stall_timeout_s ? config->stall_timeout_s : 30;
	return OTA_OK;
fail:
	SSL_CTX_free(ctx);
	return OTA_ERR_TRANSPORT;
}

void ota_https_free(struct ota_https *client)
{
	if (!client)
		return;
	SSL_CTX_free(client->ctx);
	client->ctx = NULL;
}

static bool url_parse(const char *base, struct url *u)
{
	memset(u, 0, sizeof(*u));
	if (strncmp(base, "https://", 8) != 0)
		return false;
	const char *p = base + 8;
	const char *host_end;
	if (*p == '[') { /* [v6]:port */
		host_end = strchr(p, ']');
		if (!host_end)
			return false;
		p++;
	} else {
		host_end = p + strcspn(p, ":/");
	}
	size_t host_len = (size_t)(host_end - p);
	if (host_len == 0 || host_len >= sizeof(u->host))
		return false;
	memcpy(u->host, p, host_len);
	p = host_end + (*host_end == ']');
	if (*p == ':') {
		p++;
		size_t port_len = strspn(p, "0123456789");
		if (port_len == 0 || port_len >= sizeof(u->port))
			return false;
		memcpy(u->port, p, port_len);
		p += port_len;
	} else {
		strcpy(u->port, "443");
	}
	size_t prefix_len = strlen(p);
	while (prefix_len && p[prefix_len - 1] == '/')
		prefix_len--;
	if (prefix_len >= sizeof(u->prefix) || (prefix_len && *p != '/'))
		return false;
	memcpy(u->prefix, p, prefix_len);
	return true;
}

static double elapsed_s(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static int tcp_connect(const struct url *u, unsigned timeout_s)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(u->host, u->port, &hints, &res) != 0)
		return -1;
	int fd = -1;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0)
			continue;
		int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
		if (rc != 0 && errno == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int soerr = 0;
			socklen_t len = sizeof(soerr);
			if (poll(&pfd, 1, (int)timeout_s * 1000) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)
				rc = 0;
		}
		if (rc != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return -1;
	/* blocking from here on, every read and write bounded by the stall timeout */
	int flags = fcntl(fd, F_GETFL);
	struct timeval tv = {.tv_sec = (time_t)timeout_s};
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* OTA_OK when the server's SPKI SHA-256 is one of the pins. */
static enum ota_err pin_check(const struct ota_https *client, SSL *ssl)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	unsigned char *der = NULL;
	uint8_t digest[32];
	enum ota_err verdict = OTA_ERR_PIN;
	if (!cert)
		return OTA_ERR_PIN;
	int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	X509_free(cert);
	if (len <= 0)
		return OTA_ERR_PIN;
	unsigned int dlen = 0;
	int ok = EVP_Digest(der, (size_t)len, digest, &dlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	if (ok != 1 || dlen != 32)
		return OTA_ERR_PIN;
	for (size_t i = 0; i < client->n_pins; i++) {
		if (CRYPTO_memcmp(digest, client->pins[i], 32) == 0)
			verdict = OTA_OK;
	}
	return verdict;
}

/* Refills the buffer; false on EOF or error (c->err says which). */
static bool conn_fill(struct conn *c)
{
	c->pos = 0;
	c->len = 0;
	/* a slow drip is a stall too: after the first stall period, a minimum rate */
	double t = elapsed_s(&c->started);
	if (t > c->stall_s && (double)c->received < (t - c->stall_s) * OTA_HTTPS_MIN_BYTES_PER_S) {
		c->err = OTA_ERR_TIMEOUT;
		return false;
	}
	int n = SSL_read(c->ssl, c->buf, (int)sizeof(c->buf));
	if (n > 0) {
		c->len = (size_t)n;
		c->received += (uint64_t)n;
		return true;
	}
	int e = SSL_get_error(c->ssl, n);
	if (e == SSL_ERROR_ZERO_RETURN) {
		c->err = OTA_OK; /* clean EOF */
	} else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
		   (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))) {
		/* the socket is blocking: "retry" means SO_RCVTIMEO expired */
		c->err = OTA_ERR_TIMEOUT;
	} else if (e == SSL_ERROR_SYSCALL && errno == 0) {
		c->err = OTA_OK; /* EOF without close_notify: the length checks decide */
	} else {
		c->err = OTA_ERR_TRANSPORT;
	}
	ERR_clear_error();
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
	char line[1024];
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
	char line[256];
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

static bool is_ip_literal(const char *host)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

enum ota_err ota_https_get(struct ota_https *client, const char *base_url, const char *path,
			   uint64_t range_from, uint64_t max_body, ota_https_body_fn fn, void *arg,
			   struct ota_https_response *ret)
{
	struct url u;
	struct head h;
	char request[1024];
	enum ota_err err = OTA_ERR_TRANSPORT;
	struct conn *c = calloc(1, sizeof(*c));
	memset(ret, 0, sizeof(*ret));
	if (!c)
		return OTA_ERR_NOMEM;
	c->fd = -1;
	c->stall_s = client->stall_timeout_s;
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	if (!url_parse(base_url, &u) || strlen(path) > 512 || path[0] != '/')
		goto out;
	c->fd = tcp_connect(&u, client->stall_timeout_s);
	if (c->fd < 0)
		goto out;
	c->ssl = SSL_new(client->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		goto out;
	/* the certificate must name the host we asked for, and chain to ca_file */
	if (is_ip_literal(u.host)) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), u.host) != 1)
			goto out;
	} else if (SSL_set_tlsext_host_name(c->ssl, u.host) != 1 ||
		   SSL_set1_host(c->ssl, u.host) != 1) {
		goto out;
	}
	int rc = SSL_connect(c->ssl);
	if (rc != 1) {
		int e = SSL_get_error(c->ssl, rc);
		err = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? OTA_ERR_TIMEOUT
									    : OTA_ERR_TRANSPORT;
		goto out;
	}
	err = pin_check(client, c->ssl);
	if (err != OTA_OK)
		goto out;
	int n;
	if (range_from > 0)
		n = snprintf(request, sizeof(request),
			     "GET %s%s HTTP/1.1\r\nHost: %s\r\nRange: bytes=%llu-\r\n"
			     "Connection: close\r\nUser-Agent: ota-agent\r\n\r\n",
			     u.prefix, path, u.host, (unsigned long long)range_from);
	else
		n = snprintf(request, sizeof(request),
			     "GET %s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
			     "User-Agent: ota-agent\r\n\r\n",
			     u.prefix, path, u.host);
	err = OTA_ERR_TRANSPORT;
	if (n <= 0 || (size_t)n >= sizeof(request) || SSL_write(c->ssl, request, n) != n)
		goto out;
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
	if (c->ssl) {
		if (err == OTA_OK)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	ERR_clear_error();
	return err;
}
