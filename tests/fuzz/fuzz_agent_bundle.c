/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The whole device path for a .otab: the input is a bundle file, installed
 * (prefix, header verified by the core, image streamed) on a provisioned
 * simulator device, then booted and confirmed. Trust anchors come from
 * deterministic test keys (root seed 1, operational key seed 2) so that
 * seed bundles made with the same keys verify and reach the deep states.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleetota/agent.h"
#include "fleetota/bundle.h"
#include "ota_fixture.h"
#include "ota_sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ota_fx_buf root_bytes;
static struct ota_fx_buf kl_bytes;
static uint8_t *work;

static void setup_once(void)
{
	if (work)
		return;
	EVP_PKEY *root = ota_fx_key_seeded(1);
	EVP_PKEY *op = ota_fx_key_seeded(2);
	struct ota_fx_rootlist rs = {.version = 1,
				     .threshold = 1,
				     .keys = &root,
				     .n_keys = 1,
				     .signers = &root,
				     .n_signers = 1};
	Fleetota__V1__Signed *r = ota_fx_rootlist(&rs);
	struct ota_fx_opkey opk = {.key = op};
	struct ota_fx_keylist ks = {
		.version = 1, .keys = &opk, .n_keys = 1, .signers = &root, .n_signers = 1};
	Fleetota__V1__Signed *k = ota_fx_keylist(&ks);
	root_bytes = ota_fx_env_bytes(r);
	kl_bytes = ota_fx_env_bytes(k);
	ota_fx_env_free(r);
	ota_fx_env_free(k);
	EVP_PKEY_free(root);
	EVP_PKEY_free(op);
	work = malloc(OTA_AGENT_WORK_BYTES);
	if (!work)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ota_agent agent;
	struct ota_agent_config cfg = {
		.model = "fx-model", .hw_revision = "revA", .checkpoint_bytes = 512};
	uint32_t header_len = 0;
	unsigned slot = 0;
	setup_once();
	struct ota_sim *sim = ota_sim_new(64u * 1024u);
	if (!sim)
		abort();
	struct ota_port port = ota_sim_port(sim);
	if (ota_agent_init(&agent, &port, &cfg, work, OTA_AGENT_WORK_BYTES) != OTA_OK ||
	    ota_agent_provision(&agent, root_bytes.data, root_bytes.len, kl_bytes.data,
				kl_bytes.len) != OTA_OK)
		abort();
	if (size < OTA_BUNDLE_PREFIX_BYTES ||
	    ota_bundle_prefix_parse(data, &header_len) != OTA_OK ||
	    header_len > size - OTA_BUNDLE_PREFIX_BYTES)
		goto out;
	if (ota_agent_begin_bundle(&agent, data + OTA_BUNDLE_PREFIX_BYTES, header_len) != OTA_OK)
		goto out;
	size_t pos = OTA_BUNDLE_PREFIX_BYTES + header_len;
	while (pos < size) {
		size_t n = size - pos < 700 ? size - pos : 700;
		if (ota_agent_write(&agent, data + pos, n) != OTA_OK)
			goto out;
		pos += n;
	}
	if (ota_agent_finish(&agent) != OTA_OK)
		goto out;
	if (ota_agent_boot(&agent, &slot) != OTA_OK)
		__builtin_trap(); /* a verified pending image must boot */
	if (ota_agent_confirm(&agent) != OTA_OK)
		__builtin_trap();
	struct ota_agent_status st;
	ota_agent_status(&agent, &st);
	if (st.security_counter != st.confirmed.security_counter)
		__builtin_trap();
out:
	ota_agent_close(&agent);
	ota_sim_free(sim);
	return 0;
}
