/* SPDX-License-Identifier: Apache-2.0 */
/* Transport faults of the simulator (ota_sim_faults.h). */
#include <string.h>
#include <time.h>

#include "ota_sim_faults.h"

struct faulty_sink {
	struct ota_sim_faults *f;
	ota_port_sink_fn sink;
	void *sink_arg;
	uint64_t offset; /* where this fetch started */
	uint64_t size; /* the whole image */
	uint64_t received;
	double started;
	bool cut;
};

double ota_sim_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ota_sim_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
	nanosleep(&ts, NULL);
}

static bool stopped(const struct ota_sim_faults *f)
{
	return f->stop && *f->stop;
}

static enum ota_err faulty_put(void *arg, const uint8_t *data, size_t len)
{
	struct faulty_sink *fs = arg;
	struct ota_sim_faults *f = fs->f;
	bool cut = false;
	if (f->power_cut) {
		/* the lights go out half way through the image */
		uint64_t half = fs->size / 2;
		uint64_t at = fs->offset + fs->received;
		if (at + len > half) {
			cut = true;
			len = at < half ? (size_t)(half - at) : 0;
		}
	}
	enum ota_err err = fs->sink(fs->sink_arg, data, len);
	if (err != OTA_OK)
		return err;
	fs->received += len;
	if (cut) {
		/* nothing more is written, nothing is cleaned up */
		f->power_cut = false;
		fs->cut = true;
		return OTA_ERR_STORAGE;
	}
	if (f->slow_rate) {
		double due = fs->started + (double)fs->received / f->slow_rate;
		double wait = due - ota_sim_now_s();
		if (wait > 0 && !stopped(f))
			ota_sim_sleep_ms((unsigned)(wait * 1000.0));
		if (stopped(f))
			return OTA_ERR_TRANSPORT;
	}
	return OTA_OK;
}

enum ota_err ota_sim_faults_fetch(struct ota_sim_faults *f, const struct ota_fetch_request *req,
				  ota_port_sink_fn sink, void *sink_arg,
				  struct ota_fetch_result *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!f->inner_ops || !f->inner_ops->fetch)
		return OTA_ERR_TRANSPORT;
	if (req->what != OTA_FETCH_IMAGE || (!f->power_cut && !f->slow_rate))
		return f->inner_ops->fetch(f->inner_ctx, req, sink, sink_arg, ret);
	struct faulty_sink fs = {.f = f,
				 .sink = sink,
				 .sink_arg = sink_arg,
				 .offset = req->offset,
				 .size = req->offset + req->max_bytes,
				 .started = ota_sim_now_s()};
	enum ota_err err = f->inner_ops->fetch(f->inner_ctx, req, faulty_put, &fs, ret);
	if (fs.cut) {
		f->power_cycle(f->arg);
		ret->restarted = true;
	}
	return err;
}
