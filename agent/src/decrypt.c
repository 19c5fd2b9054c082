/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encrypted images in the agent core: the streaming decryptor
 * (fleetota/decrypt.h) and the key unwrap through the port, before one
 * image byte is downloaded (decrypt-internal.h).
 */
#include <string.h>

#include "decrypt-internal.h"
#include "fleetota/decrypt.h"

/* memset through a volatile pointer: the compiler may not drop it */
static void wipe(void *p, size_t len)
{
	volatile uint8_t *v = p;
	while (len--)
		*v++ = 0;
}

static uint64_t chunk_count(const struct ota_decrypt *d)
{
	return d->plain_size / d->chunk_bytes + (d->plain_size % d->chunk_bytes ? 1u : 0u);
}

uint64_t ota_decrypt_wire_offset(const struct ota_decrypt *d, uint64_t plain_offset)
{
	uint64_t chunks = plain_offset / d->chunk_bytes + (plain_offset % d->chunk_bytes ? 1u : 0u);
	return plain_offset + chunks * OTA_CRYPT_TAG_BYTES;
}

enum ota_err ota_decrypt_open(struct ota_decrypt *d, const Fleetota__V1__Encryption *enc,
			      uint64_t plain_size, const uint8_t key[OTA_CEK_BYTES])
{
	struct ota_decrypt next;
	memset(&next, 0, sizeof(next));
	if (ota_encryption_check(enc, plain_size) != OTA_OK)
		return OTA_ERR_FORMAT;
	next.on = true;
	next.chunk_bytes = enc->chunk_bytes;
	next.plain_size = plain_size;
	next.wire_size = enc->ciphertext_size;
	memcpy(next.prefix, enc->nonce_prefix.data, OTA_CRYPT_NONCE_PREFIX_BYTES);
	enum ota_err err = ota_gcm_open(&next.gcm, key);
	if (err != OTA_OK)
		return err;
	*d = next;
	return OTA_OK;
}

enum ota_err ota_decrypt_seek(struct ota_decrypt *d, uint64_t plain_offset)
{
	if (!d->on || plain_offset > d->plain_size ||
	    (plain_offset % d->chunk_bytes != 0 && plain_offset != d->plain_size))
		return OTA_ERR_INVALID_ARG;
	d->index = plain_offset / d->chunk_bytes + (plain_offset % d->chunk_bytes ? 1u : 0u);
	d->wire_done = ota_decrypt_wire_offset(d, plain_offset);
	d->chunk_open = false;
	d->chunk_done = 0;
	d->tag_have = 0;
	return OTA_OK;
}

bool ota_decrypt_done(const struct ota_decrypt *d)
{
	return d->on && d->wire_done == d->wire_size && !d->chunk_open;
}

enum ota_err ota_decrypt_feed(struct ota_decrypt *d, const uint8_t *in, size_t len, uint8_t *out,
			      size_t cap, size_t *ret_used, size_t *ret_made, bool *ret_chunk_end)
{
	enum ota_err err;
	*ret_used = 0;
	*ret_made = 0;
	*ret_chunk_end = false;
	if (!d->on)
		return OTA_ERR_INVALID_ARG;
	if (len == 0)
		return OTA_OK;
	uint64_t n_chunks = chunk_count(d);
	if (d->index >= n_chunks || d->wire_done >= d->wire_size)
		return OTA_ERR_SIZE;
	uint64_t start = d->index * d->chunk_bytes;
	uint32_t this_len = d->plain_size - start < d->chunk_bytes
				    ? (uint32_t)(d->plain_size - start)
				    : d->chunk_bytes;
	if (!d->chunk_open) {
		uint8_t nonce[OTA_CRYPT_NONCE_BYTES];
		uint8_t aad[OTA_CRYPT_AAD_BYTES];
		ota_crypt_chunk_nonce(d->prefix, d->index, nonce);
		ota_crypt_chunk_aad(d->index, d->index == n_chunks - 1, aad);
		err = ota_gcm_chunk_begin(&d->gcm, nonce, aad, sizeof(aad));
		if (err != OTA_OK)
			return err;
		d->chunk_open = true;
		d->chunk_done = 0;
		d->tag_have = 0;
	}
	if (d->chunk_done < this_len) {
		size_t n = this_len - d->chunk_done;
		if (n > len)
			n = len;
		if (n > cap)
			n = cap;
		if (n == 0)
			return OTA_ERR_INVALID_ARG;
		err = ota_gcm_chunk_update(&d->gcm, in, n, out);
		if (err != OTA_OK)
			return err;
		d->chunk_done += (uint32_t)n;
		d->wire_done += n;
		*ret_used = n;
		*ret_made = n;
		return OTA_OK;
	}
	size_t n = OTA_CRYPT_TAG_BYTES - d->tag_have;
	if (n > len)
		n = len;
	memcpy(d->tag + d->tag_have, in, n);
	d->tag_have = (uint8_t)(d->tag_have + n);
	d->wire_done += n;
	*ret_used = n;
	if (d->tag_have < OTA_CRYPT_TAG_BYTES)
		return OTA_OK;
	d->chunk_open = false;
	err = ota_gcm_chunk_end(&d->gcm, d->tag);
	if (err != OTA_OK)
		return err;
	d->index++;
	*ret_chunk_end = true;
	return OTA_OK;
}

enum ota_err ota_decrypt_open_beside(struct ota_decrypt *d, const uint8_t key[OTA_CEK_BYTES])
{
	if (!d->on || d->beside)
		return OTA_ERR_INVALID_ARG;
	enum ota_err err = ota_gcm_open(&d->gcm_beside, key);
	d->beside = err == OTA_OK;
	return err;
}

/* The whole chunks from chunk index on within len ciphertext bytes, their plaintext within cap. */
static size_t whole_at(const struct ota_decrypt *d, uint64_t index, size_t len, size_t cap)
{
	uint64_t n_chunks = chunk_count(d);
	/* the last chunk may be short and has its own AAD: it goes through feed */
	uint64_t left = index + 1 < n_chunks ? n_chunks - 1 - index : 0;
	uint64_t sealed = (uint64_t)d->chunk_bytes + OTA_CRYPT_TAG_BYTES;
	uint64_t n = len / sealed;
	if (n > cap / d->chunk_bytes)
		n = cap / d->chunk_bytes;
	return (size_t)(n < left ? n : left);
}

size_t ota_decrypt_whole(const struct ota_decrypt *d, size_t len, size_t cap)
{
	if (!d->on || d->chunk_open)
		return 0;
	return whole_at(d, d->index, len, cap);
}

/*
 * n whole chunks from chunk index on: chunk i's ciphertext at in + i *
 * in_step, its tag at tags + i * TAG (tags NULL: right after the
 * ciphertext), its plaintext to out + i * chunk_bytes (out may be in).
 */
static enum ota_err decrypt_run(const struct ota_decrypt *d, struct ota_gcm_ctx *gcm,
				uint64_t index, const uint8_t *in, size_t in_step,
				const uint8_t *tags, size_t n, uint8_t *out, uint64_t *ret_bad)
{
	uint64_t n_chunks = chunk_count(d);
	for (size_t i = 0; i < n; i++, index++) {
		uint8_t nonce[OTA_CRYPT_NONCE_BYTES];
		uint8_t aad[OTA_CRYPT_AAD_BYTES];
		*ret_bad = index;
		if (index + 1 >= n_chunks)
			return OTA_ERR_INVALID_ARG; /* the last chunk is not whole here */
		ota_crypt_chunk_nonce(d->prefix, index, nonce);
		ota_crypt_chunk_aad(index, false, aad);
		enum ota_err err = ota_gcm_chunk_begin(gcm, nonce, aad, sizeof(aad));
		if (err == OTA_OK)
			err = ota_gcm_chunk_update(gcm, in, d->chunk_bytes, out);
		if (err == OTA_OK)
			err = ota_gcm_chunk_end(gcm, tags ? tags + i * OTA_CRYPT_TAG_BYTES
							  : in + d->chunk_bytes);
		if (err != OTA_OK)
			return err;
		in += in_step;
		out += d->chunk_bytes;
	}
	return OTA_OK;
}

enum ota_err ota_decrypt_chunks(const struct ota_decrypt *d, struct ota_gcm_ctx *gcm,
				uint64_t index, const uint8_t *in, size_t n, uint8_t *out,
				uint64_t *ret_bad)
{
	return decrypt_run(d, gcm, index, in, (size_t)d->chunk_bytes + OTA_CRYPT_TAG_BYTES, NULL, n,
			   out, ret_bad);
}

enum ota_err ota_decrypt_copy(struct ota_decrypt *dst, const struct ota_decrypt *src)
{
	struct ota_decrypt next;
	memset(&next, 0, sizeof(next));
	memset(dst, 0, sizeof(*dst));
	if (!src->on)
		return OTA_ERR_INVALID_ARG;
	next.on = true;
	next.chunk_bytes = src->chunk_bytes;
	next.plain_size = src->plain_size;
	next.wire_size = src->wire_size;
	memcpy(next.prefix, src->prefix, sizeof(next.prefix));
	enum ota_err err = ota_gcm_copy(&next.gcm, &src->gcm);
	if (err != OTA_OK)
		return err;
	*dst = next;
	return OTA_OK;
}

void ota_decrypt_ahead(struct ota_decrypt *d, uint64_t wire_off, const uint8_t *in, size_t len,
		       uint8_t *out, size_t cap, struct ota_decrypt_ahead *ret)
{
	uint64_t bad = 0;
	memset(ret, 0, sizeof(*ret));
	ret->in = in;
	ret->len = len;
	ret->wire_off = wire_off;
	ret->out = out;
	ret->err = OTA_OK;
	if (!d->on) {
		ret->err = OTA_ERR_INVALID_ARG;
		return;
	}
	memcpy(ret->prefix, d->prefix, sizeof(ret->prefix));
	uint64_t sealed = (uint64_t)d->chunk_bytes + OTA_CRYPT_TAG_BYTES;
	if (wire_off % sealed != 0 || wire_off >= d->wire_size)
		return;
	size_t n = whole_at(d, wire_off / sealed, len, cap);
	ret->err = ota_decrypt_chunks(d, &d->gcm, wire_off / sealed, in, n, out, &bad);
	ret->chunks = n;
}

size_t ota_decrypt_ahead_whole(const struct ota_decrypt *d, uint64_t wire_off, size_t cap)
{
	uint64_t sealed = (uint64_t)d->chunk_bytes + OTA_CRYPT_TAG_BYTES;
	if (!d->on || wire_off % sealed != 0 || wire_off >= d->wire_size)
		return 0;
	/* whole_at never counts past the chunk before the last */
	return whole_at(d, wire_off / sealed, SIZE_MAX, cap);
}

void ota_decrypt_ahead_in_place(struct ota_decrypt *d, uint64_t wire_off, uint8_t *io,
				const uint8_t *tags, size_t n, struct ota_decrypt_ahead *ret)
{
	uint64_t bad = 0;
	memset(ret, 0, sizeof(*ret));
	ret->wire_off = wire_off;
	ret->out = io;
	ret->err = OTA_ERR_INVALID_ARG;
	if (!d->on || n == 0 || n > ota_decrypt_ahead_whole(d, wire_off, SIZE_MAX))
		return;
	memcpy(ret->prefix, d->prefix, sizeof(ret->prefix));
	ret->len = n * ((size_t)d->chunk_bytes + OTA_CRYPT_TAG_BYTES);
	ret->chunks = n;
	uint64_t index = wire_off / ((uint64_t)d->chunk_bytes + OTA_CRYPT_TAG_BYTES);
	ret->err = decrypt_run(d, &d->gcm, index, io, d->chunk_bytes, tags, n, io, &bad);
	ret->bad = bad;
}

void ota_decrypt_skip(struct ota_decrypt *d, size_t n)
{
	d->index += n;
	d->wire_done += (uint64_t)n * (d->chunk_bytes + OTA_CRYPT_TAG_BYTES);
}

void ota_decrypt_close(struct ota_decrypt *d)
{
	if (!d)
		return;
	ota_gcm_close(&d->gcm);
	ota_gcm_close(&d->gcm_beside);
	wipe(d, sizeof(*d));
}

/* Tries every recipient entry the port holds a key for; the key on OTA_OK. */
static enum ota_err unwrap_any(const struct ota_port *port, const Fleetota__V1__Manifest *m,
			       uint8_t key[OTA_CEK_BYTES], struct ota_text *detail)
{
	const Fleetota__V1__Encryption *enc = m->encryption;
	enum ota_err verdict = OTA_ERR_NOT_RECIPIENT;
	for (size_t i = 0; i < enc->n_recipients; i++) {
		const Fleetota__V1__Recipient *r = enc->recipients[i];
		uint8_t context[OTA_CRYPT_WRAP_CONTEXT_BYTES];
		ota_crypt_wrap_context(r->key_id.data, enc->nonce_prefix.data,
				       m->image->sha256.data, context);
		struct ota_key_unwrap_request req = {
			.key_id = r->key_id.data,
			.ephemeral_public = r->ephemeral_public.data,
			.wrapped_key = r->wrapped_key.data,
			.context = context,
			.context_len = sizeof(context),
			.kind = (unsigned)r->kind,
			.ephemeral_public_len = r->ephemeral_public.len,
		};
		/* ota_encryption_check passed: a known kind, its length */
		if (ota_crypt_public_bytes(req.kind) != req.ephemeral_public_len)
			return OTA_ERR_FORMAT;
		enum ota_err err = port->ops->key_unwrap(port->ctx, &req, key);
		if (err == OTA_ERR_NOT_FOUND)
			continue;
		if (err == OTA_ERR_KEY_ACCESS) {
			wipe(key, OTA_CEK_BYTES);
			ota_text_str(detail, "the key store refused the key of entry \"");
			ota_text_str(detail, r->name);
			ota_text_str(detail, "\" (token, login or PIN)");
			return err;
		}
		if (err != OTA_OK) {
			wipe(key, OTA_CEK_BYTES);
			ota_text_str(detail, "content key of entry \"");
			ota_text_str(detail, r->name);
			ota_text_str(detail, "\" does not unwrap");
			return OTA_ERR_KEY_UNWRAP;
		}
		verdict = OTA_OK;
		break;
	}
	if (verdict == OTA_ERR_NOT_RECIPIENT) {
		ota_text_str(detail, "none of the ");
		ota_text_u64(detail, enc->n_recipients);
		ota_text_str(detail, " recipients is a key of this device");
	}
	return verdict;
}

enum ota_err ota_decrypt_prepare(const struct ota_port *port, const Fleetota__V1__Manifest *m,
				 struct ota_decrypt *ret, struct ota_text *detail)
{
	uint8_t key[OTA_CEK_BYTES];
	uint8_t check[OTA_KEY_CHECK_BYTES];
	memset(ret, 0, sizeof(*ret));
	if (!m->encryption)
		return OTA_OK;
	if (m->delta) {
		ota_text_str(detail, "encrypted delta updates are not supported");
		return OTA_ERR_UNSUPPORTED;
	}
	if (!port->ops->key_unwrap) {
		ota_text_str(detail, "this device has no decryption key");
		return OTA_ERR_UNSUPPORTED;
	}
	enum ota_err err = unwrap_any(port, m, key, detail);
	if (err != OTA_OK)
		return err;
	err = ota_crypt_key_check(key, m->encryption->nonce_prefix.data, check);
	if (err == OTA_OK &&
	    !ota_crypt_equal(check, m->encryption->key_check.data, OTA_KEY_CHECK_BYTES)) {
		ota_text_str(detail, "unwrapped key is not this image's key");
		err = OTA_ERR_KEY_UNWRAP;
	}
	if (err == OTA_OK)
		err = ota_decrypt_open(ret, m->encryption, m->image->size, key);
	/* a second context for the port's other thread; without one, all on this thread */
	if (err == OTA_OK && port->ops->run_beside)
		(void)ota_decrypt_open_beside(ret, key);
	wipe(key, sizeof(key));
	return err;
}
