/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SRV_UTF8_INTERNAL_H
#define SRV_UTF8_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * true when the len bytes of s are well-formed UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF) with no NUL:
 * exactly the text a PostgreSQL UTF8 database accepts. Every string from
 * outside that reaches SQL passes this first; otherwise PostgreSQL refuses
 * the statement (SQLSTATE 22021) and the caller would see a storage error
 * instead of a refusal of the input.
 */
bool srv_utf8_valid(const char *s, size_t len);

/* The same for a NUL-terminated string (NULL is not valid). */
bool srv_utf8_valid_str(const char *s);

#endif
