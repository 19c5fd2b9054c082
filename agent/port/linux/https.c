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
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "https-internal.h"
#include "ota_https.h"

/* The session file: magic, binding, key length (2 bytes), key, DER length (4), DER. */
#define SESSION_MAGIC "OTASESS1"
#define SESSION_MAGIC_BYTES 8u

struct url {
	char host[OTA_HTTPS_HOST_MAX];
	char port[OTA_HTTPS_PORT_TEXT_BYTES];
	char prefix[OTA_HTTPS_PREFIX_BYTES];
};

static void set_err(char *err, size_t cap, const char *what)
{
	unsigned long e = ERR_get_error();
	if (e) {
		char ssl_err[OTA_HTTPS_SSL_ERR_BYTES];
		ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
		snprintf(err, cap, "%s: %s", what, ssl_err);
	} else {
		snprintf(err, cap, "%s", what);
	}
	ERR_clear_error();
}

bool ota_https_pin_parse(const char *hex, uint8_t out[OTA_SHA256_BYTES])
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

/* ---- the session on disk ------------------------------------------- */

/* Reads a whole file of at most cap bytes; heap, the caller frees (and wipes). */
static uint8_t *file_slurp(const char *path, size_t cap, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	uint8_t *buf = NULL;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
	    (uint64_t)st.st_size > cap)
		goto out;
	buf = malloc((size_t)st.st_size + 1);
	size_t done = 0;
	while (buf && done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (buf && done != (size_t)st.st_size) {
		OPENSSL_clear_free(buf, (size_t)st.st_size + 1);
		buf = NULL;
	}
	*ret_len = done;
out:
	close(fd);
	return buf;
}

/* SHA-256 of what a kept session was made under: CA file, device certificate, pins. */
static bool session_binding(struct ota_https *client, const char *ca_file)
{
	size_t ca_len = 0;
	uint8_t *ca = file_slurp(ca_file, OTA_HTTPS_CA_FILE_MAX_BYTES, &ca_len);
	unsigned char *cert_der = NULL;
	X509 *cert = SSL_CTX_get0_certificate(client->ctx);
	int cert_len = cert ? i2d_X509(cert, &cert_der) : -1;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int dlen = 0;
	uint8_t lens[2 * sizeof(uint64_t)]; /* both lengths, big-endian */
	bool ok = ca && cert_len > 0 && md;
	for (int i = 0; i < 8; i++) {
		lens[i] = (uint8_t)((uint64_t)ca_len >> (56 - 8 * i));
		lens[8 + i] = (uint8_t)((uint64_t)(cert_len > 0 ? cert_len : 0) >> (56 - 8 * i));
	}
	ok = ok && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(md, "fleetota/tls-session/v1", 23) == 1 &&
	     EVP_DigestUpdate(md, lens, sizeof(lens)) == 1 &&
	     EVP_DigestUpdate(md, ca, ca_len) == 1 &&
	     EVP_DigestUpdate(md, cert_der, (size_t)cert_len) == 1 &&
	     EVP_DigestUpdate(md, client->pins, client->n_pins * 32) == 1 &&
	     EVP_DigestFinal_ex(md, client->binding, &dlen) == 1 && dlen == 32;
	EVP_MD_CTX_free(md);
	OPENSSL_free(cert_der);
	free(ca);
	return ok;
}

/* Takes the session of the file when it is bound to this client; drops the file otherwise. */
static void session_load(struct ota_https *client)
{
	size_t len = 0;
	uint8_t *buf = file_slurp(client->session_file, OTA_HTTPS_SESSION_FILE_MAX_BYTES, &len);
	SSL_SESSION *session = NULL;
	if (!buf) {
		if (errno != ENOENT)
			(void)unlink(client->session_file);
		return;
	}
	size_t at = SESSION_MAGIC_BYTES + 32;
	if (len >= at + 2 && memcmp(buf, SESSION_MAGIC, SESSION_MAGIC_BYTES) == 0 &&
	    CRYPTO_memcmp(buf + SESSION_MAGIC_BYTES, client->binding, 32) == 0) {
		size_t key_len = (size_t)buf[at] << 8 | buf[at + 1];
		at += 2;
		if (key_len > 0 && key_len < sizeof(client->session_key) &&
		    len >= at + key_len + 4 && memchr(buf + at, '\0', key_len) == NULL) {
			memcpy(client->session_key, buf + at, key_len);
			client->session_key[key_len] = '\0';
			at += key_len;
			size_t der_len = (size_t)buf[at] << 24 | (size_t)buf[at + 1] << 16 |
					 (size_t)buf[at + 2] << 8 | buf[at + 3];
			at += 4;
			const unsigned char *p = buf + at;
			if (der_len == len - at && der_len > 0)
				session = d2i_SSL_SESSION(NULL, &p, (long)der_len);
			if (session && (p != buf + len || !SSL_SESSION_is_resumable(session))) {
				SSL_SESSION_free(session);
				session = NULL;
			}
		}
	}
	OPENSSL_clear_free(buf, len + 1);
	if (!session) {
		client->session_key[0] = '\0';
		(void)unlink(client->session_file); /* not ours, or not for this identity */
		ERR_clear_error();
		return;
	}
	client->session = session;
}

/* Writes the kept session to the file (temp file, rename); a failure only costs a handshake. */
static void session_store(const struct ota_https *client)
{
	char tmp[sizeof(client->session_file) + 8];
	int der_len = i2d_SSL_SESSION(client->session, NULL);
	size_t key_len = strlen(client->session_key);
	size_t head = SESSION_MAGIC_BYTES + 32 + 2 + key_len + 4;
	if (der_len <= 0 || (size_t)der_len > OTA_HTTPS_SESSION_FILE_MAX_BYTES - head) {
		(void)unlink(client->session_file); /* the old one is not this session */
		return;
	}
	size_t len = head + (size_t)der_len;
	uint8_t *buf = malloc(len);
	if (!buf)
		return;
	memcpy(buf, SESSION_MAGIC, SESSION_MAGIC_BYTES);
	memcpy(buf + SESSION_MAGIC_BYTES, client->binding, 32);
	size_t at = SESSION_MAGIC_BYTES + 32;
	buf[at++] = (uint8_t)(key_len >> 8);
	buf[at++] = (uint8_t)key_len;
	memcpy(buf + at, client->session_key, key_len);
	at += key_len;
	for (int i = 3; i >= 0; i--)
		buf[at++] = (uint8_t)((unsigned)der_len >> (8 * i));
	unsigned char *p = buf + at;
	bool ok = i2d_SSL_SESSION(client->session, &p) == der_len;
	snprintf(tmp, sizeof(tmp), "%s.tmp", client->session_file);
	int fd = ok ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
	if (fd >= 0) {
		size_t done = 0;
		while (ok && done < len) {
			ssize_t n = write(fd, buf + done, len - done);
			if (n < 0 && errno == EINTR)
				continue;
			ok = n > 0;
			done += ok ? (size_t)n : 0;
		}
		ok = fchmod(fd, 0600) == 0 && ok;
		ok = close(fd) == 0 && ok;
		if (!ok || rename(tmp, client->session_file) != 0)
			(void)unlink(tmp);
	}
	OPENSSL_clear_free(buf, len);
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
	/* a session on disk only when it can be bound to this identity */
	if (config->session_file && strlen(config->session_file) < sizeof(client->session_file) &&
	    session_binding(client, config->ca_file)) {
		memcpy(client->session_file, config->session_file,
		       strlen(config->session_file) + 1);
		session_load(client);
	}
	ERR_clear_error();
	return OTA_OK;
fail:
	SSL_CTX_free(ctx);
	return OTA_ERR_TRANSPORT;
}

void ota_https_free(struct ota_https *client)
{
	if (!client)
		return;
	SSL_SESSION_free(client->session);
	client->session = NULL;
	SSL_CTX_free(client->ctx);
	client->ctx = NULL;
}

/* Offers the kept session when it belongs to key ("host:port"). */
static void session_offer(struct ota_https *client, SSL *ssl, const char *key)
{
	if (client->session != NULL && strcmp(client->session_key, key) == 0)
		(void)SSL_set_session(ssl, client->session);
}

/* After a successful request: keep ssl's session (TLS 1.3 tickets came with the reply). */
static void session_keep(struct ota_https *client, SSL *ssl, const char *key)
{
	SSL_SESSION *session = SSL_get1_session(ssl);

	if (session == NULL || !SSL_SESSION_is_resumable(session) ||
	    strlen(key) >= sizeof(client->session_key)) {
		SSL_SESSION_free(session);
		return;
	}
	bool changed = session != client->session;
	SSL_SESSION_free(client->session);
	client->session = session;
	memcpy(client->session_key, key, strlen(key) + 1);
	if (changed && client->session_file[0])
		session_store(client);
}

static void session_forget(struct ota_https *client)
{
	SSL_SESSION_free(client->session);
	client->session = NULL;
	client->session_key[0] = '\0';
	if (client->session_file[0])
		(void)unlink(client->session_file);
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
	uint8_t digest[OTA_SHA256_BYTES];
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

static bool is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/*
 * A fatal alert of the server that failed ssl, from OpenSSL's error queue
 * (its reason is the alert's number + SSL_AD_REASON_OFFSET), into the
 * response the SSL's app data points at: a refused certificate then reads
 * "TLS alert certificate revoked (44)" rather than "status 0".
 */
static void note_alert(SSL *ssl)
{
	struct ota_https_response *ret = SSL_get_app_data(ssl);
	unsigned long e = ERR_peek_last_error();
	int reason = ERR_GET_REASON(e);

	if (ret == NULL || e == 0 || ERR_GET_LIB(e) != ERR_LIB_SSL ||
	    reason <= SSL_AD_REASON_OFFSET || reason > SSL_AD_REASON_OFFSET + 255)
		return;
	reason -= SSL_AD_REASON_OFFSET;
	snprintf(ret->tls_alert, sizeof(ret->tls_alert), "TLS alert %s (%d)",
		 SSL_alert_desc_string_long(reason), reason);
}

/* The parser's byte source: SSL_read on the blocking socket. */
static enum ota_err tls_read(void *ctx, uint8_t *buf, size_t cap, size_t *ret_n)
{
	SSL *ssl = ctx;
	*ret_n = 0;
	int n = SSL_read(ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (n > 0) {
		*ret_n = (size_t)n;
		return OTA_OK;
	}
	enum ota_err err;
	int e = SSL_get_error(ssl, n);
	if (e == SSL_ERROR_ZERO_RETURN)
		err = OTA_OK; /* clean EOF */
	else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
		 (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)))
		err = OTA_ERR_TIMEOUT; /* blocking socket: "retry" means SO_RCVTIMEO expired */
	else if (e == SSL_ERROR_SYSCALL && errno == 0)
		err = OTA_OK; /* EOF without close_notify: the length checks decide */
	else
		err = OTA_ERR_TRANSPORT;
	if (e == SSL_ERROR_SSL)
		note_alert(ssl);
	ERR_clear_error();
	return err;
}

/*
 * A TCP connection and a TLS handshake with u's server, offering the kept
 * session when offer is true. OTA_OK with *ret_fd and *ret_ssl (the
 * caller frees both), or OTA_ERR_TRANSPORT / OTA_ERR_TIMEOUT with nothing
 * to free. A fatal alert of the server goes to resp->tls_alert (during
 * the handshake and in the reads after it).
 */
static enum ota_err tls_open(struct ota_https *client, const struct url *u, const char *session_key,
			     bool offer, struct ota_https_response *resp, int *ret_fd,
			     SSL **ret_ssl)
{
	enum ota_err err = OTA_ERR_TRANSPORT;
	SSL *ssl = NULL;
	int fd = tcp_connect(u, client->stall_timeout_s), rc;

	if (fd < 0)
		return OTA_ERR_TRANSPORT;
	ssl = SSL_new(client->ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1)
		goto fail;
	SSL_set_app_data(ssl, resp);
	/* the certificate must name the host we asked for, and chain to ca_file */
	if (is_ip_literal(u->host)) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u->host) != 1)
			goto fail;
	} else if (SSL_set_tlsext_host_name(ssl, u->host) != 1 ||
		   SSL_set1_host(ssl, u->host) != 1) {
		goto fail;
	}
	if (offer)
		session_offer(client, ssl, session_key);
	rc = SSL_connect(ssl);
	if (rc != 1) {
		int e = SSL_get_error(ssl, rc);
		err = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? OTA_ERR_TIMEOUT
									    : OTA_ERR_TRANSPORT;
		if (e == SSL_ERROR_SSL)
			note_alert(ssl);
		goto fail;
	}
	client->connections++;
	if (SSL_session_reused(ssl))
		client->resumed++;
	*ret_fd = fd;
	*ret_ssl = ssl;
	return OTA_OK;
fail:
	SSL_free(ssl);
	close(fd);
	ERR_clear_error();
	return err;
}

enum ota_err ota_https_get(struct ota_https *client, const char *base_url, const char *path,
			   uint64_t range_from, uint64_t max_body, ota_https_body_fn fn, void *arg,
			   struct ota_https_response *ret)
{
	struct url u;
	char request[OTA_HTTPS_REQUEST_BYTES];
	char session_key[OTA_HTTPS_SESSION_KEY_BYTES] = "";
	enum ota_err err = OTA_ERR_TRANSPORT;
	SSL *ssl = NULL;
	int fd = -1;
	struct timespec started;
	memset(ret, 0, sizeof(*ret));
	clock_gettime(CLOCK_MONOTONIC, &started);
	if (!url_parse(base_url, &u) || strlen(path) > OTA_HTTPS_MAX_PATH || path[0] != '/')
		goto out;
	snprintf(session_key, sizeof(session_key), "%s:%s", u.host, u.port);
	err = tls_open(client, &u, session_key, true, ret, &fd, &ssl);
	if (err == OTA_ERR_TRANSPORT && client->session != NULL) {
		/* a server that cannot take the session back may fail the handshake: once without */
		session_forget(client);
		ret->tls_alert[0] = '\0';
		err = tls_open(client, &u, session_key, false, ret, &fd, &ssl);
	}
	if (err != OTA_OK)
		goto out;
	/* resumed or not: the certificate of the session must be pinned */
	err = pin_check(client, ssl);
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
	if (n <= 0 || (size_t)n >= sizeof(request) || SSL_write(ssl, request, n) != n)
		goto out;
	err = ota_https_read_response(tls_read, ssl, &started, client->stall_timeout_s, range_from,
				      max_body, fn, arg, ret);
out:
	if (ssl) {
		if (err == OTA_OK) {
			session_keep(client, ssl, session_key);
			(void)SSL_shutdown(ssl);
		}
		SSL_free(ssl);
	}
	if (err != OTA_OK && ret->status == 0) /* no reply: the connection or the server failed */
		session_forget(client);
	if (fd >= 0)
		close(fd);
	ERR_clear_error();
	return err;
}
