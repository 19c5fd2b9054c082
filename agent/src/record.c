/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixed little-endian layouts of the agent's own records, each framed as
 * magic (4) | format (1) | payload | CRC-32 (4), and the frame of one
 * stored copy of any record (docs/formats.md): "OTAR" | format 2 | record
 * id | 2 zero bytes | sequence (8) | payload length (4) | payload | CRC-32.
 * The copy CRC catches a torn write or storage that rots, so the core can
 * fall back to the other copy; the decoders are strict (exact length,
 * bounded strings, known enum values) because a record is input like any
 * other.
 */
#include <string.h>

#include "fleetota/agent.h"

#define REC_FORMAT 1u
#define REC_MAGIC_STATE "OTAS"
#define REC_MAGIC_COUNTER "OTAC"
#define REC_MAGIC_EVENT "OTAE"
#define REC_MAGIC_BOOT "OTAG"
#define REC_MAGIC_FRESHNESS "OTAF"
#define COPY_MAGIC "OTAR"
#define REC_MAGIC_BYTES (sizeof(COPY_MAGIC) - 1u)
#define COPY_FORMAT 2u

struct wbuf {
	uint8_t *p;
	size_t cap;
	size_t len;
	bool overflow;
};

struct rbuf {
	const uint8_t *p;
	size_t len;
	size_t pos;
	bool bad;
};

/* strnlen is POSIX, not C17: the core stays within the C library of C17 */
static size_t bounded_len(const char *s, size_t max)
{
	size_t len = 0;
	while (len < max && s[len] != '\0')
		len++;
	return len;
}

static uint32_t crc32_calc(const uint8_t *data, size_t len)
{
	uint32_t crc = 0xffffffffu;
	for (size_t i = 0; i < len; i++) {
		crc ^= data[i];
		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
	}
	return ~crc;
}

static void put_bytes(struct wbuf *w, const void *src, size_t len)
{
	if (w->overflow || len > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	memcpy(w->p + w->len, src, len);
	w->len += len;
}

/* The low n bytes of v, little-endian. */
static void put_le(struct wbuf *w, uint64_t v, size_t n)
{
	uint8_t b[sizeof(uint64_t)];
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_bytes(w, b, n);
}

static void put_u64(struct wbuf *w, uint64_t v)
{
	put_le(w, v, 8);
}

static void put_u32(struct wbuf *w, uint32_t v)
{
	put_le(w, v, 4);
}

static void put_u8(struct wbuf *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

/* A string as a fixed field of cap bytes, NUL padded. */
static void put_str(struct wbuf *w, const char *s, size_t cap)
{
	uint8_t field[OTA_AGENT_VERSION_BYTES] = {0};
	size_t len = bounded_len(s, cap - 1);
	memcpy(field, s, len);
	put_bytes(w, field, cap);
}

static void get_bytes(struct rbuf *r, void *dst, size_t len)
{
	if (r->bad || len > r->len - r->pos) {
		r->bad = true;
		memset(dst, 0, len);
		return;
	}
	memcpy(dst, r->p + r->pos, len);
	r->pos += len;
}

/* n bytes, little-endian (0 past the end, and r is bad). */
static uint64_t get_le(struct rbuf *r, size_t n)
{
	uint8_t b[sizeof(uint64_t)];
	uint64_t v = 0;
	get_bytes(r, b, n);
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static uint64_t get_u64(struct rbuf *r)
{
	return get_le(r, 8);
}

static uint32_t get_u32(struct rbuf *r)
{
	return (uint32_t)get_le(r, 4);
}

static uint8_t get_u8(struct rbuf *r)
{
	uint8_t v = 0;
	get_bytes(r, &v, 1);
	return v;
}

/* The field must hold a NUL within cap bytes. */
static void get_str(struct rbuf *r, char *dst, size_t cap)
{
	get_bytes(r, dst, cap);
	const char *nul = memchr(dst, '\0', cap);
	if (nul == NULL) {
		r->bad = true;
		dst[0] = '\0';
		return;
	}
	/* canonical: NUL padded, so a record has exactly one encoding */
	for (size_t i = (size_t)(nul - dst); i < cap; i++) {
		if (dst[i] != '\0')
			r->bad = true;
	}
}

static bool get_bool(struct rbuf *r)
{
	uint8_t v = get_u8(r);
	if (v > 1)
		r->bad = true;
	return v == 1;
}

static void frame_begin(struct wbuf *w, const char *magic)
{
	put_bytes(w, magic, REC_MAGIC_BYTES);
	put_u8(w, REC_FORMAT);
}

static size_t frame_end(struct wbuf *w)
{
	if (w->overflow)
		return 0;
	put_u32(w, crc32_calc(w->p, w->len));
	return w->overflow ? 0 : w->len;
}

/*
 * Whether the last 4 of len (>= 4) bytes are the CRC-32 of those before;
 * if so, r reads the bytes before the CRC from the start.
 */
static bool crc_open(struct rbuf *r, const uint8_t *buf, size_t len)
{
	struct rbuf crc = {.p = buf, .len = len, .pos = len - 4};
	r->p = buf;
	r->len = len - 4;
	r->pos = 0;
	r->bad = false;
	return (uint32_t)get_le(&crc, 4) == crc32_calc(buf, len - 4);
}

/*
 * Checks magic, format and CRC; positions r after the header. The record
 * being decoded (rec of rec_size bytes) starts zeroed.
 */
static bool frame_open(struct rbuf *r, const uint8_t *buf, size_t len, const char *magic, void *rec,
		       size_t rec_size)
{
	memset(rec, 0, rec_size);
	if (!buf || len < 9 || memcmp(buf, magic, REC_MAGIC_BYTES) != 0 || buf[4] != REC_FORMAT ||
	    !crc_open(r, buf, len))
		return false;
	r->pos = 5;
	return true;
}

static bool frame_close(const struct rbuf *r)
{
	return !r->bad && r->pos == r->len;
}

static void put_slot(struct wbuf *w, const struct ota_slot_info *s)
{
	put_u8(w, s->valid ? 1 : 0);
	put_str(w, s->version, sizeof(s->version));
	put_u64(w, s->version_code);
	put_u64(w, s->security_counter);
	put_u64(w, s->size);
	put_bytes(w, s->sha256, sizeof(s->sha256));
}

static void get_slot(struct rbuf *r, struct ota_slot_info *s)
{
	s->valid = get_bool(r);
	get_str(r, s->version, sizeof(s->version));
	s->version_code = get_u64(r);
	s->security_counter = get_u64(r);
	s->size = get_u64(r);
	get_bytes(r, s->sha256, sizeof(s->sha256));
}

size_t ota_state_encode(const struct ota_agent_state *state, uint8_t *buf, size_t cap)
{
	struct wbuf w = {.p = buf, .cap = cap};
	frame_begin(&w, REC_MAGIC_STATE);
	put_u8(&w, state->provisioned ? 1 : 0);
	put_u8(&w, (uint8_t)state->phase);
	put_u8(&w, state->confirmed_slot);
	put_u8(&w, state->target_slot);
	for (unsigned i = 0; i < OTA_SLOT_COUNT; i++)
		put_slot(&w, &state->slots[i]);
	put_u64(&w, state->staged_bytes);
	put_bytes(&w, state->staging_manifest_sha256, sizeof(state->staging_manifest_sha256));
	put_u64(&w, state->latest_time);
	put_u64(&w, state->next_event_seq);
	put_u32(&w, state->last_error);
	put_str(&w, state->last_error_detail, sizeof(state->last_error_detail));
	return frame_end(&w);
}

enum ota_err ota_state_decode(const uint8_t *buf, size_t len, struct ota_agent_state *ret_state)
{
	struct ota_agent_state s;
	struct rbuf r;
	if (!frame_open(&r, buf, len, REC_MAGIC_STATE, &s, sizeof(s)))
		return OTA_ERR_FORMAT;
	s.provisioned = get_bool(&r);
	uint8_t phase = get_u8(&r);
	s.confirmed_slot = get_u8(&r);
	s.target_slot = get_u8(&r);
	for (unsigned i = 0; i < OTA_SLOT_COUNT; i++)
		get_slot(&r, &s.slots[i]);
	s.staged_bytes = get_u64(&r);
	get_bytes(&r, s.staging_manifest_sha256, sizeof(s.staging_manifest_sha256));
	s.latest_time = get_u64(&r);
	s.next_event_seq = get_u64(&r);
	s.last_error = get_u32(&r);
	get_str(&r, s.last_error_detail, sizeof(s.last_error_detail));
	if (!frame_close(&r) || phase > OTA_PHASE_TRIAL || s.confirmed_slot >= OTA_SLOT_COUNT ||
	    s.target_slot >= OTA_SLOT_COUNT || s.last_error >= OTA__ERR_COUNT)
		return OTA_ERR_FORMAT;
	s.phase = (enum ota_phase)phase;
	if (s.phase != OTA_PHASE_IDLE && s.target_slot == s.confirmed_slot)
		return OTA_ERR_FORMAT;
	if (s.staged_bytes > OTA_MAX_IMAGE_BYTES)
		return OTA_ERR_FORMAT;
	*ret_state = s;
	return OTA_OK;
}

size_t ota_counter_encode(uint64_t counter, uint8_t *buf, size_t cap)
{
	struct wbuf w = {.p = buf, .cap = cap};
	frame_begin(&w, REC_MAGIC_COUNTER);
	put_u64(&w, counter);
	return frame_end(&w);
}

enum ota_err ota_counter_decode(const uint8_t *buf, size_t len, uint64_t *ret_counter)
{
	struct rbuf r;
	uint64_t counter;
	if (!frame_open(&r, buf, len, REC_MAGIC_COUNTER, &counter, sizeof(counter)))
		return OTA_ERR_FORMAT;
	counter = get_u64(&r);
	if (!frame_close(&r))
		return OTA_ERR_FORMAT;
	*ret_counter = counter;
	return OTA_OK;
}

size_t ota_event_encode(const struct ota_event *event, uint8_t *buf, size_t cap)
{
	struct wbuf w = {.p = buf, .cap = cap};
	frame_begin(&w, REC_MAGIC_EVENT);
	put_u64(&w, event->seq);
	put_u64(&w, event->time);
	put_u32(&w, (uint32_t)event->kind);
	put_u32(&w, (uint32_t)event->error);
	put_u64(&w, event->version_code);
	put_u64(&w, event->security_counter);
	put_str(&w, event->version, sizeof(event->version));
	put_str(&w, event->detail, sizeof(event->detail));
	return frame_end(&w);
}

enum ota_err ota_event_decode(const uint8_t *buf, size_t len, struct ota_event *ret_event)
{
	struct ota_event e;
	struct rbuf r;
	if (!frame_open(&r, buf, len, REC_MAGIC_EVENT, &e, sizeof(e)))
		return OTA_ERR_FORMAT;
	e.seq = get_u64(&r);
	e.time = get_u64(&r);
	uint32_t kind = get_u32(&r);
	uint32_t error = get_u32(&r);
	e.version_code = get_u64(&r);
	e.security_counter = get_u64(&r);
	get_str(&r, e.version, sizeof(e.version));
	get_str(&r, e.detail, sizeof(e.detail));
	if (!frame_close(&r) || !ota_event_kind_known(kind) || error >= OTA__ERR_COUNT)
		return OTA_ERR_FORMAT;
	e.kind = (enum ota_event_kind)kind;
	e.error = (enum ota_err)error;
	*ret_event = e;
	return OTA_OK;
}

bool ota_event_kind_known(uint32_t kind)
{
	return (kind >= OTA_EVENT_INSTALL_STARTED && kind <= OTA_EVENT_BOOTED) ||
	       kind == OTA_EVENT_FREEZE_SUSPECTED || kind == OTA_EVENT_FRESHNESS_RESTORED;
}

size_t ota_freshness_encode(const struct ota_freshness *f, uint8_t *buf, size_t cap)
{
	struct wbuf w = {.p = buf, .cap = cap};
	frame_begin(&w, REC_MAGIC_FRESHNESS);
	put_u64(&w, f->issued_at);
	put_u64(&w, f->expires_at);
	put_u64(&w, f->version_code);
	put_u64(&w, f->since);
	put_u8(&w, f->frozen ? 1 : 0);
	put_str(&w, f->version, sizeof(f->version));
	put_bytes(&w, f->signer, sizeof(f->signer));
	return frame_end(&w);
}

enum ota_err ota_freshness_decode(const uint8_t *buf, size_t len, struct ota_freshness *ret_f)
{
	struct ota_freshness f;
	struct rbuf r;
	if (!frame_open(&r, buf, len, REC_MAGIC_FRESHNESS, &f, sizeof(f)))
		return OTA_ERR_FORMAT;
	f.issued_at = get_u64(&r);
	f.expires_at = get_u64(&r);
	f.version_code = get_u64(&r);
	f.since = get_u64(&r);
	f.frozen = get_bool(&r);
	get_str(&r, f.version, sizeof(f.version));
	get_bytes(&r, f.signer, sizeof(f.signer));
	if (!frame_close(&r) || (f.issued_at != 0 && f.expires_at <= f.issued_at))
		return OTA_ERR_FORMAT;
	*ret_f = f;
	return OTA_OK;
}

size_t ota_boot_encode(const struct ota_boot_record *boot, uint8_t *buf, size_t cap)
{
	struct wbuf w = {.p = buf, .cap = cap};
	frame_begin(&w, REC_MAGIC_BOOT);
	put_u8(&w, boot->slot);
	put_slot(&w, &boot->image);
	return frame_end(&w);
}

enum ota_err ota_boot_decode(const uint8_t *buf, size_t len, struct ota_boot_record *ret_boot)
{
	struct ota_boot_record b;
	struct rbuf r;
	if (!frame_open(&r, buf, len, REC_MAGIC_BOOT, &b, sizeof(b)))
		return OTA_ERR_FORMAT;
	b.slot = get_u8(&r);
	get_slot(&r, &b.image);
	if (!frame_close(&r) || b.slot >= OTA_SLOT_COUNT || !b.image.valid)
		return OTA_ERR_FORMAT;
	*ret_boot = b;
	return OTA_OK;
}

static bool record_id_known(uint32_t rec)
{
	return rec <= OTA_REC_BOOT || rec == OTA_REC_FRESHNESS ||
	       (rec >= OTA_REC_EVENT_0 && rec <= OTA_REC_LAST);
}

size_t ota_record_copy_seal(enum ota_record rec, uint64_t seq, uint8_t *buf, size_t payload_len,
			    size_t cap)
{
	if (!record_id_known((uint32_t)rec) || payload_len > OTA_MAX_ENVELOPE_BYTES ||
	    cap < OTA_RECORD_COPY_OVERHEAD || payload_len > cap - OTA_RECORD_COPY_OVERHEAD)
		return 0;
	struct wbuf w = {.p = buf, .cap = OTA_RECORD_COPY_HEADER_BYTES};
	put_bytes(&w, COPY_MAGIC, 4);
	put_u8(&w, COPY_FORMAT);
	put_u8(&w, (uint8_t)rec);
	put_u8(&w, 0);
	put_u8(&w, 0);
	put_u64(&w, seq);
	put_u32(&w, (uint32_t)payload_len);
	/* the payload is already in place: the CRC follows it */
	w.cap = cap;
	w.len = OTA_RECORD_COPY_HEADER_BYTES + payload_len;
	return frame_end(&w);
}

enum ota_err ota_record_copy_decode(const uint8_t *buf, size_t len,
				    struct ota_record_copy *ret_copy)
{
	struct rbuf r;
	uint8_t magic[REC_MAGIC_BYTES];
	if (!buf || len < OTA_RECORD_COPY_OVERHEAD ||
	    len - OTA_RECORD_COPY_OVERHEAD > OTA_MAX_ENVELOPE_BYTES)
		return OTA_ERR_FORMAT;
	bool crc_ok = crc_open(&r, buf, len);
	get_bytes(&r, magic, sizeof(magic));
	uint8_t format = get_u8(&r);
	uint8_t rec = get_u8(&r);
	uint8_t reserved0 = get_u8(&r);
	uint8_t reserved1 = get_u8(&r);
	uint64_t seq = get_u64(&r);
	uint32_t payload_len = get_u32(&r);
	if (!crc_ok || r.bad || memcmp(magic, COPY_MAGIC, REC_MAGIC_BYTES) != 0 ||
	    format != COPY_FORMAT || !record_id_known(rec) || reserved0 != 0 || reserved1 != 0 ||
	    payload_len != len - OTA_RECORD_COPY_OVERHEAD)
		return OTA_ERR_FORMAT;
	ret_copy->rec = (enum ota_record)rec;
	ret_copy->seq = seq;
	ret_copy->payload = buf + OTA_RECORD_COPY_HEADER_BYTES;
	ret_copy->payload_len = payload_len;
	return OTA_OK;
}
