/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Cortex-M link check's firmware: the reset handler runs the boot step
 * and then every entry point of the core once, the online install policy
 * included, so the linker keeps all of
 * it and the size report (scripts/mcu-build.sh) counts the whole core.
 * Linked with -nostdlib: an OS call anywhere in the core is an undefined
 * symbol and fails the build.
 */
#include <stddef.h>
#include <stdint.h>

#include "fleetota/agent.h"
#include "fleetota/online.h"
#include "mcu_port.h"

/* Scratch memory the core borrows during a call. */
static uint8_t work[OTA_AGENT_WORK_BYTES];
/* The online policy's: manifest, KeyList, one report. */
static uint8_t online_work[OTA_ONLINE_WORK_BYTES];
/*
 * Delta updates: the zstd decoder (about 96 KiB), one 16 KiB chunk and
 * its frame; deltas made with ota-keys sign --delta-chunk 16384.
 */
#define MCU_DELTA_CHUNK_BYTES (16u * 1024u)
static uint8_t delta_work[112u * 1024u + 2u * MCU_DELTA_CHUNK_BYTES + 2048u];
static struct ota_agent agent;
static const uint8_t nothing[1];
volatile enum ota_err mcu_last_err;
volatile unsigned mcu_slot;

/*
 * protobuf-c's default allocator names malloc and free. The core passes
 * its bounded arena to every decode, so they are never called; defined
 * here so that no C library allocator (and its sbrk) is linked.
 */
void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void free(void *ptr);
void *malloc(size_t size)
{
	(void)size;
	return NULL;
}
/* the same for zstd's allocating entry points, which the core never calls */
void *calloc(size_t n, size_t size)
{
	(void)n;
	(void)size;
	return NULL;
}
void free(void *ptr)
{
	(void)ptr;
}

/* Reports would leave over the device's uplink; the stub sends none. */
static bool report_begin(void *arg, const struct ota_agent_status *st, uint64_t *seq)
{
	(void)arg;
	(void)st;
	*seq = 0;
	return false;
}

static void report_send(void *arg, const uint8_t *buf, size_t len)
{
	(void)arg;
	(void)buf;
	(void)len;
}

void Reset_Handler(void);
void Reset_Handler(void)
{
	const struct ota_agent_config config = {.model = "mcu-demo",
						.hw_revision = "a",
						.delta_work = delta_work,
						.delta_work_len = sizeof(delta_work)};
	const uint8_t *lists[1] = {nothing};
	const size_t lens[1] = {sizeof(nothing)};
	struct ota_agent_status status;
	struct ota_port port;
	unsigned slot = 0;
	enum ota_err err;

	ota_mcu_port(&port);
	err = ota_agent_init(&agent, &port, &config, work, sizeof(work));
	if (err == OTA_OK)
		err = ota_agent_boot(&agent, &slot);
	if (err == OTA_OK)
		err = ota_agent_provision(&agent, nothing, sizeof(nothing), nothing,
					  sizeof(nothing));
	if (err == OTA_OK)
		err = ota_agent_update_rootlist(&agent, lists, lens, 1);
	if (err == OTA_OK)
		err = ota_agent_update_keylist(&agent, nothing, sizeof(nothing));
	if (err == OTA_OK)
		err = ota_agent_begin_bundle(&agent, nothing, sizeof(nothing));
	if (err == OTA_OK)
		err = ota_agent_write(&agent, nothing, sizeof(nothing));
	if (err == OTA_OK)
		err = ota_agent_finish(&agent);
	if (err != OTA_OK)
		ota_agent_abort(&agent, err, "mcu", false);
	if (ota_agent_selftest(&agent) != OTA_OK)
		ota_agent_revert(&agent, OTA_ERR_SELFTEST, "mcu");
	ota_agent_confirm(&agent);
	/* the online install policy, through the port's transport */
	struct ota_online online = {.agent = &agent,
				    .device_id = "mcu-1",
				    .model = config.model,
				    .hw_revision = config.hw_revision,
				    .download_retries = 3,
				    .work = online_work,
				    .report_begin = report_begin,
				    .report_send = report_send};
	ota_online_update_lists(&online, true, true);
	if (ota_online_install(&online, "fw") != OTA_OK)
		ota_online_resume(&online);
	ota_online_report(&online, ota_online_idle_state(&agent));
	ota_agent_status(&agent, &status);
	mcu_last_err = err;
	mcu_slot = slot + status.running_slot;
	ota_agent_close(&agent);
	for (;;) {
	}
}

/* The vector table: initial stack pointer, then the reset handler. */
extern uint32_t mcu_stack_top;
struct mcu_vectors {
	uint32_t *stack_top;
	void (*reset)(void);
};
__attribute__((section(".isr_vector"), used))
const struct mcu_vectors mcu_vectors = {&mcu_stack_top, Reset_Handler};
