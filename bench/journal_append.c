/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the report journal adds to a report's acknowledgement (issue 19):
 * appends COUNT reports of BYTES of JSON to a fresh journal in DIR with
 * sync on and then off (alternately, ROUNDS times) and prints per append
 * the wall time (median, p99) and the CPU time of this process.
 *
 *   ota-bench-journal DIR [COUNT] [BYTES] [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "journal-internal.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int run(const char *dir, bool sync, unsigned count, size_t bytes)
{
	struct srv_journal_entry e = {0};
	struct srv_journal *j = NULL;
	double *lat = calloc(count, sizeof(*lat));
	double cpu0, wall0;
	char path[4200];

	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	if (lat == NULL || system(path) != 0 || srv_journal_open(dir, sync, 1u << 30, &j) != OTA_OK)
		return 1;
	e.report = malloc(bytes + 1);
	if (e.report == NULL)
		return 1;
	memset(e.report, 'x', bytes);
	e.report[bytes] = '\0';
	e.report_len = bytes;
	snprintf(e.device, sizeof(e.device), "bench-device");
	cpu0 = cpu_s();
	wall0 = now_s();
	for (unsigned i = 0; i < count; i++) {
		double t = now_s();

		e.seq = i + 1;
		if (srv_journal_append(j, &e) != OTA_OK)
			return 1;
		lat[i] = now_s() - t;
	}
	qsort(lat, count, sizeof(*lat), cmp_double);
	printf("sync %-3s: %u appends of %zu bytes in %.2f s: median %.0f us, p99 %.0f us, CPU "
	       "%.0f us "
	       "each\n",
	       sync ? "on" : "off", count, bytes, now_s() - wall0, lat[count / 2] * 1e6,
	       lat[count * 99 / 100] * 1e6, (cpu_s() - cpu0) / count * 1e6);
	srv_journal_close(j);
	free(e.report);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned count = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 2000u;
	size_t bytes = argc > 3 ? strtoul(argv[3], NULL, 10) : 600u;
	unsigned rounds = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 3u;

	if (argc < 2 || count == 0 || bytes == 0 || bytes > SRV_JOURNAL_MAX_REPORT_BYTES) {
		fprintf(stderr, "usage: ota-bench-journal DIR [COUNT] [BYTES] [ROUNDS]\n");
		return 2;
	}
	for (unsigned r = 0; r < rounds; r++) {
		if (run(argv[1], true, count, bytes) != 0 ||
		    run(argv[1], false, count, bytes) != 0) {
			fprintf(stderr, "ota-bench-journal: failed\n");
			return 1;
		}
	}
	return 0;
}
