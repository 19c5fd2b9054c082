/* SPDX-License-Identifier: Apache-2.0 */
/* The server's one clock for deadlines and durations (CLOCK_MONOTONIC). */
#include <time.h>

#include "clock-internal.h"

double srv_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
