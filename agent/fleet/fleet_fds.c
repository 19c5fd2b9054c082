/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ota-fleet-sim's file descriptors (fleet_sim.h): the limit it may raise
 * to, how many are open, and whether the next open would fail.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fleet_sim.h"

unsigned long fleet_fds_raise(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = {rl.rlim_max, rl.rlim_max};
		/* a hard limit above what the kernel allows (nr_open) is refused: keep the soft one */
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	return rl.rlim_cur == RLIM_INFINITY ? ULONG_MAX : (unsigned long)rl.rlim_cur;
}

unsigned long fleet_fds_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	return rl.rlim_cur == RLIM_INFINITY ? ULONG_MAX : (unsigned long)rl.rlim_cur;
}

unsigned long fleet_fds_open(void)
{
	DIR *dir = opendir("/proc/self/fd");
	if (!dir)
		return 0;
	unsigned long n = 0;
	for (struct dirent *e = readdir(dir); e; e = readdir(dir)) {
		if (e->d_name[0] != '.')
			n++;
	}
	closedir(dir);
	return n > 0 ? n - 1 : 0; /* the directory's own */
}

bool fleet_fds_exhausted(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return false;
	}
	return errno == EMFILE || errno == ENFILE;
}
