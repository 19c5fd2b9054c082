-- SPDX-License-Identifier: Apache-2.0
-- Resumable artifact uploads (web-api/src/uploads.c). A session is one
-- .otab being written, chunk by chunk, to a file in the server's private
-- upload directory (<store_dir>/.uploads/<upload_id>); this row is its
-- state. Only the token that created a session may use it. Sessions expire
-- and are purged (row and file). The bytes live only on the disk of the
-- server's upload directory: processes behind one load balancer share
-- sessions only if they share that directory. upload_create() is in
-- migrations/code/uploads.sql.
CREATE TABLE uploads (
	upload_id     text PRIMARY KEY CHECK (upload_id ~ '^u_[0-9a-f]{32}$'),
	token_id      bigint NOT NULL REFERENCES api_tokens (id),
	size          bigint NOT NULL CHECK (size > 0),
	upload_offset bigint NOT NULL DEFAULT 0
	              CHECK (upload_offset >= 0 AND upload_offset <= size),
	sha256        bytea CHECK (sha256 IS NULL OR length(sha256) = 32),
	created_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now(),
	expires_at    timestamptz NOT NULL
);
CREATE INDEX uploads_token_idx ON uploads (token_id);
CREATE INDEX uploads_expires_idx ON uploads (expires_at);

