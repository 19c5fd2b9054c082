/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_LINUX_H
#define OTA_LINUX_H

/*
 * The reference Linux port: the agent's config file, file-backed slots and
 * crash-safe records under state_dir. Reused by ota-agent and by the fleet
 * simulator.
 */

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetota/crypt.h"
#include "fleetota/decrypt.h"
#include "fleetota/err.h"
#include "fleetota/port.h"
#include "linux-limits.h"

/* The agent's configuration (`key = value` lines, '#' comments). */
struct ota_config {
	char state_dir[OTA_CONFIG_MAX_PATH];
	char device_id[OTA_MAX_DEVICE_ID_BYTES + 1u];
	char model[OTA_CONFIG_MAX_NAME];
	char hw_revision[OTA_CONFIG_MAX_NAME];
	char server_url[OTA_CONFIG_MAX_PATH];
	char broker_url[OTA_CONFIG_MAX_PATH];
	char ca_file[OTA_CONFIG_MAX_PATH];
	char device_cert[OTA_CONFIG_MAX_PATH];
	char device_key[OTA_CONFIG_MAX_PATH];
	char selftest_cmd[OTA_CONFIG_MAX_PATH];
	/* encrypted images: PEM X25519 private keys (this device's, its product line's) */
	char decrypt_key[OTA_CONFIG_MAX_PATH];
	char product_key[OTA_CONFIG_MAX_PATH];
	/*
	 * encrypted images, a P-256 key in a PKCS#11 token (unwrap_pkcs11.c):
	 * the module (.so), the token's label, the key pair's object label
	 * (private and public objects), a file holding the user PIN
	 */
	char pkcs11_module[OTA_CONFIG_MAX_PATH];
	char pkcs11_token[OTA_CONFIG_MAX_NAME];
	char pkcs11_key[OTA_CONFIG_MAX_NAME];
	char pkcs11_pin_file[OTA_CONFIG_MAX_PATH];
	/* SHA-256 of the server's SubjectPublicKeyInfo, hex, comma separated */
	uint8_t server_pins[OTA_CONFIG_MAX_PINS][OTA_SHA256_BYTES];
	size_t n_server_pins;
	uint64_t slot_size; /* bytes per slot; default 256 MiB */
	uint64_t checkpoint_bytes; /* staging checkpoint; default 1 MiB */
	bool trust_clock; /* the system clock is authenticated */
	unsigned stall_timeout_s; /* a download with no byte for this long fails */
	unsigned report_interval_s;
	unsigned download_retries; /* resumed attempts after the first (default 5) */
	/* signed freshness: report "may be frozen" after this long without a fresh Timestamp (0 = off) */
	uint64_t freshness_max_age_s;
	unsigned timestamp_interval_s; /* fetch /v1/timestamp/MODEL this often (default 3600) */
};

/*
 * Parses len bytes of config text. OTA_OK, or OTA_ERR_FORMAT with one line
 * in err ("line 3: unknown key 'x'"). state_dir, device_id, model and
 * hw_revision are required.
 */
enum ota_err ota_config_parse(const char *text, size_t len, struct ota_config *ret_config,
			      char err[OTA_CONFIG_ERR_BYTES]);

/* Reads and parses a file (at most OTA_CONFIG_MAX_BYTES). */
enum ota_err ota_config_load(const char *path, struct ota_config *ret_config,
			     char err[OTA_CONFIG_ERR_BYTES]);

/* The Linux port's context: one device's state directory. */
struct ota_https;

struct ota_linux_port {
	char dir[OTA_CONFIG_MAX_PATH];
	uint64_t slot_size;
	bool trust_clock;
	bool quiet;
	const char *selftest_cmd; /* NULL or "" = no self-test hook */
	unsigned reboots_requested;
	/* the transport (agent/port/linux/transport.c); fetch fails until set */
	struct ota_https *https; /* borrowed */
	const char *server_url; /* "https://host:port", borrowed */
	const volatile sig_atomic_t *stop; /* set by a signal handler: wait returns */
	/* recipient key files (decrypt_key, product_key; "" = none), borrowed */
	const char *unwrap_keys[2];
	/* a recipient key in a PKCS#11 token (module NULL = none), borrowed */
	struct ota_linux_pkcs11 {
		const char *module, *token, *key, *pin_file;
	} pkcs11;
	/* slot_map: the running slot mapped read-only for a delta's base */
	const void *map[OTA_SLOT_COUNT];
	size_t map_len[OTA_SLOT_COUNT];
	/*
	 * Slot writes through a writer thread (slot_writer.c, started at the
	 * first write; ota-agent sets it after ota_linux_port_open, the fleet
	 * simulator does not): 8 MiB of buffers and a thread per device.
	 */
	bool async_slot_writes;
	struct ota_slot_writer *writer;
	/*
	 * The read-ahead of the bundle being installed (borrowed, NULL when
	 * none): a slot write of one of its pieces takes the piece instead of
	 * copying it (slot_writer.c).
	 */
	struct ota_readahead *readahead;
	/* run_beside's helper thread (beside.c), with async_slot_writes only */
	struct ota_beside *beside;
};

/*
 * Prepares ctx for state directory dir (created 0700 if missing) and
 * returns the port. The ops table has a self-test hook only when
 * selftest_cmd is set. OTA_ERR_STORAGE when dir is unusable.
 */
enum ota_err ota_linux_port_open(struct ota_linux_port *ctx, const struct ota_config *config,
				 struct ota_port *ret_port);

/*
 * Ends what ota_linux_port_open started: waits for the slot writes in
 * flight (they are durable only after a slot_sync, as the contract says)
 * and stops the writer and run_beside threads. ctx may be reopened afterwards.
 */
void ota_linux_port_close(struct ota_linux_port *ctx);

/*
 * The port's writer thread (slot_writer.c): write queues a copy of data
 * for slot at off (coalesced into 1 MiB writes); drain waits until every
 * queued write is done and returns the first failure (kept until reset,
 * which drains and forgets it); sync drains and fdatasyncs the slot file
 * when the writer has it open (*ret_synced), else the caller syncs it.
 */
enum ota_err ota_slot_writer_write(struct ota_linux_port *lx, unsigned slot, uint64_t off,
				   const uint8_t *data, size_t len);
enum ota_err ota_slot_writer_drain(struct ota_linux_port *lx);
/*
 * The port's slot_buffer op with the writer thread: the free end of the
 * buffer being filled for slot at off (*ret_cap bytes), NULL on a failure.
 */
uint8_t *ota_slot_writer_buffer(struct ota_linux_port *lx, unsigned slot, uint64_t off,
				size_t *ret_cap);

/* drain, only when one of the queued writes is for slot (else OTA_OK at once) */
enum ota_err ota_slot_writer_drain_slot(struct ota_linux_port *lx, unsigned slot);
void ota_slot_writer_reset(struct ota_linux_port *lx);
enum ota_err ota_slot_writer_sync(struct ota_linux_port *lx, unsigned slot, bool *ret_synced);
void ota_slot_writer_close(struct ota_linux_port *lx);

/*
 * The port's run_beside op (beside.c): beside on the helper thread (started
 * at the first call, with async_slot_writes only) while the caller runs
 * own; both in the caller without the thread, and beside in the caller
 * when the helper has not started it by the end of own. close stops the
 * thread.
 */
void ota_linux_run_beside(void *ctx, void (*beside)(void *arg), void *beside_arg,
			  void (*own)(void *arg), void *own_arg);
void ota_linux_beside_close(struct ota_linux_port *lx);

/*
 * Reads fd from offset to its end in chunk-sized pieces, one thread a few
 * pieces ahead of the caller (readahead.c). next hands out the next piece
 * (valid until the following next or close; *ret_len 0 at the end) or
 * OTA_ERR_STORAGE on a read error.
 */
struct ota_readahead;
enum ota_err ota_readahead_open(int fd, uint64_t offset, size_t chunk,
				struct ota_readahead **ret_ra);
enum ota_err ota_readahead_next(struct ota_readahead *ra, const uint8_t **ret_data,
				size_t *ret_len);
/*
 * The same, decrypting ahead (an encrypted install, fleetota/decrypt.h):
 * the thread runs ota_decrypt_ahead with dec (the caller's until after
 * close) on each piece it read, whose ciphertext offset starts at
 * wire_off, into a plaintext buffer of out_cap bytes; next_ahead also
 * hands out that result (valid as long as the piece), for
 * ota_agent_write_ahead. When chunk is a whole number of sealed chunks
 * whose plaintext is out_cap bytes, such a piece is read apart and
 * decrypted in place (ota_decrypt_ahead_in_place): next_ahead then hands
 * out no ciphertext (*ret_data NULL, *ret_len its length).
 */
enum ota_err ota_readahead_open_ahead(int fd, uint64_t offset, size_t chunk,
				      struct ota_decrypt *dec, uint64_t wire_off, size_t out_cap,
				      struct ota_readahead **ret_ra);
enum ota_err ota_readahead_next_ahead(struct ota_readahead *ra, const uint8_t **ret_data,
				      size_t *ret_len, const struct ota_decrypt_ahead **ret_ahead);
void ota_readahead_close(struct ota_readahead *ra);
/*
 * When data is the piece handed out last and len its chunk size, or its
 * plaintext buffer (decrypting ahead) and len that buffer's size: takes
 * *io_buf (a free buffer of the same size) in its place and returns the
 * buffer in *io_buf, for the caller to keep (true); else false.
 */
bool ota_readahead_swap(struct ota_readahead *ra, const uint8_t *data, size_t len,
			uint8_t **io_buf);

/*
 * Buffers of OTA_SLOT_WRITER_BUF_BYTES for the slot writer and the
 * read-ahead, which trade them (ota_readahead_swap): two to a 2 MiB
 * aligned block the kernel is asked to back with one huge page
 * (MADV_HUGEPAGE), so a direct write of a buffer is a few physically
 * contiguous segments, not 256 pages (slot_writer.c). A block goes back
 * when both its buffers are put back. Thread-safe; NULL when out of memory.
 */
uint8_t *ota_linux_buf_get(void);
void ota_linux_buf_put(uint8_t *buf);
/*
 * Whether the kernel gives the pool huge pages (transparent_hugepage
 * "always" or "madvise"); the slot writer writes directly only then.
 */
bool ota_linux_buf_huge(void);

/*
 * The port's transport operations (fleetota/port.h): fetch is a GET of
 * req->path on server_url with the HTTPS client (ota_https.h: mutual TLS,
 * pinning, bounded headers and body, stall and slow-drip deadlines,
 * Range); wait sleeps in steps of 100 ms until the time is up or *stop
 * is set. ctx is a struct ota_linux_port.
 */
enum ota_err ota_linux_fetch(void *ctx, const struct ota_fetch_request *req, ota_port_sink_fn sink,
			     void *sink_arg, struct ota_fetch_result *ret);
void ota_linux_wait(void *ctx, unsigned seconds);

/*
 * The port's key_unwrap operation (fleetota/port.h) over the key files of
 * ctx->unwrap_keys: each is read when an encrypted manifest arrives, used
 * and freed (agent/port/linux/unwrap.c; docs/porting.md for a PKCS#11 or
 * TPM key instead).
 */
enum ota_err ota_linux_key_unwrap(void *ctx, const struct ota_key_unwrap_request *req,
				  uint8_t ret_key[OTA_CEK_BYTES]);

/*
 * The same for the P-256 key of a PKCS#11 token (unwrap_pkcs11.c): loads
 * the module, finds the token by label and the public key object by
 * label (its key id, no login yet: OTA_ERR_NOT_FOUND when it is not
 * req->key_id), logs in with the PIN of p->pin_file, derives the ECDH
 * secret in the token (CKM_ECDH1_DERIVE, the private key never leaves
 * it), reads it once, destroys it, and unwraps in software. Everything
 * is closed and the PIN and the secret wiped before it returns.
 * OTA_ERR_KEY_ACCESS (one line on stderr with the PKCS#11 return value)
 * when the module, token, key or login fails.
 */
enum ota_err ota_linux_pkcs11_unwrap(const struct ota_linux_pkcs11 *p,
				     const struct ota_key_unwrap_request *req,
				     uint8_t ret_key[OTA_CEK_BYTES]);

/*
 * Post-install health (health.c; files in the state directory): the health
 * op (the application writes 0..1000 to STATE_DIR/health; boots without a
 * reboot request are counted); the reboot op's marker; a boot happened
 * (counted unless the agent asked for it); the open health window after a
 * confirm, kept across restarts (until 0 = closed).
 */
enum ota_err ota_linux_health(void *ctx, struct ota_port_health *ret);
void ota_linux_reboot_mark(struct ota_linux_port *lx);
enum ota_err ota_linux_boot_note(struct ota_linux_port *lx);
enum ota_err ota_linux_health_window_save(struct ota_linux_port *lx, uint64_t until, uint64_t base);
bool ota_linux_health_window_load(struct ota_linux_port *lx, uint64_t *ret_until,
				  uint64_t *ret_base);

/* Path of slot N's image file (for tools and tests). */
void ota_linux_slot_path(const struct ota_linux_port *ctx, unsigned slot, char *buf, size_t cap);

/* pwrite until len bytes are written at off (EINTR retried). */
bool ota_linux_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/*
 * pread until len bytes are read from off or the file ends (EINTR
 * retried): *ret_done is how many were read. false: a read failed.
 */
bool ota_linux_pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *ret_done);

#endif
