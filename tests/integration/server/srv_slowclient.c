/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hostile and well-behaved clients for the listener tests (one process, a
 * poll loop, no threads).
 *
 *   srv_slowclient slow [OPTIONS] HOST PORT CONNS
 *     CONNS slow connections; each sends one byte every --interval-ms:
 *       --mode head  a request head that never ends (after the TLS
 *                    handshake with --tls): "GET PATH HTTP/1.1\r\nX: aaa..."
 *       --mode hs    a TLS handshake that never ends (a record header,
 *                    then its body one byte at a time)
 *     --hold SEC     run for SEC seconds (default: until all are closed, at
 *                    most 120 s)
 *     --reconnect    a connection the server closes is opened again
 *     (SIGTERM ends the run early; the figures are printed)
 *     --src A,B,...  local addresses used in turn (127.0.0.x)
 *     --sequential   open one after the other (each once established),
 *                    so that connection i is older than i+1
 *     --ready FILE   written once CONNS are open for the first time
 *   prints: opened= established= closed_by_server= reconnects=
 *           life_min_ms= life_max_ms= open_at_end= closed_ids=I,J,...
 *
 *   srv_slowclient probe [OPTIONS] HOST PORT PATH
 *     one GET on a new connection every --interval-ms for --duration SEC
 *     (or --count N); latency is connect + handshake + reply, bounded by
 *     --timeout-ms (a request that takes longer counts as failed);
 *     --keepalive: the requests share one connection (opened again if
 *     the server closes it), latency is request + reply
 *   prints: requests= ok= failed= p50_ms= p99_ms= max_ms= statuses=200:N,...
 *
 *   Common: --tls CA CERT KEY (mutual TLS; CERT/KEY may be "-" for none)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_CONNS 4000
#define MAX_SRC 64
#define MAX_SAMPLES 100000
#define MAX_CLOSED_IDS 64

enum conn_state { C_FREE, C_CONNECTING, C_HANDSHAKE, C_DRIBBLE };

struct conn {
	int fd;
	SSL *ssl;
	enum conn_state state;
	bool want_write; /* TLS handshake wants POLLOUT */
	bool established_once;
	double started;
	double next_byte;
	size_t sent;
};

struct opts {
	const char *host;
	int port;
	const char *mode;
	const char *path;
	int interval_ms;
	double hold;
	double duration;
	long count;
	int timeout_ms;
	bool sequential;
	bool reconnect;
	bool keepalive;
	const char *ready_file;
	const char *src[MAX_SRC];
	int n_src;
	SSL_CTX *tls;
};

/* SIGTERM ends a run early; its figures are still printed. */
static volatile sig_atomic_t stop_requested;

static void on_term(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_socket(const struct opts *o, int n)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->n_src > 0) {
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		inet_pton(AF_INET, o->src[n % o->n_src], &sa.sin_addr);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			close(fd);
			return -1;
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)o->port);
	inet_pton(AF_INET, o->host, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

static void conn_close(struct conn *c)
{
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
	c->state = C_FREE;
}

/* Runs the TLS handshake on; 1 done, 0 in progress, -1 failed. */
static int handshake(struct conn *c)
{
	int r = SSL_do_handshake(c->ssl);

	if (r == 1)
		return 1;
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		c->want_write = false;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		c->want_write = true;
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

/* The connect finished: start TLS, or start dribbling. 0 ok, -1 failed. */
static int connected(const struct opts *o, struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
		return -1;
	if (o->tls != NULL && strcmp(o->mode, "hs") != 0) {
		c->ssl = SSL_new(o->tls);
		if (c->ssl == NULL)
			return -1;
		SSL_set_fd(c->ssl, c->fd);
		SSL_set_tlsext_host_name(c->ssl, "localhost");
		SSL_set_connect_state(c->ssl);
		c->state = C_HANDSHAKE;
		return handshake(c) < 0 ? -1 : 0;
	}
	c->state = C_DRIBBLE;
	return 0;
}

/* The next byte of a never-ending request head or TLS record. */
static char next_byte(const struct opts *o, size_t i)
{
	static const unsigned char record[] = {0x16, 0x03, 0x01, 0x02, 0x00};
	char head[256];
	size_t head_len;

	if (strcmp(o->mode, "hs") == 0)
		return i < sizeof(record) ? (char)record[i] : 0;
	head_len = (size_t)snprintf(head, sizeof(head),
				    "GET %s HTTP/1.1\r\nHost: x\r\nX-Slow: ", o->path);
	return i < head_len ? head[i] : 'a';
}

/* Sends one byte; 0 ok or would block, -1 the server closed. */
static int dribble(const struct opts *o, struct conn *c)
{
	char b = next_byte(o, c->sent);
	ssize_t n;

	if (c->ssl != NULL) {
		int r = SSL_write(c->ssl, &b, 1);

		if (r == 1) {
			c->sent++;
			return 0;
		}
		r = SSL_get_error(c->ssl, r);
		ERR_clear_error();
		return r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE ? 0 : -1;
	}
	n = send(c->fd, &b, 1, MSG_NOSIGNAL);
	if (n == 1) {
		c->sent++;
		return 0;
	}
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
}

/* Input from the server: -1 when it closed the connection. */
static int drain(struct conn *c)
{
	char buf[4096];

	for (;;) {
		if (c->ssl != NULL) {
			int r = SSL_read(c->ssl, buf, sizeof(buf));

			if (r > 0)
				continue;
			r = SSL_get_error(c->ssl, r);
			ERR_clear_error();
			return r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE ? 0 : -1;
		} else {
			ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

			if (n > 0)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return 0;
			return -1;
		}
	}
}

/* The connection is up (or was refused) for the first time. */
static void first_outcome(const struct opts *o, struct conn *c, int i, int *up_once,
			  int *next_to_open)
{
	if (c->established_once)
		return;
	c->established_once = true;
	(*up_once)++;
	if (o->sequential && i == *next_to_open)
		*next_to_open = i + 1;
}

static int run_slow(const struct opts *o, int n_conns)
{
	static struct conn conns[MAX_CONNS];
	static struct pollfd pfd[MAX_CONNS];
	static int closed_ids[MAX_CLOSED_IDS];
	int n_closed_ids = 0, next_to_open = 0, up_once = 0, open_at_end = 0;
	long opened = 0, established = 0, closed_by_server = 0, reconnects = 0, failed = 0;
	double life_min = 1e9, life_max = 0, start = now_sec();
	double end = start + (o->hold > 0 ? o->hold : 120.0), last_report = start;
	bool ready_written = false;

	for (int i = 0; i < n_conns; i++) {
		conns[i].fd = -1;
		conns[i].state = C_FREE;
	}
	while (!stop_requested && now_sec() < end) {
		double t = now_sec();
		int open_now = 0, in_progress = 0;

		for (int i = 0; i < n_conns; i++) {
			open_now += conns[i].state != C_FREE;
			in_progress +=
				conns[i].state == C_CONNECTING || conns[i].state == C_HANDSHAKE;
		}
		if (!o->reconnect && up_once == n_conns && open_now == 0)
			break;
		for (int i = 0; i < n_conns; i++) {
			struct conn *c = &conns[i];

			if (c->state != C_FREE || (c->established_once && !o->reconnect))
				continue;
			if (o->sequential ? (i != next_to_open || in_progress > 0)
					  : in_progress >= 64)
				continue;
			c->fd = open_socket(o, i);
			if (c->fd < 0) {
				failed++;
				continue;
			}
			reconnects += c->established_once;
			opened++;
			in_progress++;
			c->state = C_CONNECTING;
			c->started = t;
			c->sent = 0;
			c->want_write = false;
		}
		if (getenv("SRV_SLOWCLIENT_DEBUG") != NULL &&
		    (long)(t * 2) != (long)(last_report * 2)) {
			fprintf(stderr, "t=%.1f up_once=%d open=%d in_progress=%d failed=%ld\n",
				t - start, up_once, open_now, in_progress, failed);
			last_report = t;
		}
		if (!ready_written && o->ready_file != NULL && up_once == n_conns) {
			FILE *f = fopen(o->ready_file, "w");

			if (f != NULL)
				fclose(f);
			ready_written = true;
		}
		for (int i = 0; i < n_conns; i++) {
			struct conn *c = &conns[i];

			pfd[i].fd = c->fd;
			pfd[i].revents = 0;
			pfd[i].events = c->state == C_CONNECTING ||
							(c->state == C_HANDSHAKE && c->want_write)
						? POLLOUT
						: POLLIN;
			if (c->state == C_FREE)
				pfd[i].fd = -1;
		}
		if (poll(pfd, (nfds_t)n_conns, 20) < 0 && errno != EINTR)
			return 2;
		t = now_sec();
		for (int i = 0; i < n_conns; i++) {
			struct conn *c = &conns[i];
			bool gone = false;

			if (c->state == C_FREE)
				continue;
			if (c->state == C_CONNECTING && pfd[i].revents != 0) {
				if (connected(o, c) != 0) {
					failed++;
					first_outcome(o, c, i, &up_once, &next_to_open);
					conn_close(c);
					continue;
				}
			} else if (c->state == C_HANDSHAKE && pfd[i].revents != 0) {
				int r = handshake(c);

				gone = r < 0;
				if (r > 0)
					c->state = C_DRIBBLE;
			} else if (c->state == C_DRIBBLE && pfd[i].revents != 0) {
				gone = drain(c) < 0;
			}
			if (!gone && c->state == C_DRIBBLE && c->next_byte < c->started) {
				established++;
				first_outcome(o, c, i, &up_once, &next_to_open);
				c->next_byte = t;
			}
			if (!gone && c->state == C_DRIBBLE && t >= c->next_byte) {
				gone = dribble(o, c) < 0;
				c->next_byte = t + o->interval_ms / 1000.0;
			}
			if (gone) {
				double life = t - c->started;

				closed_by_server++;
				life_min = life < life_min ? life : life_min;
				life_max = life > life_max ? life : life_max;
				if (n_closed_ids < MAX_CLOSED_IDS)
					closed_ids[n_closed_ids++] = i;
				first_outcome(o, c, i, &up_once, &next_to_open);
				conn_close(c);
			}
		}
	}
	for (int i = 0; i < n_conns; i++) {
		open_at_end += conns[i].state == C_DRIBBLE;
		conn_close(&conns[i]);
	}
	printf("opened=%ld established=%ld closed_by_server=%ld reconnects=%ld failed=%ld "
	       "life_min_ms=%.0f life_max_ms=%.0f open_at_end=%d seconds=%.1f closed_ids=",
	       opened, established, closed_by_server, reconnects, failed,
	       closed_by_server ? life_min * 1000 : 0, life_max * 1000, open_at_end,
	       now_sec() - start);
	for (int i = 0; i < n_closed_ids; i++)
		printf("%s%d", i ? "," : "", closed_ids[i]);
	printf("\n");
	return 0;
}

/*
 * One GET, on c when it is still open (--keepalive), else on a new
 * connection; the HTTP status, or 0 on failure. c stays open after a
 * complete reply when keepalive is set.
 */
static int probe_once(const struct opts *o, struct conn *c, bool keepalive, double deadline)
{
	char req[512], resp[16384];
	size_t got = 0, req_len, want = 0;
	int status = 0;
	bool sent = false;

	req_len = (size_t)snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n",
				   o->path, keepalive ? "" : "Connection: close\r\n");
	if (c->state == C_FREE) {
		c->fd = open_socket(o, 0);
		if (c->fd < 0)
			return 0;
		c->state = C_CONNECTING;
	}
	while (now_sec() < deadline) {
		struct pollfd p = {.fd = c->fd};
		int ms = (int)((deadline - now_sec()) * 1000) + 1;

		p.events = c->state == C_CONNECTING || (c->state == C_HANDSHAKE && c->want_write) ||
					   (c->state == C_DRIBBLE && !sent)
				   ? POLLOUT
				   : POLLIN;
		if (poll(&p, 1, ms) <= 0)
			continue;
		if (c->state == C_CONNECTING) {
			struct opts plain = *o;

			plain.mode = "head";
			if (connected(&plain, c) != 0)
				break;
			continue;
		}
		if (c->state == C_HANDSHAKE) {
			int r = handshake(c);

			if (r < 0)
				break;
			if (r > 0)
				c->state = C_DRIBBLE;
			continue;
		}
		if (!sent) {
			if (c->ssl != NULL) {
				int r = SSL_write(c->ssl, req, (int)req_len);

				if (r <= 0) {
					r = SSL_get_error(c->ssl, r);
					if (r != SSL_ERROR_WANT_READ && r != SSL_ERROR_WANT_WRITE)
						break;
					continue;
				}
			} else if (send(c->fd, req, req_len, MSG_NOSIGNAL) != (ssize_t)req_len) {
				break;
			}
			sent = true;
			continue;
		}
		{
			int n;
			const char *end;

			if (c->ssl != NULL) {
				n = SSL_read(c->ssl, resp + got, (int)(sizeof(resp) - 1 - got));
				if (n <= 0) {
					int e = SSL_get_error(c->ssl, n);

					if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
						continue;
				}
			} else {
				n = (int)recv(c->fd, resp + got, sizeof(resp) - 1 - got, 0);
				if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
					continue;
			}
			if (n <= 0)
				break;
			got += (size_t)n;
			resp[got] = '\0';
			end = strstr(resp, "\r\n\r\n");
			if (end != NULL && want == 0) {
				const char *cl = strstr(resp, "Content-Length: ");
				long len = cl != NULL && cl < end ? atol(cl + 16) : 0;

				want = (size_t)(end + 4 - resp) + (size_t)(len > 0 ? len : 0);
			}
			if ((want > 0 && got >= want) || got == sizeof(resp) - 1) {
				if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
					status = 0;
				break;
			}
		}
	}
	ERR_clear_error();
	if (!keepalive || status == 0)
		conn_close(c);
	return status;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int run_probe(const struct opts *o)
{
	static double samples[MAX_SAMPLES];
	long n = 0, ok = 0, failed = 0, by_status[6] = {0}, connections = 0;
	double start = now_sec(), end = start + (o->duration > 0 ? o->duration : 1e9);
	struct conn c = {.fd = -1, .state = C_FREE};

	while (n < MAX_SAMPLES && (o->count <= 0 || n < o->count) && now_sec() < end) {
		double t0 = now_sec();
		int status;

		connections += c.state == C_FREE;
		status = probe_once(o, &c, o->keepalive, t0 + o->timeout_ms / 1000.0);
		double ms = (now_sec() - t0) * 1000.0;

		samples[n++] = ms;
		if (status >= 200 && status < 300)
			ok++;
		if (status <= 0)
			failed++;
		by_status[status > 0 && status < 600 ? status / 100 : 0]++;
		if (o->interval_ms > 0) {
			double next = t0 + o->interval_ms / 1000.0;

			while (now_sec() < next)
				usleep(1000);
		}
	}
	conn_close(&c);
	qsort(samples, (size_t)n, sizeof(samples[0]), cmp_double);
	printf("connections=%ld requests=%ld ok=%ld failed=%ld p50_ms=%.1f p99_ms=%.1f max_ms=%.1f "
	       "s2xx=%ld s4xx=%ld s5xx=%ld\n",
	       connections, n, ok, failed, n ? samples[n / 2] : 0,
	       n ? samples[(n * 99 + 99) / 100 - 1] : 0, n ? samples[n - 1] : 0, by_status[2],
	       by_status[4], by_status[5]);
	return 0;
}

static SSL_CTX *make_tls(const char *ca, const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (strcmp(cert, "-") != 0 &&
	    (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	     SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1))
		return NULL;
	return ctx;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: srv_slowclient slow|probe [--tls CA CERT KEY] [--src A,B] "
		"[--mode head|hs] [--interval-ms N] [--hold SEC] [--reconnect] [--sequential] "
		"[--ready FILE] [--path P] [--duration SEC] [--count N] [--timeout-ms N] "
		"[--keepalive] "
		"HOST PORT CONNS|PATH\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct opts o = {.mode = "head", .path = "/", .interval_ms = 1000, .timeout_ms = 5000};
	const char *pos[3];
	int n_pos = 0;
	bool probe;
	char *src_list = NULL;
	int status;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	if (argc < 2)
		return usage();
	probe = strcmp(argv[1], "probe") == 0;
	if (!probe && strcmp(argv[1], "slow") != 0)
		return usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--tls") == 0 && i + 3 < argc) {
			o.tls = make_tls(argv[i + 1], argv[i + 2], argv[i + 3]);
			if (o.tls == NULL) {
				fprintf(stderr, "srv_slowclient: cannot load TLS files\n");
				return 2;
			}
			i += 3;
		} else if (strcmp(a, "--src") == 0 && i + 1 < argc) {
			src_list = argv[++i];
		} else if (strcmp(a, "--mode") == 0 && i + 1 < argc) {
			o.mode = argv[++i];
		} else if (strcmp(a, "--path") == 0 && i + 1 < argc) {
			o.path = argv[++i];
		} else if (strcmp(a, "--interval-ms") == 0 && i + 1 < argc) {
			o.interval_ms = atoi(argv[++i]);
		} else if (strcmp(a, "--timeout-ms") == 0 && i + 1 < argc) {
			o.timeout_ms = atoi(argv[++i]);
		} else if (strcmp(a, "--hold") == 0 && i + 1 < argc) {
			o.hold = atof(argv[++i]);
		} else if (strcmp(a, "--duration") == 0 && i + 1 < argc) {
			o.duration = atof(argv[++i]);
		} else if (strcmp(a, "--count") == 0 && i + 1 < argc) {
			o.count = atol(argv[++i]);
		} else if (strcmp(a, "--ready") == 0 && i + 1 < argc) {
			o.ready_file = argv[++i];
		} else if (strcmp(a, "--keepalive") == 0) {
			o.keepalive = true;
		} else if (strcmp(a, "--reconnect") == 0) {
			o.reconnect = true;
		} else if (strcmp(a, "--sequential") == 0) {
			o.sequential = true;
		} else if (a[0] == '-' || n_pos == 3) {
			return usage();
		} else {
			pos[n_pos++] = a;
		}
	}
	if (n_pos != 3)
		return usage();
	for (char *tok = src_list != NULL ? strtok(src_list, ",") : NULL;
	     tok != NULL && o.n_src < MAX_SRC; tok = strtok(NULL, ","))
		o.src[o.n_src++] = tok;
	o.host = pos[0];
	o.port = atoi(pos[1]);
	if (probe) {
		o.path = pos[2];
		status = run_probe(&o);
	} else {
		int n = atoi(pos[2]);

		status = n <= 0 || n > MAX_CONNS ? usage() : run_slow(&o, n);
	}
	SSL_CTX_free(o.tls);
	return status;
}
