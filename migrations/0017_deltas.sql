-- SPDX-License-Identifier: Apache-2.0
-- Delta updates, the server side (issue 15; docs/server.md "Delta updates"):
--   - an artifact carries deltas from named bases: the signed delta manifest
--     (the artifact's image, version and counter plus a DeltaInfo) and its
--     payload in the content-addressed store, one per base image;
--   - devices keep the hash of the image they run (StatusReport 21), the
--     base a delta for them must start from;
--   - an assignment remembers what delivery chose for it (full, delta, or
--     the full image after a delta failed) and the bytes a delta saved.
-- The functions are in migrations/code/deltas.sql. Never edit once released.

CREATE TABLE artifact_deltas (
	artifact_id     text NOT NULL REFERENCES artifacts (artifact_id) ON DELETE CASCADE,
	base_sha256     bytea NOT NULL CHECK (length(base_sha256) = 32),
	base_size       bigint NOT NULL CHECK (base_size > 0),
	digest          bytea NOT NULL UNIQUE,      -- SHA-256 of the manifest envelope
	manifest        bytea NOT NULL,             -- the Signed envelope (a delta manifest)
	delta_sha256    bytea NOT NULL CHECK (length(delta_sha256) = 32),
	delta_size      bigint NOT NULL CHECK (delta_size > 0),
	algorithm       text NOT NULL,
	chunk_bytes     bigint NOT NULL CHECK (chunk_bytes > 0),
	signing_key_id  bytea NOT NULL CHECK (length(signing_key_id) = 32),
	store_path      text NOT NULL,              -- relative to store_dir (the payload)
	uploaded_by     text NOT NULL DEFAULT '',
	created_at      timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (artifact_id, base_sha256)
);
CREATE INDEX artifact_deltas_store_idx ON artifact_deltas (store_path);

ALTER TABLE devices
	ADD COLUMN running_sha256 bytea CHECK (running_sha256 IS NULL OR length(running_sha256) = 32);

ALTER TABLE assignments
	-- '' until the device asked for the manifest
	ADD COLUMN delivery text NOT NULL DEFAULT ''
		CHECK (delivery IN ('', 'full', 'delta', 'fallback')),
	ADD COLUMN delivery_base bytea CHECK (delivery_base IS NULL OR length(delivery_base) = 32),
	-- image size minus delta size for a delta; 0 otherwise
	ADD COLUMN delivery_saved_bytes bigint NOT NULL DEFAULT 0 CHECK (delivery_saved_bytes >= 0),
	-- a delta rejection was taken as "falls back to the full image" (once per delta served)
	ADD COLUMN delta_rejection_forgiven boolean NOT NULL DEFAULT false;
