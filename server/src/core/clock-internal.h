/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_CLOCK_INTERNAL_H
#define SRV_CLOCK_INTERNAL_H

/* Seconds on the monotonic clock (deadlines, durations). */
double srv_now(void);

#endif
