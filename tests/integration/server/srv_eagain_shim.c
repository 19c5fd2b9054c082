/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An LD_PRELOAD shim for server_write_gather: on the sockets of one local
 * port (SHIM_EAGAIN_PORT, the device listener's) every other write(2) and
 * writev(2) fails with EAGAIN and a writev that goes through writes at
 * most SHIM_SHORT_BYTES of its first buffer, as a socket that is full all
 * the time would. The gathering BIO (server/src/core/wbio.c) then keeps
 * bytes, waits for the socket and holds the bufferevent's write callback
 * at every turn, also in the handshake, not only when a client is slow at
 * the right moment.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define SHIM_SHORT_BYTES 1000u

static unsigned long shim_calls;

static int shim_port(void)
{
	static int port = -1;

	if (port < 0) {
		const char *env = getenv("SHIM_EAGAIN_PORT");

		port = env != NULL ? atoi(env) : 0;
	}
	return port;
}

static int shim_target(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	if (shim_port() == 0 || getsockname(fd, (struct sockaddr *)&sa, &len) != 0 ||
	    sa.sin_family != AF_INET)
		return 0;
	return ntohs(sa.sin_port) == shim_port();
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	static ssize_t (*real)(int, const struct iovec *, int);
	struct iovec first;

	if (real == NULL)
		real = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
	if (iovcnt < 1 || !shim_target(fd))
		return real(fd, iov, iovcnt);
	if (++shim_calls % 2 == 0) {
		errno = EAGAIN;
		return -1;
	}
	first = iov[0];
	if (first.iov_len > SHIM_SHORT_BYTES)
		first.iov_len = SHIM_SHORT_BYTES;
	return real(fd, &first, 1);
}

ssize_t write(int fd, const void *buf, size_t count)
{
	static ssize_t (*real)(int, const void *, size_t);

	if (real == NULL)
		real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (shim_target(fd) && ++shim_calls % 2 == 0) {
		errno = EAGAIN;
		return -1;
	}
	return real(fd, buf, count);
}
