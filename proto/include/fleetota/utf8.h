/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLEETOTA_UTF8_H
#define FLEETOTA_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The one UTF-8 check of fleetota (device, server, ota-keys): true when the
 * len bytes of s are well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) with no NUL: exactly the text a
 * PostgreSQL UTF8 database accepts and what proto3 requires of a string
 * field (protobuf-c does not check it). Every string from outside passes
 * this before it is used: the server's query parameters, path ids and
 * reports, and the strings of every signed object (ota_*_parse); otherwise
 * PostgreSQL refuses the statement (SQLSTATE 22021) and the caller would
 * see a storage error instead of a refusal of the input.
 */
bool ota_utf8_valid(const char *s, size_t len);

/* The same for a NUL-terminated string (NULL is not valid). */
bool ota_utf8_valid_str(const char *s);

#endif
