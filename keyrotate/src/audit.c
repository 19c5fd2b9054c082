/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signing audit log: one JSON object per line (docs/keys.md):
 *   {"seq":N,"time":"...","who":"...","object":"...","version":N,
 *    "key_id":"<hex>","sha256":"<hex>","prev":"<hex>","hash":"<hex>"}
 * "hash" is the SHA-256 of the line's bytes before ,"hash": and "prev" the
 * hash of the record before (64 zeros for the first), so editing,
 * removing or reordering a record breaks the chain at that record.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "kr.h"

#define HASH_HEX (2 * OTA_SHA256_BYTES)
#define HASH_MARK ",\"hash\":\""
/* ,"hash":" + 64 hex + "} */
#define HASH_TAIL (sizeof(HASH_MARK) - 1 + HASH_HEX + 2)

static const char zero_hash[HASH_HEX + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

struct record {
	uint64_t seq;
	char prev[HASH_HEX + 1];
	char hash[HASH_HEX + 1];
};

static int is_hex64(const char *s)
{
	return s && strlen(s) == HASH_HEX && strspn(s, "0123456789abcdef") == HASH_HEX;
}

/*
 * Parses one line (no newline) and checks that its hash covers its text.
 * OTA_OK; OTA_ERR_FORMAT (not a record); OTA_ERR_HASH (content edited).
 */
static enum ota_err record_parse(const char *line, size_t len, struct record *rec,
				 struct kr_diag *diag)
{
	uint8_t digest[OTA_SHA256_BYTES];
	char digest_hex[HASH_HEX + 1];
	json_error_t jerr;
	enum ota_err err = OTA_ERR_FORMAT;

	if (len < HASH_TAIL + 2 || len >= KR_MAX_AUDIT_LINE)
		return kr_fail(diag, OTA_ERR_FORMAT, "not a record (length %zu)", len);
	size_t body_len = len - HASH_TAIL;
	if (memcmp(line + body_len, HASH_MARK, sizeof(HASH_MARK) - 1) != 0 ||
	    memcmp(line + len - 2, "\"}", 2) != 0)
		return kr_fail(diag, OTA_ERR_FORMAT, "record does not end with its hash");
	json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj || !json_is_object(obj)) {
		kr_fail(diag, OTA_ERR_FORMAT, "not JSON: %s", jerr.text);
		goto out;
	}
	json_t *seq = json_object_get(obj, "seq");
	json_t *version = json_object_get(obj, "version");
	const char *prev = json_string_value(json_object_get(obj, "prev"));
	const char *hash = json_string_value(json_object_get(obj, "hash"));
	const char *key_id = json_string_value(json_object_get(obj, "key_id"));
	const char *sha = json_string_value(json_object_get(obj, "sha256"));
	if (!json_is_integer(seq) || json_integer_value(seq) < 1 || !json_is_integer(version) ||
	    json_integer_value(version) < 0 || !json_is_string(json_object_get(obj, "time")) ||
	    !json_is_string(json_object_get(obj, "who")) ||
	    !json_is_string(json_object_get(obj, "object")) || !is_hex64(prev) || !is_hex64(hash) ||
	    !is_hex64(key_id) || !is_hex64(sha)) {
		kr_fail(diag, OTA_ERR_FORMAT, "a field is missing or malformed");
		goto out;
	}
	if (ota_sha256(line, body_len, digest) != OTA_OK) {
		err = OTA_ERR_INTERNAL;
		goto out;
	}
	ota_hex_encode(digest, sizeof(digest), digest_hex);
	/* the hash parsed must be the one at the tail the digest was judged by */
	if (memcmp(line + body_len + sizeof(HASH_MARK) - 1, hash, HASH_HEX) != 0) {
		kr_fail(diag, OTA_ERR_FORMAT, "record does not end with its hash");
		goto out;
	}
	if (strcmp(digest_hex, hash) != 0) {
		err = kr_fail(diag, OTA_ERR_HASH,
			      "its hash does not match its content (record edited)");
		goto out;
	}
	rec->seq = (uint64_t)json_integer_value(seq);
	memcpy(rec->prev, prev, HASH_HEX + 1);
	memcpy(rec->hash, hash, HASH_HEX + 1);
	err = OTA_OK;
out:
	json_decref(obj);
	return err;
}

/* State of a chain check, fed one line at a time. */
struct chain {
	uint64_t records;
	char head[HASH_HEX + 1];
};

static enum ota_err chain_step(struct chain *chain, const char *line, size_t len,
			       struct kr_diag *diag)
{
	struct record rec;
	struct kr_diag detail = {{0}};
	uint64_t expected = chain->records + 1;
	enum ota_err err = record_parse(line, len, &rec, &detail);
	if (err == OTA_OK && rec.seq != expected)
		err = kr_fail(&detail, OTA_ERR_HASH,
			      "seq %llu where %llu was expected (record removed, inserted or "
			      "reordered)",
			      (unsigned long long)rec.seq, (unsigned long long)expected);
	if (err == OTA_OK && strcmp(rec.prev, chain->records ? chain->head : zero_hash) != 0)
		err = kr_fail(&detail, OTA_ERR_HASH,
			      "its prev does not match the hash of the record before (chain "
			      "broken)");
	if (err != OTA_OK)
		return kr_fail(diag, err, "record %llu (line %llu): %s",
			       (unsigned long long)expected, (unsigned long long)expected,
			       detail.msg);
	chain->records = expected;
	memcpy(chain->head, rec.hash, sizeof(chain->head));
	return OTA_OK;
}

static void result_fill(const struct chain *chain, enum ota_err err, struct kr_audit_result *result)
{
	result->records = chain->records;
	memcpy(result->head, chain->records ? chain->head : "", chain->records ? HASH_HEX + 1 : 1);
	result->bad_record = err == OTA_OK ? 0 : chain->records + 1;
}

enum ota_err kr_audit_verify_buf(const char *buf, size_t len, struct kr_audit_result *result,
				 struct kr_diag *diag)
{
	struct chain chain = {0};
	enum ota_err err = OTA_OK;
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		if (!nl) {
			err = kr_fail(diag, OTA_ERR_FORMAT,
				      "record %llu (line %llu): truncated (no newline)",
				      (unsigned long long)chain.records + 1,
				      (unsigned long long)chain.records + 1);
			break;
		}
		size_t line_len = (size_t)(nl - (buf + pos));
		err = chain_step(&chain, buf + pos, line_len, diag);
		if (err != OTA_OK)
			break;
		pos += line_len + 1;
	}
	result_fill(&chain, err, result);
	return err;
}

enum ota_err kr_audit_verify_file(const char *path, struct kr_audit_result *result,
				  struct kr_diag *diag)
{
	struct chain chain = {0};
	enum ota_err err = OTA_OK;
	char *line = malloc(KR_MAX_AUDIT_LINE + 1);
	FILE *f = fopen(path, "rb");
	if (!line || !f) {
		err = line ? kr_fail(diag, OTA_ERR_STORAGE, "cannot open %s: %s", path,
				     strerror(errno))
			   : OTA_ERR_NOMEM;
		goto out;
	}
	for (;;) {
		size_t len = 0;
		int c;
		while ((c = getc(f)) != EOF && c != '\n') {
			if (len >= KR_MAX_AUDIT_LINE) {
				err = kr_fail(diag, OTA_ERR_FORMAT,
					      "record %llu (line %llu): longer than %u bytes",
					      (unsigned long long)chain.records + 1,
					      (unsigned long long)chain.records + 1,
					      KR_MAX_AUDIT_LINE);
				goto done;
			}
			line[len++] = (char)c;
		}
		if (c == EOF && len == 0)
			break;
		if (c == EOF) {
			err = kr_fail(diag, OTA_ERR_FORMAT,
				      "record %llu (line %llu): truncated (no newline)",
				      (unsigned long long)chain.records + 1,
				      (unsigned long long)chain.records + 1);
			goto done;
		}
		err = chain_step(&chain, line, len, diag);
		if (err != OTA_OK)
			goto done;
	}
	if (ferror(f))
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot read %s", path);
done:
	result_fill(&chain, err, result);
out:
	if (f)
		fclose(f);
	free(line);
	return err;
}

/* The last record of an open log: its seq and hash (seq 0 for an empty log). */
static enum ota_err log_tail(int fd, struct record *last, struct kr_diag *diag)
{
	struct stat st;
	char buf[KR_MAX_AUDIT_LINE + 1];
	if (fstat(fd, &st) != 0)
		return kr_fail(diag, OTA_ERR_STORAGE, "cannot stat the audit log");
	if (st.st_size == 0) {
		last->seq = 0;
		memcpy(last->hash, zero_hash, sizeof(zero_hash));
		return OTA_OK;
	}
	size_t want = (size_t)st.st_size < sizeof(buf) ? (size_t)st.st_size : sizeof(buf);
	ssize_t got = pread(fd, buf, want, st.st_size - (off_t)want);
	if (got != (ssize_t)want)
		return kr_fail(diag, OTA_ERR_STORAGE, "cannot read the audit log");
	if (buf[want - 1] != '\n')
		return kr_fail(diag, OTA_ERR_FORMAT,
			       "the audit log does not end with a whole record; run audit-verify");
	size_t end = want - 1;
	size_t start = end;
	while (start > 0 && buf[start - 1] != '\n')
		start--;
	if (start == 0 && want == sizeof(buf))
		return kr_fail(diag, OTA_ERR_FORMAT, "the last audit record is too long");
	struct kr_diag detail = {{0}};
	enum ota_err err = record_parse(buf + start, end - start, last, &detail);
	if (err != OTA_OK)
		return kr_fail(diag, err, "the last audit record is bad (%s); run audit-verify",
			       detail.msg);
	return OTA_OK;
}

enum ota_err kr_audit_append(const char *path, const struct kr_audit_entry *entry,
			     struct kr_diag *diag)
{
	char when[KR_AUDIT_TIME_BYTES], key_id[HASH_HEX + 1], sha[HASH_HEX + 1], hash[HASH_HEX + 1];
	uint8_t digest[OTA_SHA256_BYTES];
	struct record last;
	char *text = NULL;
	json_t *obj = NULL;
	enum ota_err err;

	if (!entry->who || strlen(entry->who) > KR_MAX_SIGNER_BYTES)
		return kr_fail(diag, OTA_ERR_INVALID_ARG, "signer name missing or too long");
	int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return kr_fail(diag, OTA_ERR_STORAGE, "cannot open audit log %s: %s", path,
			       strerror(errno));
	/* one writer at a time, so two signers cannot both extend the same head */
	if (flock(fd, LOCK_EX) != 0) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot lock audit log %s", path);
		goto out;
	}
	err = log_tail(fd, &last, diag);
	if (err != OTA_OK)
		goto out;
	ota_hex_encode(entry->key_id, sizeof(entry->key_id), key_id);
	ota_hex_encode(entry->sha256, sizeof(entry->sha256), sha);
	obj = json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "seq",
			(json_int_t)(last.seq + 1), "time",
			kr_time_format(entry->time, when, sizeof(when)), "who", entry->who,
			"object", entry->object, "version", (json_int_t)entry->version, "key_id",
			key_id, "sha256", sha, "prev", last.hash);
	if (!obj || entry->version > (uint64_t)INT64_MAX) {
		err = kr_fail(diag, OTA_ERR_INVALID_ARG, "cannot encode the audit record");
		goto out;
	}
	text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	if (!text) {
		err = OTA_ERR_NOMEM;
		goto out;
	}
	size_t len = strlen(text);
	if (len < 2 || len + HASH_TAIL >= KR_MAX_AUDIT_LINE) {
		err = kr_fail(diag, OTA_ERR_INVALID_ARG, "audit record too long");
		goto out;
	}
	len--; /* drop the closing brace; the hash covers everything before ,"hash": */
	ota_sha256(text, len, digest);
	ota_hex_encode(digest, sizeof(digest), hash);
	char line[KR_MAX_AUDIT_LINE + 1];
	int line_len =
		snprintf(line, sizeof(line), "%.*s%s%s\"}\n", (int)len, text, HASH_MARK, hash);
	if (line_len < 0 || (size_t)line_len >= sizeof(line) ||
	    write(fd, line, (size_t)line_len) != line_len || fsync(fd) != 0) {
		err = kr_fail(diag, OTA_ERR_STORAGE, "cannot append to audit log %s", path);
		goto out;
	}
	err = OTA_OK;
out:
	free(text);
	json_decref(obj);
	close(fd);
	return err;
}
