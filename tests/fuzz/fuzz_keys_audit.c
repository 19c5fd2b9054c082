/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log parser and chain check (keyrotate/src/audit.c). */
#include <stddef.h>
#include <stdint.h>

#include "kr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kr_audit_result result;
	struct kr_diag diag;
	if (size > 64u * 1024u)
		return 0;
	kr_audit_verify_buf((const char *)data, size, &result, &diag);
	return 0;
}
