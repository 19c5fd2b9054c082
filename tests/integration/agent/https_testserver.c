/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small, deliberately misbehaving HTTPS server (mutual TLS) for the
 * online agent tests: serves DIR/<artifact>.manifest, DIR/<artifact>.image,
 * DIR/keylist, DIR/rootlist at the delivery paths of DESIGN.md section 4.
 *
 *   https_testserver PORTFILE CERT KEY CLIENT_CA DIR MODE LOG
 *
 * MODE: comma-separated flags: normal | chunked (image in chunks) | cut
 * (the first image response with a body stops halfway) | endless (image
 * without length, never ends) | stall (image stops after 100 bytes and
 * hangs) | ignore-range (always 200 with the whole file) | busy (429
 * Retry-After: 1 for the first image request).
 * Listens on 127.0.0.1, a random free port in 20000-32000 written to
 * PORTFILE; one request per connection; stops on SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static int listen_random(int *ret_port)
{
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int attempt = 0; attempt < 200; attempt++) {
		int port = 20000 + rand() % 12000;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in sa;
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t)port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    listen(fd, 16) == 0) {
			*ret_port = port;
			return fd;
		}
		if (fd >= 0)
			close(fd);
	}
	return -1;
}

static int ssl_write_all(SSL *ssl, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		int n = SSL_write(ssl, p, len > 16384 ? 16384 : (int)len);
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static unsigned char *read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16;
	size_t len = 0;
	unsigned char *buf = malloc(cap);
	size_t n;
	while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			unsigned char *grown = realloc(buf, cap * 2);
			if (!grown) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = grown;
			cap *= 2;
		}
	}
	fclose(f);
	*ret_len = len;
	return buf;
}

static void respond_status(SSL *ssl, int status, const char *extra)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d X\r\nContent-Length: 0\r\n%sConnection: close\r\n\r\n",
			 status, extra ? extra : "");
	(void)ssl_write_all(ssl, head, (size_t)n);
}

static void serve(SSL *ssl, const char *dir, const char *mode, FILE *log, unsigned *image_requests)
{
	char req[8192];
	size_t len = 0;
	while (len < sizeof(req) - 1) {
		int n = SSL_read(ssl, req + len, (int)(sizeof(req) - 1 - len));
		if (n <= 0)
			return;
		len += (size_t)n;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	char path[512];
	if (sscanf(req, "GET %511s HTTP/1.1", path) != 1) {
		respond_status(ssl, 400, NULL);
		return;
	}
	unsigned long long range_from = 0;
	const char *range = strstr(req, "\r\nRange: bytes=");
	if (range)
		range_from = strtoull(range + 15, NULL, 10);
	fprintf(log, "GET %s range=%llu\n", path, range_from);
	fflush(log);

	char file[1024];
	bool image = false;
	if (strncmp(path, "/v1/manifests/", 14) == 0 && !strchr(path + 14, '/') && path[14] != '.')
		snprintf(file, sizeof(file), "%s/%s.manifest", dir, path + 14);
	else if (strncmp(path, "/v1/images/", 11) == 0 && !strchr(path + 11, '/') &&
		 path[11] != '.') {
		snprintf(file, sizeof(file), "%s/%s.image", dir, path + 11);
		image = true;
	} else if (strcmp(path, "/v1/keylist") == 0)
		snprintf(file, sizeof(file), "%s/keylist", dir);
	else if (strcmp(path, "/v1/rootlist") == 0)
		snprintf(file, sizeof(file), "%s/rootlist", dir);
	else {
		respond_status(ssl, 404, NULL);
		return;
	}
	size_t size = 0;
	unsigned char *body = read_file(file, &size);
	if (!body) {
		respond_status(ssl, 404, NULL);
		return;
	}
	unsigned nth = image ? ++*image_requests : 0;
	unsigned first_body = strstr(mode, "busy") ? 2 : 1;
	char head[512];
	int n;
	if (image && strstr(mode, "busy") && nth == 1) {
		respond_status(ssl, 429, "Retry-After: 1\r\n");
	} else if (image && strstr(mode, "endless")) {
		n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
		if (ssl_write_all(ssl, head, (size_t)n) == 0) {
			while (!stopping && ssl_write_all(ssl, body, size) == 0) {
			}
		}
	} else if (image && strstr(mode, "chunked") && range_from < size) {
		if (range_from)
			n = snprintf(head, sizeof(head),
				     "HTTP/1.1 206 Partial\r\nContent-Range: bytes %llu-%zu/%zu\r\n"
				     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
				     range_from, size - 1, size);
		else
			n = snprintf(head, sizeof(head),
				     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
				     "Connection: close\r\n\r\n");
		(void)ssl_write_all(ssl, head, (size_t)n);
		size_t stop = image && strstr(mode, "cut") && nth == first_body ? size / 2 : size;
		for (size_t off = range_from; off < stop;) {
			size_t take = stop - off < 7000 ? stop - off : 7000;
			char line[32];
			int ln = snprintf(line, sizeof(line), "%zx;ext=1\r\n", take);
			if (ssl_write_all(ssl, line, (size_t)ln) ||
			    ssl_write_all(ssl, body + off, take) || ssl_write_all(ssl, "\r\n", 2))
				break;
			off += take;
		}
		if (stop == size)
			(void)ssl_write_all(ssl, "0\r\n\r\n", 5);
	} else {
		size_t from = 0;
		if (range_from && range_from < size && !strstr(mode, "ignore-range")) {
			from = (size_t)range_from;
			n = snprintf(head, sizeof(head),
				     "HTTP/1.1 206 Partial\r\nContent-Range: bytes %zu-%zu/%zu\r\n"
				     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
				     from, size - 1, size, size - from);
		} else {
			n = snprintf(head, sizeof(head),
				     "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
				     "Connection: close\r\n\r\n",
				     size);
		}
		size_t send = size - from;
		if (image && strstr(mode, "cut") && nth == first_body)
			send = send / 2;
		if (image && strstr(mode, "stall"))
			send = 100;
		if (ssl_write_all(ssl, head, (size_t)n) == 0 &&
		    ssl_write_all(ssl, body + from, send) == 0 && image && strstr(mode, "stall")) {
			for (int i = 0; i < 300 && !stopping; i++)
				usleep(100000);
		}
	}
	free(body);
}

int main(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr,
			"usage: https_testserver PORTFILE CERT KEY CLIENT_CA DIR MODE LOG\n");
		return 2;
	}
	const char *mode = argv[6];
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, argv[4], NULL) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	int port = 0;
	int lfd = listen_random(&port);
	FILE *log = fopen(argv[7], "a");
	if (lfd < 0 || !log)
		return 1;
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
	FILE *pf = fopen(tmp, "w");
	if (!pf)
		return 1;
	fprintf(pf, "%d\n", port);
	fclose(pf);
	rename(tmp, argv[1]);

	unsigned image_requests = 0;
	while (!stopping) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		struct timeval tv = {.tv_sec = 10};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		SSL *ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) == 1)
			serve(ssl, argv[5], mode, log, &image_requests);
		else
			fprintf(log, "handshake failed\n");
		fflush(log);
		SSL_free(ssl);
		close(fd);
	}
	fclose(log);
	SSL_CTX_free(ctx);
	close(lfd);
	return 0;
}
