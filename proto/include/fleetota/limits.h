/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_LIMITS_H
#define FLEETOTA_LIMITS_H

/*
 * Every length that comes from outside is checked against one of these
 * before it is used. Change them here and nowhere else.
 */

/* A Signed envelope (body + signatures) as a whole. */
#define OTA_MAX_ENVELOPE_BYTES (64u * 1024u)
/* The body inside an envelope. */
#define OTA_MAX_BODY_BYTES (60u * 1024u)
/* Signatures on one envelope. */
#define OTA_MAX_SIGNATURES 16u
/* One signature (DER ECDSA P-256 is at most 72 bytes, Ed25519 is 64). */
#define OTA_MAX_SIG_BYTES 80u
/* A key id (SHA-256). */
#define OTA_KEY_ID_BYTES 32u
/* A public key as SubjectPublicKeyInfo DER (P-256 uncompressed is 91). */
#define OTA_MAX_PUBKEY_DER_BYTES 128u
/* Keys in a RootList or a KeyList. */
#define OTA_MAX_KEYS 32u
/* Hardware revisions named by one manifest. */
#define OTA_MAX_HW_REVISIONS 32u
/* Any string field (model, version, names). */
#define OTA_MAX_STRING_BYTES 128u
/*
 * Longest device id (certificate CN, MQTT client id and topic level): the
 * server refuses a longer one, so the agent refuses it at config load.
 */
#define OTA_MAX_DEVICE_ID_BYTES 64u
/* SHA-256 digest. */
#define OTA_SHA256_BYTES 32u
/* AES-256-GCM: key, nonce, tag (the GCM decryptor of fleetota/crypto.h). */
#define OTA_AES256_KEY_BYTES 32u
#define OTA_GCM_NONCE_BYTES 12u
#define OTA_GCM_TAG_BYTES 16u
/* The bundle header (manifest, keylist, rootlist chain). */
#define OTA_MAX_BUNDLE_HEADER_BYTES (256u * 1024u)
/* RootLists carried in one bundle's chain. */
#define OTA_MAX_ROOT_CHAIN 8u
/* Largest image a manifest may declare (64 GiB). */
#define OTA_MAX_IMAGE_BYTES (64ull * 1024ull * 1024ull * 1024ull)
/* Signing-input prefix: "fleetota/v1/" + longest type + NUL. */
#define OTA_MAX_SIGNING_PREFIX 32u
/*
 * Longest life of a signed Timestamp (expires_at - issued_at): a stolen
 * timestamp key or a captured timestamp buys an attacker at most this.
 */
#define OTA_MAX_TIMESTAMP_LIFETIME_S (7ull * 24ull * 3600ull)
/*
 * How far a Timestamp's issued_at may lie ahead of a device's trusted
 * clock: a stolen timestamp key cannot fast-forward the device's ratchet.
 */
#define OTA_TIMESTAMP_MAX_SKEW_S 3600ull
/* Decoding arena that holds one decoded envelope or body. */
#define OTA_DECODE_ARENA_BYTES (96u * 1024u)
/* MQTT payloads (Notify, StatusReport with its pending events). */
#define OTA_MAX_MQTT_PAYLOAD_BYTES (32u * 1024u)
/* Events carried in one StatusReport. */
#define OTA_MAX_REPORT_EVENTS 32u
/* Encrypted images: recipients of one artifact's content key. */
#define OTA_MAX_RECIPIENTS 64u
/* Plaintext bytes per encrypted chunk: bounds of the manifest's chunk_bytes. */
#define OTA_MIN_CRYPT_CHUNK_BYTES 256u
#define OTA_MAX_CRYPT_CHUNK_BYTES (16u * 1024u * 1024u)

/*
 * Sizes inside proto's own implementation (not on the wire).
 */
/* Room for a backend's running SHA-256 / AES-GCM state (crypto.h), in words. */
#define OTA_SHA256_CTX_WORDS 30u
#define OTA_GCM_CTX_WORDS 64u
/* Decoded public keys kept by the verifier (crypto_openssl.c). */
#define OTA_KEY_CACHE_SLOTS 16u
/* Signed messages up to this size are assembled on the stack. */
#define OTA_VERIFY_STACK_MSG_BYTES 2048u
/* An EC group's name as OpenSSL reports it ("prime256v1"). */
#define OTA_EC_GROUP_NAME_BYTES 32u

#endif
