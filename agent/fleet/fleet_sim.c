/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ota-fleet-sim: many devices in one process. Each device has its own
 * certificate (CN = device id), its own state directory with file-backed
 * A/B slots (the Linux port), the agent core for every decision, its own
 * MQTT 5 session over TLS (libmosquitto, every session on the main
 * thread's event loop: fleet_mqtt.c) and the HTTPS delivery client with mutual TLS
 * and SPKI pinning. A pool of worker threads runs what the devices have
 * to do (report, key list, install); a device is never on two workers at
 * once. Faults are injected per device: self-test failure, power loss in
 * the middle of a download, offline after registering, slow download,
 * transient delivery failures (the first N installs fail with
 * OTA_ERR_TRANSPORT: the delivery server is unreachable for them).
 *
 * Like the agent, a device acts on a Notify once: a notification it already
 * saw (its seq, the server's notification id, is not newer than the last
 * one), or one for the campaign and artifact it is installing or has
 * installed, is a duplicate and ignored (MQTT QoS 1 and the server's
 * re-issue after a crash or take-over deliver at least once).
 *
 * The online install policy is `ota-agent run`'s own, the core's
 * (agent/src/online.c), with one agent opened per job from its records
 * instead of one per process; the transport faults wrap the port's fetch
 * (agent/port/sim/sim_faults.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "fleetota-version.h"
#include "fleet_sim.h"
#include "fleetota/agent.h"
#include "fleetota/arena.h"
#include "fleetota/bundle.h"
#include "fleetota/delta.h"
#include "fleetota/limits.h"
#include "fleetota/online.h"
#include "ota.pb-c.h"
#include "ota_https.h"
#include "ota_linux.h"
#include "ota_mqtt.h"
#include "fleet_mqtt.h"
#include "ota_sim_faults.h"

#define ID_MAX OTA_MAX_DEVICE_ID_BYTES
#define ARTIFACT_MAX OTA_ONLINE_ARTIFACT_MAX
#define MAX_ARTIFACTS 32u
#define CHUNK_BYTES (16u * 1024u)
#define SELFTEST_MARKER "FLEETOTA-SELFTEST-FAIL"
#define SLOT_READ_MAX (64u * 1024u * 1024u)
/* Threads beyond --workers for those lent to slow links (each holds its work areas). */
#define POOL_SPARE_MAX 256u
/* Sessions in their connect (TCP, TLS, CONNACK) at once, per process. */
#define CONNECTING_MAX 64u
/*
 * File descriptors (measured: docs/scaling.md). A device holds 3 for as
 * long as it runs: its MQTT session's TLS socket and the socket pair
 * libmosquitto 2.0 opens at connect to wake a loop of its own (an
 * external loop never reads it; libmosquitto 2.1's
 * MOSQ_OPT_DISABLE_SOCKETPAIR drops it). Its HTTPS connection, slot and
 * record files are open only during a job, so they count per worker
 * thread: the connection, the two slot files, a record or the TLS
 * session file, with one to spare, and the two slot files the job keeps
 * open for reading (session_slot_read). The reserve is for what opens
 * descriptors besides: the event loop, the summary, OpenSSL's files.
 */
#define FDS_PER_DEVICE 3u
#define FDS_PER_THREAD 8u
/* what session_slot_read reads at once: the core hashes slots 4 KiB at a time */
#define SLOT_READAHEAD_BYTES (64u * 1024u)
#define FDS_RESERVE 32u

struct fleet_options {
	unsigned devices;
	const char *prefix;
	unsigned first_index;
	const char *pki;
	const char *state_dir;
	const char *server_url;
	const char *broker_url;
	const char *model;
	const char *hw_revision;
	const char *rootlist;
	const char *keylist;
	const char *image;
	const char *product_key; /* encrypted images: the product line's key, or NULL */
	uint64_t slot_size;
	unsigned workers;
	unsigned connect_rate;
	unsigned duration_s;
	unsigned progress_s;
	unsigned report_interval_s;
	unsigned stall_timeout_s;
	unsigned slow_rate;
	double selftest_fail;
	double power_loss;
	double offline;
	double slow;
	double transient;
	double no_delta;
	unsigned transient_count;
	unsigned seed;
	const char *summary_json;
	const char *notify_log;
	const char *start_file; /* the ramp waits for it to exist (several processes at once) */
	bool issue_only;
	bool provision_each; /* every new device through the core, not the golden copy */
};

struct fleet_device {
	char id[ID_MAX + 1];
	/* injected faults, fixed at start */
	bool offline;
	bool slow;
	bool selftest_fails;
	bool power_loss;
	unsigned transient_left; /* installs still to fail (worker holding the device) */
	bool transient;
	bool no_delta; /* no delta work area: refuses deltas, takes the full image */
	/* the worker that holds the device touches these; no lock needed */
	bool power_lost;
	double offline_at; /* when an offline device leaves (0: not yet known) */
	struct fleet_mq_session *mqtt; /* the loop's; workers only publish */
	uint64_t report_seq;
	char version[OTA_AGENT_VERSION_BYTES];
	/* under fleet.lock */
	bool queued;
	bool busy;
	bool want_provision;
	bool want_report;
	bool want_keylist;
	bool want_rootlist;
	bool want_firmware;
	bool connected_once;
	char next_artifact[ARTIFACT_MAX + 1];
	char next_campaign[ARTIFACT_MAX + 1];
	/* duplicate suppression, under fleet.lock */
	uint64_t last_seq;
	bool installing;
	char job_artifact[ARTIFACT_MAX + 1]; /* the install a worker runs */
	char job_campaign[ARTIFACT_MAX + 1];
	char done_artifact[ARTIFACT_MAX + 1]; /* the last confirmed install */
	char done_campaign[ARTIFACT_MAX + 1];
};

struct artifact_stats {
	char name[ARTIFACT_MAX + 1];
	unsigned confirmed;
	unsigned reverted;
	unsigned by_err[2][OTA__ERR_COUNT]; /* [0] rejected, [1] failed */
};

struct fleet {
	struct fleet_options opt;
	struct fleet_device *devices;
	uint8_t *factory_bundle;
	size_t factory_bundle_len;
	uint8_t server_pins[OTA_CONFIG_MAX_PINS][OTA_SHA256_BYTES];
	size_t n_pins;
	char ca_file[OTA_CONFIG_MAX_PATH];

	pthread_mutex_t lock;
	pthread_cond_t wake;
	unsigned *queue; /* ring of device indices, each at most once */
	unsigned q_head;
	unsigned q_len;
	unsigned busy_workers;
	/*
	 * The pool: `workers` threads take queued jobs; one that waits on a
	 * slow link (a slow device's download, a power cut's reboot) is lent
	 * out, and a spare thread takes its place, so the threads serving the
	 * queue stay `workers` however many devices are slow.
	 */
	struct worker *pool; /* pool_cap slots */
	unsigned pool_cap;
	unsigned threads; /* running worker threads */
	unsigned lent; /* of which waiting on a slow link */
	unsigned threads_peak;
	bool pool_closed; /* stopping: no more threads */

	pthread_mutex_t stats_lock;
	struct artifact_stats artifacts[MAX_ARTIFACTS];
	unsigned n_artifacts;
	unsigned offline_total; /* devices picked to go offline */
	unsigned offline_gone; /* main thread only */
	atomic_uint provisioned;
	atomic_uint provision_failed;
	atomic_uint connected;
	atomic_uint reports;
	atomic_uint keylist_updates;
	atomic_uint power_cuts;
	atomic_uint confirmed_total;
	atomic_uint reverted_total;
	atomic_uint rejected_total;
	atomic_uint failed_total;
	atomic_uint downloading;
	atomic_uint transient_injected;
	atomic_bool out_of_fds; /* a job could not open a descriptor (EMFILE, ENFILE) */
	unsigned long fd_limit; /* RLIMIT_NOFILE in force */
	unsigned long fds_peak; /* the most seen open (progress lines, the end of the run) */
	unsigned sessions_started; /* MQTT sessions the ramp started (the loop's thread) */
	bool failed; /* the run stopped on an error: the exit status is 1 */
	unsigned notify_duplicates; /* under lock */
	double registered_s; /* every session connected once, after the ramp began (loop) */
	struct event_base *base;
	struct fleet_mq *mq; /* every device's MQTT session, on the main thread's loop */
	FILE *notify_log; /* under lock */
	/* the first new device's state after the core provisioned it; NULL: none */
	struct fleet_golden *golden;
	char golden_version[OTA_AGENT_VERSION_BYTES];
	atomic_uint provisioned_by_core; /* devices the core provisioned this run */
	atomic_uint cloned; /* devices made as the golden's copy */
};

/* One job's view of a device: its port and core, opened from its records. */
struct session {
	struct ota_linux_port lp; /* first: the self-test hook gets &lp as ctx */
	struct fleet *fleet;
	struct fleet_device *dev;
	struct ota_config config;
	struct ota_port_ops ops;
	struct ota_port port;
	struct ota_agent agent;
	uint8_t *work;
	uint8_t *delta_work; /* the worker's, OTA_DELTA_WORK_BYTES; NULL: no deltas */
	struct ota_https https;
	bool https_ready;
	struct ota_sim_faults faults; /* around the Linux port's fetch */
	struct ota_online online; /* the core's install policy, its artifact and campaign */
	uint8_t online_work[OTA_ONLINE_WORK_BYTES];
	/* session_slot_read: each slot file opened once a job, read 64 KiB at a time */
	const struct ota_port_ops *lx_ops; /* the Linux port's own */
	int slot_fd[OTA_SLOT_COUNT]; /* -1: not open */
	uint8_t *ra; /* SLOT_READAHEAD_BYTES, or NULL */
	unsigned ra_slot;
	uint64_t ra_off;
	size_t ra_len; /* 0: nothing read ahead */
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static double now_s(void)
{
	return ota_sim_now_s();
}

static void sleep_ms(unsigned ms)
{
	ota_sim_sleep_ms(ms);
}

/* Sleeps s seconds unless a stop is requested first. */
static void sleep_s(unsigned s)
{
	for (unsigned i = 0; i < s * 10u && !stop_requested; i++)
		sleep_ms(100);
}

static int read_file(const char *path, size_t max, uint8_t **ret_buf, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	uint8_t *buf = malloc(max + 1);
	size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
	bool bad = !buf || ferror(f) || n > max;
	fclose(f);
	if (bad) {
		free(buf);
		return -1;
	}
	*ret_buf = buf;
	*ret_len = n;
	return 0;
}

/* ---- the work queue ----------------------------------------------------- */

static bool dev_has_work(const struct fleet_device *d)
{
	return d->want_provision || d->want_report || d->want_keylist || d->want_rootlist ||
	       d->want_firmware;
}

/* Under fleet->lock. */
static void enqueue_locked(struct fleet *fleet, unsigned idx)
{
	struct fleet_device *d = &fleet->devices[idx];
	if (d->queued || d->busy)
		return;
	d->queued = true;
	fleet->queue[(fleet->q_head + fleet->q_len) % fleet->opt.devices] = idx;
	fleet->q_len++;
	pthread_cond_signal(&fleet->wake);
}

/* ---- statistics ------------------------------------------------------------ */

static struct artifact_stats *artifact_stats_locked(struct fleet *fleet, const char *name)
{
	for (unsigned i = 0; i < fleet->n_artifacts; i++) {
		if (strcmp(fleet->artifacts[i].name, name) == 0)
			return &fleet->artifacts[i];
	}
	if (fleet->n_artifacts == MAX_ARTIFACTS)
		return NULL;
	struct artifact_stats *a = &fleet->artifacts[fleet->n_artifacts++];
	snprintf(a->name, sizeof(a->name), "%s", name);
	return a;
}

enum outcome { OUT_CONFIRMED, OUT_REVERTED, OUT_REJECTED, OUT_FAILED };

static void count_outcome(struct fleet *fleet, const char *artifact, enum outcome outcome,
			  enum ota_err err)
{
	switch (outcome) {
	case OUT_CONFIRMED:
		atomic_fetch_add(&fleet->confirmed_total, 1);
		break;
	case OUT_REVERTED:
		atomic_fetch_add(&fleet->reverted_total, 1);
		break;
	case OUT_REJECTED:
		atomic_fetch_add(&fleet->rejected_total, 1);
		break;
	case OUT_FAILED:
		atomic_fetch_add(&fleet->failed_total, 1);
		break;
	}
	pthread_mutex_lock(&fleet->stats_lock);
	struct artifact_stats *a = artifact_stats_locked(fleet, artifact[0] ? artifact : "-");
	if (a) {
		if (outcome == OUT_CONFIRMED)
			a->confirmed++;
		else if (outcome == OUT_REVERTED)
			a->reverted++;
		else if ((unsigned)err < OTA__ERR_COUNT)
			a->by_err[outcome == OUT_FAILED][err]++;
	}
	pthread_mutex_unlock(&fleet->stats_lock);
}

/* ---- the worker pool ----------------------------------------------------------- */

enum worker_state { WORKER_FREE, WORKER_RUNNING, WORKER_EXITED };

struct worker {
	struct fleet *fleet;
	pthread_t thread;
	enum worker_state state; /* under fleet->lock */
	uint8_t *work; /* the thread's own */
	uint8_t *delta_work;
};

static void *worker_main(void *arg);

/* Under fleet->lock: one more thread, in a free slot (an exited one is joined first). */
static bool pool_spawn_locked(struct fleet *fleet)
{
	if (fleet->pool_closed)
		return false;
	for (unsigned i = 0; i < fleet->pool_cap; i++) {
		struct worker *w = &fleet->pool[i];
		if (w->state == WORKER_RUNNING)
			continue;
		if (w->state == WORKER_EXITED)
			pthread_join(w->thread, NULL); /* it only returns, lock released */
		w->state = WORKER_FREE;
		w->fleet = fleet;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
			return false;
		w->state = WORKER_RUNNING;
		fleet->threads++;
		if (fleet->threads > fleet->threads_peak)
			fleet->threads_peak = fleet->threads;
		return true;
	}
	return false; /* every slot taken: the queue waits for a thread to come back */
}

/* This thread waits on a slow link from now on: another takes its place at the queue. */
static void pool_lend(struct fleet *fleet)
{
	pthread_mutex_lock(&fleet->lock);
	fleet->lent++;
	if (!stop_requested && fleet->threads - fleet->lent < fleet->opt.workers)
		(void)pool_spawn_locked(fleet);
	pthread_mutex_unlock(&fleet->lock);
}

static void pool_return(struct fleet *fleet)
{
	pthread_mutex_lock(&fleet->lock);
	fleet->lent--;
	pthread_mutex_unlock(&fleet->lock);
}

/* Stops every thread (stop_requested is set) and joins them. */
static void pool_join(struct fleet *fleet)
{
	pthread_mutex_lock(&fleet->lock);
	fleet->pool_closed = true;
	pthread_cond_broadcast(&fleet->wake);
	pthread_mutex_unlock(&fleet->lock);
	for (unsigned i = 0; i < fleet->pool_cap; i++) {
		/* the pool is closed: states only move from RUNNING to EXITED */
		pthread_mutex_lock(&fleet->lock);
		enum worker_state st = fleet->pool[i].state;
		pthread_mutex_unlock(&fleet->lock);
		if (st != WORKER_FREE)
			pthread_join(fleet->pool[i].thread, NULL);
		fleet->pool[i].state = WORKER_FREE;
	}
}

/* ---- the port: Linux slots and records, the simulator's self-test ---------- */

/*
 * The application self-test of the image on trial: fails for devices
 * picked by --selftest-fail, and on every device for an image that
 * carries the marker (the demo's buggy 1.1.0) — the bug is in the image.
 */
static enum ota_err sim_selftest(void *ctx, unsigned slot)
{
	struct session *s = ctx;
	char path[OTA_CONFIG_MAX_PATH + 32];
	if (s->dev->selftest_fails)
		return OTA_ERR_SELFTEST;
	ota_linux_slot_path(&s->lp, slot, path, sizeof(path));
	FILE *f = fopen(path, "rb");
	if (!f)
		return OTA_ERR_SELFTEST;
	static const char marker[] = SELFTEST_MARKER;
	const size_t mlen = sizeof(marker) - 1;
	uint8_t buf[CHUNK_BYTES + sizeof(marker)];
	size_t keep = 0;
	size_t total = 0;
	enum ota_err result = OTA_OK;
	for (;;) {
		size_t n = fread(buf + keep, 1, CHUNK_BYTES, f);
		if (n == 0)
			break;
		total += n;
		size_t have = keep + n;
		/* memchr finds the candidates (one in 256 bytes of an image) */
		for (const uint8_t *p = buf; have - (size_t)(p - buf) >= mlen;) {
			p = memchr(p, marker[0], have - mlen + 1 - (size_t)(p - buf));
			if (!p)
				break;
			if (memcmp(p, marker, mlen) == 0) {
				result = OTA_ERR_SELFTEST;
				goto out;
			}
			p++;
		}
		keep = have < mlen - 1 ? have : mlen - 1;
		memmove(buf, buf + have - keep, keep);
		if (total > SLOT_READ_MAX)
			break;
	}
out:
	fclose(f);
	return result;
}

static void session_close(struct session *s)
{
	ota_agent_close(&s->agent);
	for (unsigned i = 0; i < OTA_SLOT_COUNT; i++) {
		if (s->slot_fd[i] >= 0)
			close(s->slot_fd[i]);
		s->slot_fd[i] = -1;
	}
	free(s->ra);
	s->ra = NULL;
	s->ra_len = 0;
	if (s->https_ready)
		ota_https_free(&s->https);
	s->https_ready = false;
}

static enum ota_err session_https(struct session *s);

/* The port's fetch: the HTTPS client made on first use, through the device's faults. */
static enum ota_err session_fetch(void *ctx, const struct ota_fetch_request *req,
				  ota_port_sink_fn sink, void *sink_arg,
				  struct ota_fetch_result *ret)
{
	struct session *s = ctx;
	memset(ret, 0, sizeof(*ret));
	enum ota_err err = session_https(s);
	if (err != OTA_OK)
		return err;
	/* a slow link's download holds this thread, not a place at the queue */
	bool slow = s->faults.slow_rate && req->what == OTA_FETCH_IMAGE;
	if (slow)
		pool_lend(s->fleet);
	err = ota_sim_faults_fetch(&s->faults, req, sink, sink_arg, ret);
	if (slow)
		pool_return(s->fleet);
	return err;
}

/* The slot file, read and write, for the rest of the job (a read does not create it). */
static bool slot_open(struct session *s, unsigned slot, int create)
{
	char path[OTA_CONFIG_MAX_PATH + 32];
	ota_linux_slot_path(&s->lp, slot, path, sizeof(path));
	s->slot_fd[slot] = open(path, O_RDWR | O_CLOEXEC | create, 0600);
	return s->slot_fd[slot] >= 0;
}

/*
 * The port's slot_read, as the Linux port does it (the same file, the same
 * bytes, OTA_ERR_STORAGE for a short read) but without an open and close
 * for each of the core's 4 KiB hash chunks (256 per MiB installed; the
 * port's slot_write likewise opens the file for each 16 KiB written): the
 * slot file stays open for the job and is read 64 KiB ahead. A write or
 * an erase of the slot drops what was read ahead; slot files are only
 * ever rewritten in place (O_TRUNC on erase), so the open file stays
 * theirs. With async slot writes (not the simulator's) the port's own.
 */
static enum ota_err session_slot_read(void *ctx, unsigned slot, uint64_t off, void *buf, size_t len)
{
	struct session *s = ctx;
	if (slot >= OTA_SLOT_COUNT || s->lp.async_slot_writes)
		return s->lx_ops->slot_read(&s->lp, slot, off, buf, len);
	if (s->ra_len && s->ra_slot == slot && off >= s->ra_off && off - s->ra_off <= s->ra_len &&
	    len <= s->ra_len - (off - s->ra_off)) {
		memcpy(buf, s->ra + (off - s->ra_off), len);
		return OTA_OK;
	}
	if (s->slot_fd[slot] < 0 && !slot_open(s, slot, 0))
		return OTA_ERR_STORAGE;
	size_t done = 0;
	if (len >= SLOT_READAHEAD_BYTES || (!s->ra && !(s->ra = malloc(SLOT_READAHEAD_BYTES))))
		return ota_linux_pread_all(s->slot_fd[slot], buf, len, off, &done) && done == len
			       ? OTA_OK
			       : OTA_ERR_STORAGE;
	s->ra_len = 0;
	if (!ota_linux_pread_all(s->slot_fd[slot], s->ra, SLOT_READAHEAD_BYTES, off, &done) ||
	    done < len)
		return OTA_ERR_STORAGE;
	s->ra_slot = slot;
	s->ra_off = off;
	s->ra_len = done;
	memcpy(buf, s->ra, len);
	return OTA_OK;
}

/* The port's slot_write (the same checks and bytes) through the job's open file. */
static enum ota_err session_slot_write(void *ctx, unsigned slot, uint64_t off, const void *buf,
				       size_t len)
{
	struct session *s = ctx;
	if (slot >= OTA_SLOT_COUNT || s->lp.async_slot_writes)
		return s->lx_ops->slot_write(&s->lp, slot, off, buf, len);
	if (s->ra_slot == slot)
		s->ra_len = 0;
	if (off > s->lp.slot_size || len > s->lp.slot_size - off)
		return OTA_ERR_INVALID_ARG;
	if (s->slot_fd[slot] < 0 && !slot_open(s, slot, O_CREAT))
		return OTA_ERR_STORAGE;
	return ota_linux_pwrite_all(s->slot_fd[slot], buf, len, off) ? OTA_OK : OTA_ERR_STORAGE;
}

static enum ota_err session_slot_erase(void *ctx, unsigned slot)
{
	struct session *s = ctx;
	if (s->ra_slot == slot)
		s->ra_len = 0;
	return s->lx_ops->slot_erase(&s->lp, slot);
}

/* The core's configuration: a device without the delta work area refuses deltas. */
static struct ota_agent_config session_agent_config(const struct session *s)
{
	return (struct ota_agent_config){.model = s->config.model,
					 .hw_revision = s->config.hw_revision,
					 .delta_work = s->delta_work,
					 .delta_work_len =
						 s->delta_work ? OTA_DELTA_WORK_BYTES : 0};
}

static enum ota_err session_open(struct session *s, struct fleet *fleet, struct fleet_device *dev,
				 uint8_t *work, uint8_t *delta_work)
{
	const struct fleet_options *o = &fleet->opt;
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < OTA_SLOT_COUNT; i++)
		s->slot_fd[i] = -1;
	s->fleet = fleet;
	s->dev = dev;
	s->work = work;
	s->delta_work = dev->no_delta ? NULL : delta_work;
	struct ota_config *c = &s->config;
	snprintf(c->state_dir, sizeof(c->state_dir), "%s/%s", o->state_dir, dev->id);
	snprintf(c->device_id, sizeof(c->device_id), "%s", dev->id);
	snprintf(c->model, sizeof(c->model), "%s", o->model);
	snprintf(c->hw_revision, sizeof(c->hw_revision), "%s", o->hw_revision);
	snprintf(c->server_url, sizeof(c->server_url), "%s", o->server_url ? o->server_url : "");
	snprintf(c->ca_file, sizeof(c->ca_file), "%s", fleet->ca_file);
	snprintf(c->device_cert, sizeof(c->device_cert), "%s/devices/%s.crt", o->pki, dev->id);
	snprintf(c->device_key, sizeof(c->device_key), "%s/devices/%s.key", o->pki, dev->id);
	memcpy(c->server_pins, fleet->server_pins, sizeof(c->server_pins));
	c->n_server_pins = fleet->n_pins;
	c->slot_size = o->slot_size;
	snprintf(c->product_key, sizeof(c->product_key), "%s",
		 o->product_key ? o->product_key : "");
	c->stall_timeout_s = o->stall_timeout_s;
	c->download_retries = 5;
	enum ota_err err = ota_linux_port_open(&s->lp, c, &s->port);
	if (err != OTA_OK)
		return err;
	s->lp.quiet = true;
	s->lp.https = &s->https;
	s->lp.server_url = c->server_url;
	s->lp.stop = &stop_requested;
	s->faults.inner_ops = s->port.ops;
	s->faults.inner_ctx = &s->lp;
	s->ops = *s->port.ops;
	s->lx_ops = s->port.ops;
	s->ops.selftest = sim_selftest;
	s->ops.fetch = session_fetch;
	s->ops.slot_read = session_slot_read;
	s->ops.slot_write = session_slot_write;
	s->ops.slot_erase = session_slot_erase;
	s->port.ops = &s->ops;
	s->port.ctx = s;
	struct ota_agent_config acfg = session_agent_config(s);
	return ota_agent_init(&s->agent, &s->port, &acfg, work, OTA_AGENT_WORK_BYTES);
}

static enum ota_err session_https(struct session *s)
{
	char err[256];
	if (s->https_ready)
		return OTA_OK;
	struct ota_https_config hc = {
		.ca_file = s->config.ca_file,
		.cert_file = s->config.device_cert,
		.key_file = s->config.device_key,
		.pins = (const uint8_t(*)[OTA_SHA256_BYTES])s->config.server_pins,
		.n_pins = s->config.n_server_pins,
		.stall_timeout_s = s->config.stall_timeout_s};
	if (ota_https_init(&s->https, &hc, err, sizeof(err)) != OTA_OK) {
		fprintf(stderr, "ota-fleet-sim: %s: https: %s\n", s->dev->id, err);
		return OTA_ERR_TRANSPORT;
	}
	s->https_ready = true;
	return OTA_OK;
}

/* ---- the online policy's hooks (fleetota/online.h, as `ota-agent run`) ----- */

static bool stopping(void *arg)
{
	(void)arg;
	return stop_requested != 0;
}

static bool report_begin(void *arg, const struct ota_agent_status *st, uint64_t *seq)
{
	struct session *s = arg;
	if (st->confirmed.valid)
		snprintf(s->dev->version, sizeof(s->dev->version), "%s", st->confirmed.version);
	if (!s->dev->mqtt)
		return false;
	s->dev->report_seq++;
	*seq = s->dev->report_seq;
	return true;
}

static void report_send(void *arg, const uint8_t *buf, size_t len)
{
	struct session *s = arg;
	if (fleet_mq_publish(s->dev->mqtt, buf, len) == OTA_OK)
		atomic_fetch_add(&s->fleet->reports, 1);
}

static void note(void *arg, enum ota_online_note what, enum ota_err err)
{
	struct session *s = arg;
	switch (what) {
	case OTA_ONLINE_CONFIRMED:
		count_outcome(s->fleet, s->online.artifact, OUT_CONFIRMED, err);
		break;
	case OTA_ONLINE_REVERTED:
		count_outcome(s->fleet, s->online.artifact, OUT_REVERTED, err);
		break;
	case OTA_ONLINE_REJECTED:
		count_outcome(s->fleet, s->online.artifact, OUT_REJECTED, err);
		break;
	case OTA_ONLINE_FAILED:
		count_outcome(s->fleet, s->online.artifact, OUT_FAILED, err);
		break;
	case OTA_ONLINE_KEYLIST_UPDATED:
		atomic_fetch_add(&s->fleet->keylist_updates, 1);
		break;
	case OTA_ONLINE_DOWNLOAD_START:
		atomic_fetch_add(&s->fleet->downloading, 1);
		break;
	case OTA_ONLINE_DOWNLOAD_END:
		atomic_fetch_sub(&s->fleet->downloading, 1);
		break;
	case OTA_ONLINE_RETRY:
		break; /* quiet: a fleet has many */
	}
}

/* A power cut: the core is dropped as it was; the device boots again. */
static void power_cycle(void *arg)
{
	struct session *s = arg;
	unsigned slot = 0;
	s->dev->power_lost = true;
	atomic_fetch_add(&s->fleet->power_cuts, 1);
	ota_agent_close(&s->agent);
	struct ota_agent_config acfg = session_agent_config(s);
	if (ota_agent_init(&s->agent, &s->port, &acfg, s->work, OTA_AGENT_WORK_BYTES) == OTA_OK)
		(void)ota_agent_boot(&s->agent, &slot);
	pool_lend(s->fleet);
	sleep_s(1);
	pool_return(s->fleet);
	ota_online_report(&s->online, ota_online_idle_state(&s->agent));
}

/* The flow as this device runs it: always its self-test, its faults. */
static void session_online(struct session *s)
{
	struct fleet_device *dev = s->dev;
	s->faults.power_cut = dev->power_loss && !dev->power_lost;
	s->faults.slow_rate = dev->slow ? s->fleet->opt.slow_rate : 0;
	s->faults.stop = &stop_requested;
	s->faults.power_cycle = power_cycle;
	s->faults.arg = s;
	s->online = (struct ota_online){
		.agent = &s->agent,
		.device_id = s->config.device_id,
		.model = s->config.model,
		.hw_revision = s->config.hw_revision,
		.download_retries = s->config.download_retries,
		.selftest = true,
		.stop_aborts = true,
		.work = s->online_work,
		.arg = s,
		.stopping = stopping,
		.report_begin = report_begin,
		.report_send = report_send,
		.note = note,
	};
}

/* ---- provisioning: the factory step ------------------------------------------ */

static enum ota_err provision(struct session *s)
{
	struct fleet *fleet = s->fleet;
	uint8_t *root = NULL;
	uint8_t *kl = NULL;
	size_t root_len = 0;
	size_t kl_len = 0;
	enum ota_err err = OTA_ERR_STORAGE;
	unsigned slot = 0;
	uint32_t header_len = 0;
	if (read_file(fleet->opt.rootlist, OTA_MAX_ENVELOPE_BYTES, &root, &root_len) != 0 ||
	    read_file(fleet->opt.keylist, OTA_MAX_ENVELOPE_BYTES, &kl, &kl_len) != 0)
		goto out;
	err = ota_agent_provision(&s->agent, root, root_len, kl, kl_len);
	if (err != OTA_OK || !fleet->factory_bundle)
		goto out;
	/* the factory image: verified like any other, then made permanent */
	err = ota_bundle_prefix_parse(fleet->factory_bundle, &header_len);
	if (err != OTA_OK ||
	    fleet->factory_bundle_len < OTA_BUNDLE_PREFIX_BYTES + (size_t)header_len) {
		err = OTA_ERR_FORMAT;
		goto out;
	}
	err = ota_agent_begin_bundle(&s->agent, fleet->factory_bundle + OTA_BUNDLE_PREFIX_BYTES,
				     header_len);
	if (err != OTA_OK)
		goto out;
	size_t image_at = OTA_BUNDLE_PREFIX_BYTES + header_len;
	err = ota_agent_write(&s->agent, fleet->factory_bundle + image_at,
			      fleet->factory_bundle_len - image_at);
	if (err == OTA_OK)
		err = ota_agent_finish(&s->agent);
	if (err == OTA_OK)
		err = ota_agent_boot(&s->agent, &slot);
	if (err == OTA_OK)
		err = ota_agent_confirm(&s->agent);
out:
	free(root);
	free(kl);
	return err;
}

/* ---- MQTT: on Paho's threads, only hand over -------------------------------- */

struct mqtt_ctx {
	struct fleet *fleet;
	unsigned idx;
};

static struct mqtt_ctx *mqtt_ctxs;

/*
 * Under fleet->lock. A notification already seen, or a firmware one for
 * the install (campaign and artifact) that is queued, running or done.
 */
static bool notify_duplicate_locked(struct fleet_device *d, const Fleetota__V1__Notify *n)
{
	const struct ota_online_install_ref busy[] = {
		{d->want_firmware ? d->next_artifact : NULL, d->next_campaign},
		{d->installing ? d->job_artifact : NULL, d->job_campaign},
		{d->done_artifact, d->done_campaign},
	};
	return ota_online_notify_duplicate(&d->last_seq, n, busy, sizeof(busy) / sizeof(busy[0]));
}

static void on_cmd(void *arg, const uint8_t *payload, size_t len)
{
	struct mqtt_ctx *mc = arg;
	struct fleet *fleet = mc->fleet;
	struct fleet_device *d = &fleet->devices[mc->idx];
	uint8_t mem[OTA_MAX_MQTT_PAYLOAD_BYTES * 2];
	struct ota_arena arena;
	ota_arena_init(&arena, mem, sizeof(mem));
	Fleetota__V1__Notify *n = fleetota__v1__notify__unpack(&arena.allocator, len, payload);
	if (!n)
		return;
	pthread_mutex_lock(&fleet->lock);
	const char *campaign = n->campaign_id ? n->campaign_id : "";
	bool duplicate = notify_duplicate_locked(d, n);
	if (fleet->notify_log) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		fprintf(fleet->notify_log, "%lld %s %" PRIu64 " %.128s %d %s\n",
			(long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, d->id, n->seq,
			campaign[0] ? campaign : "-", (int)n->kind,
			duplicate ? "duplicate" : "act");
	}
	if (duplicate) {
		fleet->notify_duplicates++;
		pthread_mutex_unlock(&fleet->lock);
		return;
	}
	switch (n->kind) {
	case FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_FIRMWARE:
		if (n->artifact && ota_online_artifact_ok(n->artifact)) {
			snprintf(d->next_artifact, sizeof(d->next_artifact), "%s", n->artifact);
			snprintf(d->next_campaign, sizeof(d->next_campaign), "%.128s", campaign);
			d->want_firmware = true;
		}
		break;
	case FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_KEYLIST:
		d->want_keylist = true;
		break;
	case FLEETOTA__V1__NOTIFY_KIND__NOTIFY_KIND_ROOTLIST:
		d->want_rootlist = true;
		break;
	default:
		d->want_report = true;
		break;
	}
	enqueue_locked(fleet, mc->idx);
	pthread_mutex_unlock(&fleet->lock);
}

static void on_connected(void *arg)
{
	struct mqtt_ctx *mc = arg;
	struct fleet *fleet = mc->fleet;
	struct fleet_device *d = &fleet->devices[mc->idx];
	pthread_mutex_lock(&fleet->lock);
	if (!d->connected_once) {
		d->connected_once = true;
		atomic_fetch_add(&fleet->connected, 1);
	}
	d->want_report = true;
	enqueue_locked(fleet, mc->idx);
	pthread_mutex_unlock(&fleet->lock);
}

/* ---- workers ------------------------------------------------------------------ */

struct job {
	bool provision;
	bool report;
	bool keylist;
	bool rootlist;
	bool firmware;
	char artifact[ARTIFACT_MAX + 1];
	char campaign[ARTIFACT_MAX + 1];
};

/* Runs one job; true when it installed and confirmed firmware. */
static bool run_job(struct fleet *fleet, struct fleet_device *dev, const struct job *job,
		    uint8_t *work, uint8_t *delta_work)
{
	bool confirmed = false;
	if (job->provision && fleet->golden) {
		/* a new device is the golden's copy; one that exists is opened as ever */
		char dir[FLEET_PATH_MAX];
		struct stat st;
		snprintf(dir, sizeof(dir), "%s/%s", fleet->opt.state_dir, dev->id);
		if (stat(dir, &st) != 0 && errno == ENOENT) {
			if (fleet_golden_clone(fleet->golden, dir) != 0) {
				if (fleet_fds_exhausted())
					atomic_store(&fleet->out_of_fds, true);
				fprintf(stderr, "ota-fleet-sim: %s: provisioning: copy of %s: %s\n",
					dev->id, fleet->devices[0].id, strerror(errno));
				atomic_fetch_add(&fleet->provision_failed, 1);
				return false;
			}
			snprintf(dev->version, sizeof(dev->version), "%s", fleet->golden_version);
			atomic_fetch_add(&fleet->cloned, 1);
			atomic_fetch_add(&fleet->provisioned, 1);
			return false;
		}
	}
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return false;
	enum ota_err err = session_open(s, fleet, dev, work, delta_work);
	if (err != OTA_OK) {
		if (fleet_fds_exhausted())
			atomic_store(&fleet->out_of_fds, true);
		fprintf(stderr, "ota-fleet-sim: %s: state unusable: %s\n", dev->id,
			ota_err_name(err));
		if (job->provision)
			atomic_fetch_add(&fleet->provision_failed, 1);
		goto out;
	}
	/*
	 * Records that could not be opened for want of a descriptor read as
	 * damaged: the job does nothing (no report of a lost state, no
	 * rebuild) and the run stops.
	 */
	if (s->agent.state_lost && fleet_fds_exhausted()) {
		atomic_store(&fleet->out_of_fds, true);
		if (job->provision)
			atomic_fetch_add(&fleet->provision_failed, 1);
		goto out;
	}
	if (job->provision) {
		if (!s->agent.state.provisioned) {
			err = provision(s);
			if (err != OTA_OK) {
				fprintf(stderr, "ota-fleet-sim: %s: provisioning: %s\n", dev->id,
					ota_err_name(err));
				atomic_fetch_add(&fleet->provision_failed, 1);
				goto out;
			}
			atomic_fetch_add(&fleet->provisioned_by_core, 1);
		}
		struct ota_agent_status st;
		ota_agent_status(&s->agent, &st);
		if (st.confirmed.valid)
			snprintf(dev->version, sizeof(dev->version), "%s", st.confirmed.version);
		atomic_fetch_add(&fleet->provisioned, 1);
		goto out;
	}
	session_online(s);
	/* a restart left an update pending or on trial: finish what was started */
	ota_online_resume(&s->online);
	ota_online_update_lists(&s->online, job->rootlist, job->keylist);
	if (job->firmware) {
		snprintf(s->online.campaign, sizeof(s->online.campaign), "%s", job->campaign);
		if (dev->transient_left > 0) {
			/* the delivery server is out of reach for this install */
			dev->transient_left--;
			atomic_fetch_add(&fleet->transient_injected, 1);
			snprintf(s->config.server_url, sizeof(s->config.server_url),
				 "https://127.0.0.1:1");
		}
		confirmed = ota_online_install(&s->online, job->artifact) == OTA_OK;
		/* a connection or a file it could not open for want of a descriptor */
		if (!confirmed && fleet_fds_exhausted())
			atomic_store(&fleet->out_of_fds, true);
	} else if (job->report) {
		ota_online_report(&s->online, ota_online_idle_state(&s->agent));
	}
	/* registered: it leaves a little later, once its report went out */
	if (dev->offline && dev->report_seq > 0 && dev->offline_at == 0)
		dev->offline_at = now_s() + 3;
out:
	session_close(s);
	free(s);
	return confirmed;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct fleet *fleet = w->fleet;
	w->work = malloc(OTA_AGENT_WORK_BYTES);
	w->delta_work = malloc(OTA_DELTA_WORK_BYTES);
	for (;;) {
		struct job job;
		pthread_mutex_lock(&fleet->lock);
		bool surplus = false;
		for (;;) {
			/* more threads serve the queue than asked: a lent one came back, this one goes */
			surplus = fleet->threads - fleet->lent > fleet->opt.workers;
			if (stop_requested || surplus || !w->work || !w->delta_work || fleet->q_len)
				break;
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			pthread_cond_timedwait(&fleet->wake, &fleet->lock, &until);
		}
		if (stop_requested || surplus || !w->work || !w->delta_work) {
			fleet->threads--;
			w->state = WORKER_EXITED;
			pthread_mutex_unlock(&fleet->lock);
			break;
		}
		unsigned idx = fleet->queue[fleet->q_head];
		fleet->q_head = (fleet->q_head + 1) % fleet->opt.devices;
		fleet->q_len--;
		struct fleet_device *d = &fleet->devices[idx];
		d->queued = false;
		d->busy = true;
		fleet->busy_workers++;
		memset(&job, 0, sizeof(job));
		job.provision = d->want_provision;
		job.report = d->want_report;
		job.keylist = d->want_keylist;
		job.rootlist = d->want_rootlist;
		job.firmware = d->want_firmware;
		memcpy(job.artifact, d->next_artifact, sizeof(job.artifact));
		memcpy(job.campaign, d->next_campaign, sizeof(job.campaign));
		d->installing = job.firmware;
		memcpy(d->job_artifact, job.artifact, sizeof(d->job_artifact));
		memcpy(d->job_campaign, job.campaign, sizeof(d->job_campaign));
		d->want_provision = d->want_report = d->want_keylist = d->want_rootlist =
			d->want_firmware = false;
		pthread_mutex_unlock(&fleet->lock);

		bool confirmed = run_job(fleet, d, &job, w->work, w->delta_work);

		pthread_mutex_lock(&fleet->lock);
		d->installing = false;
		if (confirmed) {
			memcpy(d->done_artifact, job.artifact, sizeof(d->done_artifact));
			memcpy(d->done_campaign, job.campaign, sizeof(d->done_campaign));
		}
		d->busy = false;
		fleet->busy_workers--;
		if (dev_has_work(d))
			enqueue_locked(fleet, idx);
		pthread_mutex_unlock(&fleet->lock);
	}
	free(w->work);
	free(w->delta_work);
	w->work = w->delta_work = NULL;
	return NULL;
}

/*
 * Offline devices registered and their report had time to leave: they go
 * away for good (their persistent session stays at the broker, so what is
 * sent to them queues there). Only a device no worker holds is touched.
 */
static void take_offline(struct fleet *fleet, unsigned started, double now)
{
	for (unsigned i = 0; i < started; i++) {
		struct fleet_device *d = &fleet->devices[i];
		struct fleet_mq_session *mqtt = NULL;
		pthread_mutex_lock(&fleet->lock);
		if (!d->busy && !d->queued && d->offline && d->mqtt && d->offline_at > 0 &&
		    now >= d->offline_at) {
			mqtt = d->mqtt;
			d->mqtt = NULL;
		}
		pthread_mutex_unlock(&fleet->lock);
		if (!mqtt)
			continue;
		fleet_mq_stop(mqtt);
		if (++fleet->offline_gone == fleet->offline_total)
			printf("ota-fleet-sim: all %u offline devices registered and went away\n",
			       fleet->offline_total);
	}
}

/* ---- progress and summary ------------------------------------------------------- */

static long peak_rss_kb(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

/* Counts the descriptors open now into the peak (the loop's thread); the count. */
static unsigned long fds_note(struct fleet *fleet)
{
	unsigned long n = fleet_fds_open();
	if (n > fleet->fds_peak)
		fleet->fds_peak = n;
	return n;
}

static void print_progress(struct fleet *fleet, double t0, unsigned *last_done, double *last_t)
{
	pthread_mutex_lock(&fleet->lock);
	unsigned busy = fleet->busy_workers;
	unsigned queued = fleet->q_len;
	unsigned lent = fleet->lent;
	pthread_mutex_unlock(&fleet->lock);
	unsigned done = atomic_load(&fleet->confirmed_total) + atomic_load(&fleet->reverted_total) +
			atomic_load(&fleet->rejected_total) + atomic_load(&fleet->failed_total);
	double t = now_s();
	double rate = t > *last_t ? (done - *last_done) / (t - *last_t) : 0;
	*last_done = done;
	*last_t = t;
	printf("[fleet %5.0fs] connected %u/%u (up %u, connecting %u) | installing %u, workers "
	       "busy %u (%u on "
	       "slow "
	       "links), queued %u | "
	       "confirmed %u reverted %u rejected %u failed %u | power cuts %u | %.1f installs/s | "
	       "rss %ld MB | fds %lu/%lu\n",
	       t - t0, atomic_load(&fleet->connected), fleet->opt.devices,
	       fleet->mq ? fleet_mq_connected(fleet->mq) : 0,
	       fleet->mq ? fleet_mq_connecting(fleet->mq) : 0, atomic_load(&fleet->downloading),
	       busy, lent, queued, atomic_load(&fleet->confirmed_total),
	       atomic_load(&fleet->reverted_total), atomic_load(&fleet->rejected_total),
	       atomic_load(&fleet->failed_total), atomic_load(&fleet->power_cuts), rate,
	       peak_rss_kb() / 1024, fds_note(fleet), fleet->fd_limit);
	fflush(stdout);
}

struct version_count {
	char version[OTA_AGENT_VERSION_BYTES];
	unsigned count;
};

static void summary(struct fleet *fleet, double t0)
{
	const struct fleet_options *o = &fleet->opt;
	struct version_count versions[64];
	size_t n_versions = 0;
	unsigned offline = 0;
	unsigned slow = 0;
	unsigned selftest = 0;
	unsigned power = 0;
	unsigned no_delta = 0;
	for (unsigned i = 0; i < o->devices; i++) {
		const struct fleet_device *d = &fleet->devices[i];
		no_delta += d->no_delta;
		offline += d->offline;
		slow += d->slow;
		selftest += d->selftest_fails;
		power += d->power_loss;
		const char *label = d->version[0] ? d->version : "-";
		size_t v = 0;
		while (v < n_versions && strcmp(versions[v].version, label) != 0)
			v++;
		if (v == n_versions && n_versions < 64) {
			snprintf(versions[v].version, sizeof(versions[v].version), "%s", label);
			versions[v].count = 0;
			n_versions++;
		}
		if (v < n_versions)
			versions[v].count++;
	}
	double wall = now_s() - t0;
	printf("\n== ota-fleet-sim summary: %u devices, %.1f s, peak RSS %ld MB ==\n", o->devices,
	       wall, peak_rss_kb() / 1024);
	printf("injected: offline %u, self-test fails %u, power loss %u (cuts %u), slow %u, "
	       "transient delivery failures %u, without deltas %u\n",
	       offline, selftest, power, atomic_load(&fleet->power_cuts), slow,
	       atomic_load(&fleet->transient_injected), no_delta);
	pthread_mutex_lock(&fleet->lock);
	printf("duplicate notifications ignored: %u\n", fleet->notify_duplicates);
	printf("worker threads: %u at the queue, at most %u at once (the rest lent to slow "
	       "links)\n",
	       o->workers, fleet->threads_peak);
	unsigned duplicates = fleet->notify_duplicates;
	pthread_mutex_unlock(&fleet->lock);
	printf("file descriptors: at most %lu open of %lu allowed (%.2f for each of the %u "
	       "sessions "
	       "started)\n",
	       fleet->fds_peak, fleet->fd_limit,
	       (double)fleet->fds_peak / (fleet->sessions_started ? fleet->sessions_started : 1),
	       fleet->sessions_started);
	printf("connected %u (all connected %.1f s after the first connect; 0: never), reports %u, "
	       "keylist updates %u\n",
	       atomic_load(&fleet->connected), fleet->registered_s, atomic_load(&fleet->reports),
	       atomic_load(&fleet->keylist_updates));
	printf("%-24s %9s %9s  %s\n", "artifact", "confirmed", "reverted", "rejected / failed");
	pthread_mutex_lock(&fleet->stats_lock);
	for (unsigned i = 0; i < fleet->n_artifacts; i++) {
		const struct artifact_stats *a = &fleet->artifacts[i];
		printf("%-24s %9u %9u ", a->name, a->confirmed, a->reverted);
		for (unsigned kind = 0; kind < 2; kind++)
			for (unsigned e = 0; e < OTA__ERR_COUNT; e++)
				if (a->by_err[kind][e])
					printf(" %s %s %u", kind ? "failed" : "rejected",
					       ota_err_name((enum ota_err)e), a->by_err[kind][e]);
		printf("\n");
	}
	printf("running versions:");
	for (size_t v = 0; v < n_versions; v++)
		printf(" %s: %u", versions[v].version, versions[v].count);
	printf("\noffline devices never answered (the server times them out): %u\n", offline);
	fflush(stdout);
	pthread_mutex_unlock(&fleet->stats_lock);

	if (!o->summary_json)
		return;
	FILE *f = fopen(o->summary_json, "w");
	if (!f) {
		fprintf(stderr, "ota-fleet-sim: %s: %s\n", o->summary_json, strerror(errno));
		return;
	}
	pthread_mutex_lock(&fleet->stats_lock);
	fprintf(f,
		"{\"devices\": %u, \"wall_s\": %.1f, \"peak_rss_kb\": %ld, \"connected\": %u, "
		"\"registered_s\": %.1f, \"offline\": %u, \"power_cuts\": %u, \"keylist_updates\": "
		"%u, "
		"\"transient_failures\": %u, \"duplicates_ignored\": %u, \"fds_peak\": %lu, "
		"\"fd_limit\": %lu, \"artifacts\": {",
		o->devices, wall, peak_rss_kb(), atomic_load(&fleet->connected),
		fleet->registered_s, offline, atomic_load(&fleet->power_cuts),
		atomic_load(&fleet->keylist_updates), atomic_load(&fleet->transient_injected),
		duplicates, fleet->fds_peak, fleet->fd_limit);
	for (unsigned i = 0; i < fleet->n_artifacts; i++) {
		const struct artifact_stats *a = &fleet->artifacts[i];
		fprintf(f, "%s\"%s\": {\"confirmed\": %u, \"reverted\": %u", i ? ", " : "", a->name,
			a->confirmed, a->reverted);
		for (unsigned kind = 0; kind < 2; kind++) {
			fprintf(f, ", \"%s\": {", kind ? "failed" : "rejected");
			bool first = true;
			for (unsigned e = 0; e < OTA__ERR_COUNT; e++) {
				if (!a->by_err[kind][e])
					continue;
				fprintf(f, "%s\"%s\": %u", first ? "" : ", ",
					ota_err_name((enum ota_err)e), a->by_err[kind][e]);
				first = false;
			}
			fprintf(f, "}");
		}
		fprintf(f, "}");
	}
	fprintf(f, "}, \"faults\": {");
	static const char *const fault_names[] = {"offline", "selftest_fails", "power_loss",
						  "slow",    "transient",      "no_delta"};
	for (unsigned kind = 0; kind < 6; kind++) {
		fprintf(f, "%s\"%s\": [", kind ? ", " : "", fault_names[kind]);
		bool first = true;
		for (unsigned i = 0; i < o->devices; i++) {
			const struct fleet_device *d = &fleet->devices[i];
			bool has = kind == 0   ? d->offline
				   : kind == 1 ? d->selftest_fails
				   : kind == 2 ? d->power_loss
				   : kind == 3 ? d->slow
				   : kind == 4 ? d->transient
					       : d->no_delta;
			if (!has)
				continue;
			fprintf(f, "%s\"%s\"", first ? "" : ", ", d->id);
			first = false;
		}
		fprintf(f, "]");
	}
	fprintf(f, "}, \"versions\": {");
	for (size_t v = 0; v < n_versions; v++)
		fprintf(f, "%s\"%s\": %u", v ? ", " : "", versions[v].version, versions[v].count);
	fprintf(f, "}}\n");
	fclose(f);
	pthread_mutex_unlock(&fleet->stats_lock);
}

/* ---- the loop: every MQTT session, the connect ramp, offline devices, reports ---- */

struct loop_state {
	struct fleet *fleet;
	double t0;
	double t_connect;
	double next_progress;
	unsigned last_done;
	double last_t;
	double next_report;
	unsigned report_second;
	unsigned started;
	double next_offline_scan;
	bool all_connected;
};

/*
 * Starts the sessions due by now: at most connect_rate new ones a second,
 * and at most CONNECTING_MAX connecting at once (the broker's pace: a TLS
 * handshake it has no time for would time out and start over).
 */
static void ramp(struct loop_state *ls, double t)
{
	struct fleet *fleet = ls->fleet;
	const struct fleet_options *o = &fleet->opt;
	unsigned due = (unsigned)((t - ls->t_connect) * o->connect_rate) + 1;
	while (ls->started < o->devices && ls->started < due && !stop_requested &&
	       fleet_mq_connecting(fleet->mq) < CONNECTING_MAX) {
		unsigned idx = ls->started++;
		fleet->sessions_started = ls->started;
		struct fleet_device *d = &fleet->devices[idx];
		char cert[FLEET_PATH_MAX];
		char key[FLEET_PATH_MAX];
		snprintf(cert, sizeof(cert), "%s/devices/%s.crt", o->pki, d->id);
		snprintf(key, sizeof(key), "%s/devices/%s.key", o->pki, d->id);
		struct ota_mqtt_config mc = {.url = o->broker_url,
					     .device_id = d->id,
					     .ca_file = fleet->ca_file,
					     .cert_file = cert,
					     .key_file = key};
		struct fleet_mq_session *mqtt = NULL;
		enum ota_err err = fleet_mq_start(fleet->mq, &mc, on_cmd, on_connected,
						  &mqtt_ctxs[idx], &mqtt);
		/* workers read d->mqtt after taking the lock (the CONNACK comes later, here) */
		pthread_mutex_lock(&fleet->lock);
		d->mqtt = mqtt;
		pthread_mutex_unlock(&fleet->lock);
		if (err != OTA_OK) {
			fprintf(stderr, "ota-fleet-sim: %s: mqtt session not started: %s\n", d->id,
				ota_err_name(err));
			if (fleet_mq_out_of_descriptors(fleet->mq) || fleet_fds_exhausted()) {
				atomic_store(&fleet->out_of_fds, true);
				break;
			}
		}
	}
}

/*
 * Out of descriptors: sessions would retry and jobs fail for ever, so the
 * run ends with an error instead of waiting for devices that cannot come.
 */
static void fds_fatal(struct fleet *fleet, unsigned started)
{
	fprintf(stderr,
		"ota-fleet-sim: out of file descriptors: this process may open %lu "
		"(RLIMIT_NOFILE) and could not open one more with %u of %u sessions started; a "
		"device needs about %u: use more processes (--first, --devices)\n",
		fleet_fds_limit(), started, fleet->opt.devices, FDS_PER_DEVICE);
	fleet->failed = true;
	stop_requested = 1;
}

static void loop_tick(evutil_socket_t fd, short what, void *arg)
{
	struct loop_state *ls = arg;
	struct fleet *fleet = ls->fleet;
	const struct fleet_options *o = &fleet->opt;
	(void)fd;
	(void)what;
	double t = now_s();
	if (stop_requested || (o->duration_s && t - ls->t0 >= o->duration_s)) {
		event_base_loopbreak(fleet->base);
		return;
	}
	ramp(ls, t);
	if (fleet_mq_out_of_descriptors(fleet->mq) || atomic_load(&fleet->out_of_fds)) {
		fds_fatal(fleet, ls->started);
		event_base_loopbreak(fleet->base);
		return;
	}
	if (!ls->all_connected && atomic_load(&fleet->connected) == o->devices) {
		ls->all_connected = true;
		fleet->registered_s = t - ls->t_connect;
		printf("ota-fleet-sim: all %u sessions connected in %.1f s\n", o->devices,
		       fleet->registered_s);
	}
	if (o->progress_s && t >= ls->next_progress) {
		print_progress(fleet, ls->t0, &ls->last_done, &ls->last_t);
		ls->next_progress = t + o->progress_s;
	}
	if (o->offline > 0 && t >= ls->next_offline_scan) {
		take_offline(fleet, ls->started, t);
		ls->next_offline_scan = t + 1;
	}
	/*
	 * Periodic reports, spread over the interval (device i in second
	 * i mod interval): a whole fleet at once would queue ahead of
	 * the installs.
	 */
	if (t >= ls->next_report) {
		unsigned second = ls->report_second++ % o->report_interval_s;
		pthread_mutex_lock(&fleet->lock);
		for (unsigned i = second; i < ls->started; i += o->report_interval_s) {
			fleet->devices[i].want_report = true;
			enqueue_locked(fleet, i);
		}
		pthread_mutex_unlock(&fleet->lock);
		ls->next_report = t + 1;
	}
}

/* The fleet comes online and stays until a signal or --duration; 0 unless setup failed. */
static int run_loop(struct fleet *fleet, double t0)
{
	double t = now_s();
	struct loop_state ls = {.fleet = fleet,
				.t0 = t0,
				.t_connect = t,
				.next_progress = t + fleet->opt.progress_s,
				.last_t = t,
				.next_report = t + 1,
				.report_second =
					1, /* second 0's devices just reported at connect */
				.next_offline_scan = t};
	fleet->base = event_base_new();
	fleet->mq = fleet->base ? fleet_mq_new(fleet->base) : NULL;
	struct event *tick =
		fleet->mq ? event_new(fleet->base, -1, EV_PERSIST, loop_tick, &ls) : NULL;
	struct timeval every = {0, 50 * 1000};
	if (!tick || event_add(tick, &every) != 0) {
		fprintf(stderr, "ota-fleet-sim: no event loop\n");
		if (tick)
			event_free(tick);
		return -1;
	}
	event_base_dispatch(fleet->base);
	event_free(tick);
	(void)fds_note(fleet); /* every session still open */
	return 0;
}

/* ---- setup ------------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fputs("usage: ota-fleet-sim --devices N --pki DIR --state-dir DIR --server URL --broker "
	      "URL\n"
	      "         --rootlist FILE --keylist FILE --image BUNDLE [options]\n"
	      "  --prefix P            device ids P00000.. (default sim-)\n"
	      "  --first N             first index (default 0)\n"
	      "  --model M --hw-rev R  what the devices are (default fx-model / rev-a)\n"
	      "  --slot-size BYTES     per slot file (default 1 MiB)\n"
	      "  --product-key FILE    X25519 key of the product line (encrypted images)\n"
	      "  --workers N           threads taking queued jobs (default 16); one waiting on a\n"
	      "                        slow link is replaced by a spare while it waits\n"
	      "  --connect-rate N      new MQTT connections per second (default 200; at most 64\n"
	      "                        connecting at once)\n"
	      "  --duration S          stop after S seconds (default: until SIGINT/SIGTERM)\n"
	      "  --progress S          progress line every S seconds (default 5, 0 = off)\n"
	      "  --report-interval S   periodic status report (default 300)\n"
	      "  --stall-timeout S     download stall timeout (default 30)\n"
	      "  --selftest-fail P     share of devices whose self-test fails (0..1)\n"
	      "  --power-loss P        share that lose power in the middle of their first "
	      "download\n"
	      "  --offline P           share that register, then go offline for good\n"
	      "  --slow P              share that download slowly (--slow-rate B/s, default 4096)\n"
	      "  --transient-fail P    share whose first installs fail with OTA_ERR_TRANSPORT\n"
	      "                        (delivery server unreachable)\n"
	      "  --transient-count N   how many installs fail that way (default 1)\n"
	      "  --no-delta P          share without a delta work area (a port without\n"
	      "                        slot_map): they refuse deltas, then take the full image\n"
	      "  --seed N              picks the faulty devices (default 1)\n"
	      "  --summary-json FILE   the final summary as JSON\n"
	      "  --notify-log FILE     one line per Notify received: epoch ms, device, seq,\n"
	      "                        campaign, kind, act | duplicate\n"
	      "  --issue-certs         only make the missing device certificates, then exit\n"
	      "  --start-file FILE     after provisioning, start the MQTT sessions only once\n"
	      "                        FILE exists (several processes ramp together)\n"
	      "  --provision-each      provision every new device through the agent core\n"
	      "                        (default: the first, the others as copies of its state)\n"
	      "  --version, --help\n"
	      "An image that contains the bytes FLEETOTA-SELFTEST-FAIL fails every device's\n"
	      "self-test (the demo's buggy release).\n"
	      "Exit status: 0 done; 1 the run failed (out of file descriptors, devices not\n"
	      "provisioned); 2 bad arguments or setup, a fleet whose file descriptors (3 a\n"
	      "device) do not fit under RLIMIT_NOFILE among them.\n",
	      out);
}

static bool parse_share(const char *s, double *ret)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || !end || *end || v < 0 || v > 1)
		return false;
	*ret = v;
	return true;
}

static bool parse_uint(const char *s, unsigned long long max, unsigned long long *ret)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || !end || *end || s[0] == '-' || v > max)
		return false;
	*ret = v;
	return true;
}

enum {
	OPT_DEVICES = 256,
	OPT_PREFIX,
	OPT_FIRST,
	OPT_PKI,
	OPT_STATE,
	OPT_SERVER,
	OPT_BROKER,
	OPT_MODEL,
	OPT_HW,
	OPT_ROOTLIST,
	OPT_KEYLIST,
	OPT_IMAGE,
	OPT_SLOT,
	OPT_PRODUCT_KEY,
	OPT_WORKERS,
	OPT_RATE,
	OPT_DURATION,
	OPT_PROGRESS,
	OPT_REPORT,
	OPT_STALL,
	OPT_SLOW_RATE,
	OPT_SELFTEST,
	OPT_POWER,
	OPT_OFFLINE,
	OPT_SLOW,
	OPT_NO_DELTA,
	OPT_SEED,
	OPT_JSON,
	OPT_TRANSIENT,
	OPT_TRANSIENT_COUNT,
	OPT_NOTIFY_LOG,
	OPT_START_FILE,
	OPT_ISSUE,
	OPT_PROVISION_EACH,
	OPT_HELP,
	OPT_VERSION,
};

static int parse_args(int argc, char **argv, struct fleet_options *o)
{
	static const struct option opts[] = {
		{"devices", required_argument, NULL, OPT_DEVICES},
		{"prefix", required_argument, NULL, OPT_PREFIX},
		{"first", required_argument, NULL, OPT_FIRST},
		{"pki", required_argument, NULL, OPT_PKI},
		{"state-dir", required_argument, NULL, OPT_STATE},
		{"server", required_argument, NULL, OPT_SERVER},
		{"broker", required_argument, NULL, OPT_BROKER},
		{"model", required_argument, NULL, OPT_MODEL},
		{"hw-rev", required_argument, NULL, OPT_HW},
		{"rootlist", required_argument, NULL, OPT_ROOTLIST},
		{"keylist", required_argument, NULL, OPT_KEYLIST},
		{"image", required_argument, NULL, OPT_IMAGE},
		{"slot-size", required_argument, NULL, OPT_SLOT},
		{"product-key", required_argument, NULL, OPT_PRODUCT_KEY},
		{"workers", required_argument, NULL, OPT_WORKERS},
		{"connect-rate", required_argument, NULL, OPT_RATE},
		{"duration", required_argument, NULL, OPT_DURATION},
		{"progress", required_argument, NULL, OPT_PROGRESS},
		{"report-interval", required_argument, NULL, OPT_REPORT},
		{"stall-timeout", required_argument, NULL, OPT_STALL},
		{"slow-rate", required_argument, NULL, OPT_SLOW_RATE},
		{"selftest-fail", required_argument, NULL, OPT_SELFTEST},
		{"power-loss", required_argument, NULL, OPT_POWER},
		{"offline", required_argument, NULL, OPT_OFFLINE},
		{"slow", required_argument, NULL, OPT_SLOW},
		{"no-delta", required_argument, NULL, OPT_NO_DELTA},
		{"seed", required_argument, NULL, OPT_SEED},
		{"summary-json", required_argument, NULL, OPT_JSON},
		{"transient-fail", required_argument, NULL, OPT_TRANSIENT},
		{"transient-count", required_argument, NULL, OPT_TRANSIENT_COUNT},
		{"notify-log", required_argument, NULL, OPT_NOTIFY_LOG},
		{"start-file", required_argument, NULL, OPT_START_FILE},
		{"issue-certs", no_argument, NULL, OPT_ISSUE},
		{"provision-each", no_argument, NULL, OPT_PROVISION_EACH},
		{"help", no_argument, NULL, OPT_HELP},
		{"version", no_argument, NULL, OPT_VERSION},
		{NULL, 0, NULL, 0},
	};
	*o = (struct fleet_options){.prefix = "sim-",
				    .model = "fx-model",
				    .hw_revision = "rev-a",
				    .slot_size = 1024u * 1024u,
				    .workers = 16,
				    .connect_rate = 200,
				    .progress_s = 5,
				    .report_interval_s = 300,
				    .stall_timeout_s = 30,
				    .slow_rate = 4096,
				    .transient_count = 1,
				    .seed = 1};
	int c;
	unsigned long long v;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case OPT_DEVICES:
			ok = parse_uint(optarg, 100000, &v) && v > 0;
			o->devices = (unsigned)v;
			break;
		case OPT_PREFIX:
			o->prefix = optarg;
			ok = strlen(optarg) <= 32;
			break;
		case OPT_FIRST:
			ok = parse_uint(optarg, 10000000, &v);
			o->first_index = (unsigned)v;
			break;
		case OPT_PKI:
			o->pki = optarg;
			break;
		case OPT_STATE:
			o->state_dir = optarg;
			break;
		case OPT_SERVER:
			o->server_url = optarg;
			break;
		case OPT_BROKER:
			o->broker_url = optarg;
			break;
		case OPT_MODEL:
			o->model = optarg;
			break;
		case OPT_PRODUCT_KEY:
			o->product_key = optarg;
			break;
		case OPT_HW:
			o->hw_revision = optarg;
			break;
		case OPT_ROOTLIST:
			o->rootlist = optarg;
			break;
		case OPT_KEYLIST:
			o->keylist = optarg;
			break;
		case OPT_IMAGE:
			o->image = optarg;
			break;
		case OPT_SLOT:
			ok = parse_uint(optarg, 1ull << 32, &v) && v >= 4096;
			o->slot_size = v;
			break;
		case OPT_WORKERS:
			ok = parse_uint(optarg, 512, &v) && v > 0;
			o->workers = (unsigned)v;
			break;
		case OPT_RATE:
			ok = parse_uint(optarg, 100000, &v) && v > 0;
			o->connect_rate = (unsigned)v;
			break;
		case OPT_DURATION:
			ok = parse_uint(optarg, 1000000, &v);
			o->duration_s = (unsigned)v;
			break;
		case OPT_PROGRESS:
			ok = parse_uint(optarg, 3600, &v);
			o->progress_s = (unsigned)v;
			break;
		case OPT_REPORT:
			ok = parse_uint(optarg, 86400, &v) && v > 0;
			o->report_interval_s = (unsigned)v;
			break;
		case OPT_STALL:
			ok = parse_uint(optarg, 3600, &v) && v > 0;
			o->stall_timeout_s = (unsigned)v;
			break;
		case OPT_SLOW_RATE:
			ok = parse_uint(optarg, 1u << 30, &v) && v >= OTA_HTTPS_MIN_BYTES_PER_S;
			o->slow_rate = (unsigned)v;
			break;
		case OPT_SELFTEST:
			ok = parse_share(optarg, &o->selftest_fail);
			break;
		case OPT_POWER:
			ok = parse_share(optarg, &o->power_loss);
			break;
		case OPT_OFFLINE:
			ok = parse_share(optarg, &o->offline);
			break;
		case OPT_SLOW:
			ok = parse_share(optarg, &o->slow);
			break;
		case OPT_NO_DELTA:
			ok = parse_share(optarg, &o->no_delta);
			break;
		case OPT_SEED:
			ok = parse_uint(optarg, UINT32_MAX, &v);
			o->seed = (unsigned)v;
			break;
		case OPT_JSON:
			o->summary_json = optarg;
			break;
		case OPT_TRANSIENT:
			ok = parse_share(optarg, &o->transient);
			break;
		case OPT_TRANSIENT_COUNT:
			ok = parse_uint(optarg, 100, &v) && v > 0;
			o->transient_count = (unsigned)v;
			break;
		case OPT_NOTIFY_LOG:
			o->notify_log = optarg;
			break;
		case OPT_START_FILE:
			o->start_file = optarg;
			break;
		case OPT_ISSUE:
			o->issue_only = true;
			break;
		case OPT_PROVISION_EACH:
			o->provision_each = true;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("ota-fleet-sim %s\n", fleetota_version());
			exit(0);
		default:
			return -1;
		}
		if (!ok) {
			fprintf(stderr, "ota-fleet-sim: invalid value for --%s: %s\n",
				opts[c - OPT_DEVICES].name, optarg);
			return -1;
		}
	}
	if (optind != argc || !o->devices || !o->pki ||
	    (!o->issue_only &&
	     (!o->state_dir || !o->server_url || !o->broker_url || !o->rootlist || !o->keylist))) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* A deterministic choice per device and fault (splitmix64 of seed, index, kind). */
static bool picked(unsigned seed, unsigned idx, unsigned kind, double share)
{
	uint64_t x = ((uint64_t)seed << 32) ^ ((uint64_t)idx << 4) ^ kind;
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (double)(x >> 11) / (double)(1ull << 53) < share;
}

/* Worker threads at most: --workers, and spares for lent ones when links are slow. */
static unsigned pool_cap_of(const struct fleet_options *o)
{
	return o->workers + (o->slow > 0 || o->power_loss > 0 ? POOL_SPARE_MAX : 0);
}

/*
 * The descriptors the run needs fit under RLIMIT_NOFILE, raised to the
 * hard limit, or it does not start: a fleet that runs out half way would
 * leave the devices after it without a session.
 */
static int fds_budget(struct fleet *fleet)
{
	const struct fleet_options *o = &fleet->opt;
	unsigned long limit = fleet_fds_raise();
	unsigned long open_now = fleet_fds_open();
	unsigned long need = open_now + FDS_RESERVE + (unsigned long)o->devices * FDS_PER_DEVICE +
			     (unsigned long)pool_cap_of(o) * FDS_PER_THREAD;
	fleet->fd_limit = limit;
	if (limit == 0 || need <= limit)
		return 0;
	fprintf(stderr,
		"ota-fleet-sim: %u devices need about %lu file descriptors (%u a device, %u for "
		"each of up to %u worker threads, %lu open now, %u to spare); this process may "
		"open %lu (RLIMIT_NOFILE, hard limit): use more processes (--first, --devices) "
		"or raise the limit\n",
		o->devices, need, FDS_PER_DEVICE, FDS_PER_THREAD, pool_cap_of(o), open_now,
		FDS_RESERVE, limit);
	return -1;
}

static int load_pins(struct fleet *fleet)
{
	char path[FLEET_PATH_MAX];
	char line[160] = {0};
	snprintf(path, sizeof(path), "%s/server.pin", fleet->opt.pki);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fleet->n_pins < OTA_CONFIG_MAX_PINS && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n \t")] = '\0';
		if (line[0] && ota_https_pin_parse(line, fleet->server_pins[fleet->n_pins]))
			fleet->n_pins++;
	}
	fclose(f);
	return fleet->n_pins ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct fleet *fleet = calloc(1, sizeof(*fleet));
	struct fleet_ca *ca = NULL;
	int rc = 2;
	if (!fleet || parse_args(argc, argv, &fleet->opt) != 0)
		goto out_nothing;
	struct fleet_options *o = &fleet->opt;
	double t0 = now_s();
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	/* workers hand reports to the loop from their threads */
	if (evthread_use_pthreads() != 0)
		goto out_nothing;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (!o->issue_only && fds_budget(fleet) != 0)
		goto out_nothing;

	fleet->devices = calloc(o->devices, sizeof(*fleet->devices));
	fleet->queue = calloc(o->devices, sizeof(*fleet->queue));
	mqtt_ctxs = calloc(o->devices, sizeof(*mqtt_ctxs));
	if (!fleet->devices || !fleet->queue || !mqtt_ctxs)
		goto out_nothing;
	for (unsigned i = 0; i < o->devices; i++) {
		struct fleet_device *d = &fleet->devices[i];
		snprintf(d->id, sizeof(d->id), "%s%05u", o->prefix, o->first_index + i);
		d->selftest_fails = picked(o->seed, i, 1, o->selftest_fail);
		d->power_loss = picked(o->seed, i, 2, o->power_loss);
		d->offline = picked(o->seed, i, 3, o->offline);
		fleet->offline_total += d->offline;
		d->slow = picked(o->seed, i, 4, o->slow);
		d->transient = picked(o->seed, i, 5, o->transient);
		d->transient_left = d->transient ? o->transient_count : 0;
		d->no_delta = picked(o->seed, i, 6, o->no_delta);
		mqtt_ctxs[i].fleet = fleet;
		mqtt_ctxs[i].idx = i;
	}

	/* identities: one process, the OpenSSL API, what is missing */
	char devdir[FLEET_PATH_MAX];
	snprintf(devdir, sizeof(devdir), "%s/devices", o->pki);
	(void)mkdir(devdir, 0700);
	ca = fleet_ca_load(o->pki);
	if (!ca) {
		fprintf(stderr,
			"ota-fleet-sim: %s/device-ca.{crt,key} unreadable (run scripts/pki.sh)\n",
			o->pki);
		goto out_nothing;
	}
	for (unsigned i = 0; i < o->devices; i++) {
		if (fleet_cert_issue(ca, o->pki, fleet->devices[i].id) != 0) {
			fprintf(stderr, "ota-fleet-sim: cannot issue a certificate for %s\n",
				fleet->devices[i].id);
			goto out_nothing;
		}
	}
	printf("ota-fleet-sim: %u device identities ready in %.1f s\n", o->devices, now_s() - t0);
	if (o->issue_only) {
		rc = 0;
		goto out_nothing;
	}
	snprintf(fleet->ca_file, sizeof(fleet->ca_file), "%s/server-ca.crt", o->pki);
	if (load_pins(fleet) != 0) {
		fprintf(stderr, "ota-fleet-sim: %s/server.pin: no pin\n", o->pki);
		goto out_nothing;
	}
	if (o->image && read_file(o->image, 64u * 1024u * 1024u, &fleet->factory_bundle,
				  &fleet->factory_bundle_len) != 0) {
		fprintf(stderr, "ota-fleet-sim: %s unreadable\n", o->image);
		goto out_nothing;
	}
	if (mkdir(o->state_dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "ota-fleet-sim: %s: %s\n", o->state_dir, strerror(errno));
		goto out_nothing;
	}
	if (o->notify_log) {
		fleet->notify_log = fopen(o->notify_log, "a");
		if (!fleet->notify_log) {
			fprintf(stderr, "ota-fleet-sim: %s: %s\n", o->notify_log, strerror(errno));
			goto out_nothing;
		}
		setvbuf(fleet->notify_log, NULL, _IOLBF, 0);
	}
	pthread_mutex_init(&fleet->lock, NULL);
	pthread_cond_init(&fleet->wake, NULL);
	pthread_mutex_init(&fleet->stats_lock, NULL);

	/* spare threads for lent ones: one per slow device at most, bounded */
	fleet->pool_cap = pool_cap_of(o);
	fleet->pool = calloc(fleet->pool_cap, sizeof(*fleet->pool));
	if (!fleet->pool)
		goto out;
	pthread_mutex_lock(&fleet->lock);
	for (unsigned i = 0; i < o->workers; i++) {
		if (!pool_spawn_locked(fleet)) {
			stop_requested = 1;
			break;
		}
	}
	pthread_mutex_unlock(&fleet->lock);

	/*
	 * The factory: every device gets its trust anchors and first image.
	 * The first device goes through the core; when it was new, the other
	 * new devices are copies of its state directory (a factory flashes
	 * one golden image), unless --provision-each.
	 */
	pthread_mutex_lock(&fleet->lock);
	fleet->devices[0].want_provision = true;
	enqueue_locked(fleet, 0);
	pthread_mutex_unlock(&fleet->lock);
	while (!stop_requested &&
	       atomic_load(&fleet->provisioned) + atomic_load(&fleet->provision_failed) < 1)
		sleep_ms(5);
	if (!o->provision_each && atomic_load(&fleet->provisioned_by_core) == 1) {
		char dir[FLEET_PATH_MAX];
		snprintf(dir, sizeof(dir), "%s/%s", o->state_dir, fleet->devices[0].id);
		fleet->golden = fleet_golden_load(dir);
		snprintf(fleet->golden_version, sizeof(fleet->golden_version), "%s",
			 fleet->devices[0].version);
	}
	pthread_mutex_lock(&fleet->lock);
	for (unsigned i = 1; i < o->devices; i++) {
		fleet->devices[i].want_provision = true;
		enqueue_locked(fleet, i);
	}
	pthread_mutex_unlock(&fleet->lock);
	while (!stop_requested &&
	       atomic_load(&fleet->provisioned) + atomic_load(&fleet->provision_failed) <
		       o->devices)
		sleep_ms(50);
	if (atomic_load(&fleet->provision_failed)) {
		fprintf(stderr, "ota-fleet-sim: %u devices could not be provisioned\n",
			atomic_load(&fleet->provision_failed));
		if (atomic_load(&fleet->out_of_fds))
			fds_fatal(fleet, 0);
		fleet->failed = true;
		stop_requested = 1;
	}
	printf("ota-fleet-sim: %u devices provisioned in %.1f s (%u by the agent core, %u as "
	       "copies of its first)\n",
	       atomic_load(&fleet->provisioned), now_s() - t0,
	       atomic_load(&fleet->provisioned_by_core), atomic_load(&fleet->cloned));
	fleet_golden_free(fleet->golden);
	fleet->golden = NULL;

	if (o->start_file && !stop_requested) {
		struct stat st;
		printf("ota-fleet-sim: waiting for %s to start the sessions\n", o->start_file);
		while (!stop_requested && stat(o->start_file, &st) != 0)
			sleep_ms(20);
	}
	if (!stop_requested && run_loop(fleet, t0) != 0) {
		stop_requested = 1;
		goto out;
	}
	stop_requested = 1;
	rc = fleet->failed ? 1 : 0;
out:
	if (fleet->pool) {
		pool_join(fleet);
		free(fleet->pool);
		fleet->pool = NULL;
	}
	/* the workers are gone: nobody hands reports to the sessions any more */
	for (unsigned i = 0; i < o->devices; i++)
		fleet->devices[i].mqtt = NULL;
	fleet_mq_free(fleet->mq);
	fleet->mq = NULL;
	if (fleet->base)
		event_base_free(fleet->base);
	fleet->base = NULL;
	summary(fleet, t0);
	pthread_mutex_destroy(&fleet->lock);
	pthread_cond_destroy(&fleet->wake);
	pthread_mutex_destroy(&fleet->stats_lock);
out_nothing:
	fleet_ca_free(ca);
	if (fleet) {
		if (fleet->notify_log)
			fclose(fleet->notify_log);
		free(fleet->devices);
		free(fleet->queue);
		free(fleet->factory_bundle);
	}
	free(mqtt_ctxs);
	free(fleet);
	return rc;
}
