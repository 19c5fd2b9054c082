/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small HTTPS load client with a client certificate (wrk cannot present
 * one): C connections, each a thread doing keep-alive GETs of one path,
 * for a number of requests per connection or for a duration. Prints one
 * line: requests, per-status counts, body bytes, seconds, req/s, MB/s.
 *
 *   srv_loadclient HOST PORT CA CERT KEY PATH CONNS REQUESTS_PER_CONN [SECONDS [MODE [TLS]]]
 *   (SECONDS > 0: run for that long instead, REQUESTS_PER_CONN is a cap)
 *
 * MODE: keepalive (default: one connection per worker, many requests),
 * full (a new connection and a full handshake for every request), resume
 * (a new connection for every request, offering the session of the
 * previous one: a device reconnecting). TLS: 1.2, 1.3 or any (default).
 * Prints also conns= (handshakes completed), resumed= (of which
 * SSL_session_reused) and dirty_closes= (the server closed without a
 * close_notify). Without keep-alive every request reads to the server's
 * close, as a device's client does.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_CONNS 256
#define HEADER_MAX 8192

enum mode { MODE_KEEPALIVE, MODE_FULL, MODE_RESUME };

struct worker {
	pthread_t thread;
	SSL_CTX *ctx;
	const char *host;
	int port;
	const char *path;
	enum mode mode;
	SSL_SESSION *session; /* MODE_RESUME: offered on the next connection */
	long conns;
	long resumed;
	long dirty_closes; /* the server closed without a close_notify */
	long max_requests;
	double deadline;
	long requests;
	long status[6]; /* by hundreds */
	long errors;
	unsigned long long bytes;
};

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static SSL *open_conn(struct worker *w, int *ret_fd)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	SSL *ssl;

	if (fd < 0)
		return NULL;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)w->port);
	inet_pton(AF_INET, w->host, &sa.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return NULL;
	}
	ssl = SSL_new(w->ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	if (w->session != NULL)
		SSL_set_session(ssl, w->session);
	if (SSL_connect(ssl) != 1) {
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	w->conns++;
	if (SSL_session_reused(ssl))
		w->resumed++;
	*ret_fd = fd;
	return ssl;
}

/* Case-insensitive search for needle (lowercase) in hay[0..end). */
static char *find_ci(char *hay, const char *end, const char *needle)
{
	size_t n = strlen(needle);

	for (char *p = hay; p + n <= end; p++) {
		size_t i = 0;

		while (i < n && (p[i] | 0x20) == (needle[i] | 0x20))
			i++;
		if (i == n)
			return p;
	}
	return NULL;
}

/* One request/response. Returns the status, or -1 (connection unusable). */
static int do_request(struct worker *w, SSL *ssl, char *buf, size_t cap)
{
	char req[1024];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", w->path,
			 w->host, w->mode == MODE_KEEPALIVE ? "" : "Connection: close\r\n");
	size_t have = 0;
	char *end = NULL, *cl;
	long long content_length = 0, body_have;
	int status;

	if (SSL_write(ssl, req, n) != n)
		return -1;
	while (end == NULL) {
		int r = SSL_read(ssl, buf + have, (int)(cap - have - 1));

		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end == NULL && have >= cap - 1)
			return -1;
	}
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	cl = find_ci(buf, end, "\r\ncontent-length:");
	if (cl != NULL)
		content_length = atoll(cl + 17);
	body_have = (long long)(have - (size_t)(end + 4 - buf));
	w->bytes += (unsigned long long)body_have;
	while (body_have < content_length) {
		long long want = content_length - body_have;
		int r = SSL_read(ssl, buf, want > (long long)cap ? (int)cap : (int)want);

		if (r <= 0)
			return -1;
		body_have += r;
		w->bytes += (unsigned long long)r;
	}
	return status;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	char *buf = malloc(1 << 20);
	SSL *ssl = NULL;
	int fd = -1;

	while (buf != NULL && w->requests < w->max_requests &&
	       (w->deadline == 0 || now_sec() < w->deadline)) {
		int status;

		if (ssl == NULL) {
			ssl = open_conn(w, &fd);
			if (ssl == NULL) {
				w->errors++;
				if (w->errors > 1000)
					break;
				usleep(10000);
				continue;
			}
		}
		status = do_request(w, ssl, buf, 1 << 20);
		if (status < 0) {
			w->errors++;
			SSL_free(ssl);
			close(fd);
			ssl = NULL;
			continue;
		}
		w->requests++;
		if (w->mode != MODE_KEEPALIVE) {
			/*
			 * Connection: close: read to the server's close, as a
			 * client that waits for it does. A bare EOF (no
			 * close_notify) makes OpenSSL drop the session.
			 */
			int r;

			while ((r = SSL_read(ssl, buf, 1 << 20)) > 0)
				;
			if (SSL_get_error(ssl, r) != SSL_ERROR_ZERO_RETURN)
				w->dirty_closes++;
			ERR_clear_error();
			if (w->mode == MODE_RESUME) {
				SSL_SESSION_free(w->session);
				w->session = SSL_get1_session(ssl);
			}
			SSL_shutdown(ssl);
			SSL_free(ssl);
			close(fd);
			ssl = NULL;
		}
		if (status >= 100 && status < 600)
			w->status[status / 100]++;
		if (status == 429)
			w->status[0]++; /* slot 0 counts 429s */
	}
	if (ssl != NULL) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
	}
	SSL_SESSION_free(w->session);
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	static struct worker workers[MAX_CONNS];
	SSL_CTX *ctx;
	int conns;
	double start, elapsed, seconds = 0;
	long total = 0, st[6] = {0}, errors = 0, n_conns = 0, resumed = 0, dirty = 0;
	enum mode mode = MODE_KEEPALIVE;
	unsigned long long bytes = 0;

	if (argc < 9) {
		fprintf(stderr, "usage: %s HOST PORT CA CERT KEY PATH CONNS REQUESTS [SECONDS]\n",
			argv[0]);
		return 2;
	}
	conns = atoi(argv[7]);
	if (conns < 1 || conns > MAX_CONNS)
		return 2;
	if (argc > 9)
		seconds = atof(argv[9]);
	if (argc > 10 && strcmp(argv[10], "full") == 0)
		mode = MODE_FULL;
	else if (argc > 10 && strcmp(argv[10], "resume") == 0)
		mode = MODE_RESUME;
	else if (argc > 10 && strcmp(argv[10], "keepalive") != 0)
		return 2;
	ctx = SSL_CTX_new(TLS_client_method());
	if (argc > 11 && strcmp(argv[11], "1.2") == 0)
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	else if (argc > 11 && strcmp(argv[11], "1.3") == 0)
		SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	/* a worker's session is only ever offered by that worker */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_load_verify_locations(ctx, argv[3], NULL) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, argv[4]) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, argv[5], SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	start = now_sec();
	for (int i = 0; i < conns; i++) {
		workers[i].ctx = ctx;
		workers[i].host = argv[1];
		workers[i].port = atoi(argv[2]);
		workers[i].path = argv[6];
		workers[i].mode = mode;
		workers[i].max_requests = atol(argv[8]);
		workers[i].deadline = seconds > 0 ? start + seconds : 0;
		pthread_create(&workers[i].thread, NULL, run, &workers[i]);
	}
	for (int i = 0; i < conns; i++) {
		pthread_join(workers[i].thread, NULL);
		total += workers[i].requests;
		errors += workers[i].errors;
		bytes += workers[i].bytes;
		n_conns += workers[i].conns;
		resumed += workers[i].resumed;
		dirty += workers[i].dirty_closes;
		for (int j = 0; j < 6; j++)
			st[j] += workers[i].status[j];
	}
	elapsed = now_sec() - start;
	printf("requests=%ld ok2xx=%ld s4xx=%ld s429=%ld s5xx=%ld errors=%ld bytes=%llu "
	       "seconds=%.3f rps=%.1f MBps=%.1f conns=%ld resumed=%ld dirty_closes=%ld cps=%.1f\n",
	       total, st[2], st[4], st[0], st[5], errors, bytes, elapsed, (double)total / elapsed,
	       (double)bytes / elapsed / 1e6, n_conns, resumed, dirty, (double)n_conns / elapsed);
	SSL_CTX_free(ctx);
	return 0;
}
