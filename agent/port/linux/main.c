/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ota-agent: the reference Linux agent (DESIGN.md section 6).
 *   provision --config F --rootlist F --keylist F [--image BUNDLE]
 *   install BUNDLE --config F      offline install (USB / SD card)
 *   boot --config F                the bootloader step of this port
 *   confirm --config F
 *   status [--json] --config F
 *   run --config F                 the online daemon (MQTT + HTTPS)
 *   fetch ARTIFACT --config F      one online install (HTTPS only)
 *   freshness --config F           fetch + judge the signed Timestamp once
 *   --version; --help (also after a command: that command's help)
 * Exit 0 on success; a rejected update exits 1 with one line
 * "rejected: OTA_ERR_X: detail"; usage and setup errors exit 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <jansson.h>

#include "fleetota-version.h"
#include "fleetota/agent.h"
#include "fleetota/bundle.h"
#include "fleetota/freshness.h"
#include "fleetota/hex.h"
#include "ota_agent_cli.h"
#include "ota_linux.h"

#define EXIT_REJECTED 1
#define EXIT_USAGE 2

struct cli {
	const char *command;
	const char *config_path;
	const char *rootlist_path;
	const char *keylist_path;
	const char *image_path;
	const char *bundle_path;
	bool json;
	struct ota_config config;
	struct ota_linux_port port_ctx;
	struct ota_port port;
	struct ota_agent agent;
	uint8_t *work;
	uint8_t *delta_work;
	int lock_fd;
};

/* Every command: its usage line and what it does (--help). */
static const struct {
	const char *name, *usage, *help;
} commands[] = {
	{"provision", "provision --config F --rootlist F --keylist F [--image BUNDLE]",
	 "Factory step: installs the trust anchors (RootList, KeyList) and, with --image,\n"
	 "the first firmware into slot A."},
	{"install", "install BUNDLE --config F",
	 "Offline install (USB, SD card): verifies the bundle, writes the inactive slot and\n"
	 "marks it pending. The next `ota-agent boot` starts it in trial."},
	{"boot", "boot --config F",
	 "The bootloader step of this port, run once per boot before the application: a\n"
	 "pending slot is verified again and booted in trial; a trial that was never\n"
	 "confirmed reverts to the previous slot."},
	{"confirm", "confirm --config F",
	 "The application's self-test passed: the trial slot becomes permanent, then the\n"
	 "security counter advances."},
	{"status", "status [--json] --config F",
	 "Active slot, versions, security counter, KeyList/RootList versions, pending,\n"
	 "last error."},
	{"run", "run --config F",
	 "The online daemon: MQTT notifications and reports, HTTPS delivery; confirms a\n"
	 "trial slot after its self-test (self_test_cmd)."},
	{"fetch", "fetch ARTIFACT --config F", "One online install over HTTPS (no MQTT)."},
	{"freshness", "freshness --config F",
	 "Fetches the product line's signed Timestamp once over HTTPS, keeps it when it is\n"
	 "newer and fresh, and judges freshness: exit 1 with OTA_ERR_FROZEN when no fresh\n"
	 "Timestamp was seen for freshness_max_age seconds."},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage_to(FILE *out)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "%s ota-agent %s\n", i == 0 ? "usage:" : "      ", commands[i].usage);
	fprintf(out, "       ota-agent --version | --help | COMMAND --help\n");
}

static void usage(void)
{
	usage_to(stderr);
}

/* --version and --help anywhere answer on stdout and exit 0 (no config needed). */
static bool early_answer(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("ota-agent %s\n", fleetota_version());
			return true;
		}
		if (strcmp(argv[i], "--help") != 0 && strcmp(argv[i], "-h") != 0)
			continue;
		for (size_t k = 0; k < N_COMMANDS; k++) {
			if (strcmp(argv[1], commands[k].name) == 0) {
				printf("usage: ota-agent %s\n%s\n", commands[k].usage,
				       commands[k].help);
				return true;
			}
		}
		usage_to(stdout);
		return true;
	}
	return false;
}

static int parse_args(struct cli *cli, int argc, char **argv)
{
	if (argc < 2)
		return -1;
	cli->command = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *arg = argv[i];
		const char **target = NULL;
		if (strcmp(arg, "--config") == 0)
			target = &cli->config_path;
		else if (strcmp(arg, "--rootlist") == 0)
			target = &cli->rootlist_path;
		else if (strcmp(arg, "--keylist") == 0)
			target = &cli->keylist_path;
		else if (strcmp(arg, "--image") == 0)
			target = &cli->image_path;
		else if (strcmp(arg, "--json") == 0) {
			cli->json = true;
			continue;
		} else if (arg[0] != '-' && !cli->bundle_path) {
			cli->bundle_path = arg;
			continue;
		} else {
			fprintf(stderr, "ota-agent: unknown argument %s\n", arg);
			return -1;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "ota-agent: %s needs a value\n", arg);
			return -1;
		}
		*target = argv[++i];
	}
	if (!cli->config_path) {
		fprintf(stderr, "ota-agent: --config is required\n");
		return -1;
	}
	return 0;
}

/* One line for a refused step; the detail comes from the agent's state. */
static int report_rejection(struct cli *cli, enum ota_err err)
{
	struct ota_agent_status st;
	ota_agent_status(&cli->agent, &st);
	const char *detail = st.last_error == err ? st.last_error_detail : ota_err_describe(err);
	printf("rejected: %s: %s\n", ota_err_name(err), detail[0] ? detail : ota_err_describe(err));
	fflush(stdout);
	return EXIT_REJECTED;
}

/* Reads a whole small file (an envelope) into buf; bounded by cap. */
static int read_small_file(const char *path, uint8_t *buf, size_t cap, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "ota-agent: %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t len = fread(buf, 1, cap, f);
	int extra = fgetc(f);
	bool bad = ferror(f) != 0;
	fclose(f);
	if (bad || extra != EOF) {
		fprintf(stderr, "ota-agent: %s: unreadable or larger than %zu bytes\n", path, cap);
		return -1;
	}
	*ret_len = len;
	return 0;
}

static size_t read_full(FILE *f, uint8_t *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		size_t n = fread(buf + done, 1, len - done, f);
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

/*
 * The offline install: prefix, header (verified by the core before one
 * image byte is read), then the image streamed from the resume offset.
 * Every byte after the header goes to the core, which refuses anything
 * beyond the declared size: trailing bytes are OTA_ERR_SIZE.
 */
static enum ota_err install_bundle(struct cli *cli, const char *path)
{
	uint8_t prefix[OTA_BUNDLE_PREFIX_BYTES];
	uint32_t header_len = 0;
	uint8_t *header = NULL;
	enum ota_err err;
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "ota-agent: %s: %s\n", path, strerror(errno));
		return OTA_ERR_NOT_FOUND;
	}
	if (read_full(f, prefix, sizeof(prefix)) != sizeof(prefix) ||
	    ota_bundle_prefix_parse(prefix, &header_len) != OTA_OK) {
		fclose(f);
		return ota_agent_record_failure(&cli->agent, OTA_ERR_FORMAT, "not a .otab bundle");
	}
	header = malloc(header_len);
	if (!header) {
		err = OTA_ERR_NOMEM;
		goto out;
	}
	if (read_full(f, header, header_len) != header_len) {
		err = ota_agent_record_failure(&cli->agent, OTA_ERR_FORMAT,
					       "bundle ends inside its header");
		goto out;
	}
	err = ota_agent_begin_bundle(&cli->agent, header, header_len);
	if (err != OTA_OK)
		goto out;
	uint64_t offset = ota_agent_offset(&cli->agent);
	if (offset > 0)
		fprintf(stderr, "ota-agent: resuming at byte %llu\n", (unsigned long long)offset);
	/*
	 * read one step ahead (a thread) while the core hashes and stages; a
	 * delta's payload is small and its decode, not the read, sets the
	 * pace: small pieces keep its RAM to the applier's work area
	 */
	size_t piece = ota_agent_install_is_delta(&cli->agent, NULL) ? OTA_AGENT_CLI_DELTA_CHUNK
								     : OTA_AGENT_CLI_STREAM_CHUNK;
	size_t slot_piece = piece;
	/*
	 * an encrypted image: the read-ahead thread decrypts what it read, in
	 * pieces of whole chunks whose plaintext fills one slot writer buffer
	 */
	struct ota_decrypt dec;
	bool ahead = ota_agent_ahead_open(&cli->agent, &dec) == OTA_OK;
	if (ahead) {
		size_t chunks = OTA_SLOT_WRITER_BUF_BYTES / dec.chunk_bytes;
		slot_piece = (chunks ? chunks : 1u) * dec.chunk_bytes;
		piece = (chunks ? chunks : 1u) * (dec.chunk_bytes + (size_t)OTA_CRYPT_TAG_BYTES);
	}
	struct ota_readahead *ra = NULL;
	err = ota_readahead_open_ahead(fileno(f),
				       OTA_BUNDLE_PREFIX_BYTES + (uint64_t)header_len + offset,
				       piece, ahead ? &dec : NULL, offset, slot_piece, &ra);
	if (err != OTA_OK) {
		if (ahead)
			ota_decrypt_close(&dec);
		(void)ota_agent_abort(&cli->agent, err, "out of memory", true);
		goto out;
	}
	/* the slot writer takes the read (or decrypted) pieces instead of copying them */
	cli->port_ctx.readahead = slot_piece == OTA_SLOT_WRITER_BUF_BYTES ? ra : NULL;
	for (;;) {
		const uint8_t *data = NULL;
		const struct ota_decrypt_ahead *decrypted = NULL;
		size_t n = 0;
		err = ota_readahead_next_ahead(ra, &data, &n, &decrypted);
		if (err != OTA_OK) {
			(void)ota_agent_abort(&cli->agent, OTA_ERR_STORAGE, "bundle read error",
					      true);
			break;
		}
		if (n == 0)
			break;
		err = decrypted ? ota_agent_write_ahead(&cli->agent, decrypted)
				: ota_agent_write(&cli->agent, data, n);
		if (err != OTA_OK)
			break;
	}
	cli->port_ctx.readahead = NULL;
	ota_readahead_close(ra);
	if (ahead)
		ota_decrypt_close(&dec);
	if (err != OTA_OK)
		goto out;
	err = ota_agent_finish(&cli->agent);
out:
	free(header);
	fclose(f);
	return err;
}

/* exclusive: every command but status (each record copy is an atomic file, so a read is safe) */
static int open_agent(struct cli *cli, bool exclusive)
{
	char err[OTA_CONFIG_ERR_BYTES];
	char lock_path[OTA_CONFIG_MAX_PATH + 16];
	if (ota_config_load(cli->config_path, &cli->config, err) != OTA_OK) {
		fprintf(stderr, "ota-agent: config %s: %s\n", cli->config_path, err);
		return -1;
	}
	if (ota_linux_port_open(&cli->port_ctx, &cli->config, &cli->port) != OTA_OK) {
		fprintf(stderr, "ota-agent: state_dir %s unusable\n", cli->config.state_dir);
		return -1;
	}
	/* hash the next chunk while the last one is written (docs/agent.md, "Staging speed") */
	cli->port_ctx.async_slot_writes = true;
	/* one agent process that changes the device at a time */
	if (exclusive) {
		snprintf(lock_path, sizeof(lock_path), "%s/lock", cli->config.state_dir);
		cli->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (cli->lock_fd < 0 || flock(cli->lock_fd, LOCK_EX | LOCK_NB) != 0) {
			fprintf(stderr, "ota-agent: %s is in use by another ota-agent\n",
				cli->config.state_dir);
			return -1;
		}
	}
	cli->work = malloc(OTA_AGENT_WORK_BYTES);
	/* delta updates: one chunk, one frame and the decoder (fleetota/delta.h) */
	cli->delta_work = malloc(OTA_DELTA_WORK_BYTES);
	if (!cli->work || !cli->delta_work)
		return -1;
	/* a Linux device stages images of hundreds of MiB into files: every
	 * checkpoint stalls the pipeline for three syncs (the slot, two state
	 * copies), so checkpoint every 32 MiB unless the config says otherwise
	 * (the core's default suits small flash; docs/agent.md, "Staging speed") */
	uint64_t checkpoint = cli->config.checkpoint_bytes ? cli->config.checkpoint_bytes
							   : OTA_LINUX_CHECKPOINT_BYTES;
	struct ota_agent_config acfg = {.model = cli->config.model,
					.hw_revision = cli->config.hw_revision,
					.checkpoint_bytes = checkpoint,
					.freshness_max_age_s = cli->config.freshness_max_age_s,
					.delta_work = cli->delta_work,
					.delta_work_len = OTA_DELTA_WORK_BYTES};
	enum ota_err e =
		ota_agent_init(&cli->agent, &cli->port, &acfg, cli->work, OTA_AGENT_WORK_BYTES);
	if (e != OTA_OK) {
		fprintf(stderr, "ota-agent: state unreadable: %s\n", ota_err_name(e));
		return -1;
	}
	return 0;
}

static int cmd_provision(struct cli *cli)
{
	size_t root_len = 0;
	size_t kl_len = 0;
	int rc = EXIT_USAGE;
	if (!cli->rootlist_path || !cli->keylist_path) {
		fprintf(stderr, "ota-agent: provision needs --rootlist and --keylist\n");
		return EXIT_USAGE;
	}
	uint8_t *root = malloc(OTA_MAX_ENVELOPE_BYTES);
	uint8_t *kl = malloc(OTA_MAX_ENVELOPE_BYTES);
	if (!root || !kl ||
	    read_small_file(cli->rootlist_path, root, OTA_MAX_ENVELOPE_BYTES, &root_len) != 0 ||
	    read_small_file(cli->keylist_path, kl, OTA_MAX_ENVELOPE_BYTES, &kl_len) != 0)
		goto out;
	enum ota_err err = ota_agent_provision(&cli->agent, root, root_len, kl, kl_len);
	if (err != OTA_OK) {
		/* BUSY: any copy of a trust record exists, even with the state lost */
		printf("rejected: %s: %s\n", ota_err_name(err),
		       err == OTA_ERR_BUSY ? "device already provisioned (trust records exist)"
					   : "trust anchors refused");
		rc = EXIT_REJECTED;
		goto out;
	}
	if (cli->image_path) {
		/* the factory image: verified like any other, then made permanent */
		unsigned slot = 0;
		err = install_bundle(cli, cli->image_path);
		if (err == OTA_OK)
			err = ota_agent_boot(&cli->agent, &slot);
		if (err == OTA_OK)
			err = ota_agent_confirm(&cli->agent);
		if (err != OTA_OK) {
			rc = report_rejection(cli, err);
			goto out;
		}
	}
	printf("provisioned\n");
	rc = 0;
out:
	free(root);
	free(kl);
	return rc;
}

static int cmd_install(struct cli *cli)
{
	if (!cli->bundle_path) {
		fprintf(stderr, "ota-agent: install needs a bundle file\n");
		return EXIT_USAGE;
	}
	enum ota_err err = install_bundle(cli, cli->bundle_path);
	if (err != OTA_OK)
		return report_rejection(cli, err);
	ota_agent_request_reboot(&cli->agent);
	struct ota_agent_status st;
	ota_agent_status(&cli->agent, &st);
	printf("pending: %s in slot %u (run the boot step)\n", st.target.version,
	       st.phase == OTA_PHASE_PENDING ? cli->agent.state.target_slot : 0);
	return 0;
}

static int cmd_boot(struct cli *cli)
{
	unsigned slot = 0;
	/* health: a boot the agent did not ask for is counted (health.c) */
	(void)ota_linux_boot_note(&cli->port_ctx);
	enum ota_err err = ota_agent_boot(&cli->agent, &slot);
	if (err != OTA_OK)
		return report_rejection(cli, err);
	struct ota_agent_status st;
	ota_agent_status(&cli->agent, &st);
	if (st.phase == OTA_PHASE_TRIAL) {
		printf("booted slot %u: %s (trial)\n", slot, st.target.version);
		if (cli->port_ctx.selftest_cmd) {
			err = ota_agent_selftest(&cli->agent);
			if (err != OTA_OK)
				return report_rejection(cli, err);
			printf("confirmed: %s\n", st.target.version);
		}
		return 0;
	}
	printf("booted slot %u: %s\n", slot, st.confirmed.version);
	return 0;
}

static int cmd_confirm(struct cli *cli)
{
	enum ota_err err = ota_agent_confirm(&cli->agent);
	if (err != OTA_OK)
		return report_rejection(cli, err);
	struct ota_agent_status st;
	ota_agent_status(&cli->agent, &st);
	printf("confirmed: %s (security counter %llu)\n", st.confirmed.version,
	       (unsigned long long)st.security_counter);
	return 0;
}

static json_t *slot_json(const struct ota_slot_info *info)
{
	char sha[2 * OTA_SHA256_BYTES + 1];
	if (!info->valid)
		return json_null();
	ota_hex_encode(info->sha256, OTA_SHA256_BYTES, sha);
	return json_pack("{s:s, s:I, s:I, s:I, s:s}", "version", info->version, "version_code",
			 (json_int_t)info->version_code, "security_counter",
			 (json_int_t)info->security_counter, "size", (json_int_t)info->size,
			 "sha256", sha);
}

static int cmd_status(struct cli *cli)
{
	struct ota_agent_status st;
	ota_agent_status(&cli->agent, &st);
	const char *err_name = st.last_error ? ota_err_name(st.last_error) : NULL;
	if (!cli->json) {
		printf("device %s (%s %s)\n", cli->config.device_id, cli->config.model,
		       cli->config.hw_revision);
		printf("provisioned %s, phase %s, running slot %u\n", st.provisioned ? "yes" : "no",
		       ota_phase_name(st.phase), st.running_slot);
		printf("version %s (%llu), security counter %llu\n",
		       st.confirmed.valid ? st.confirmed.version : "-",
		       (unsigned long long)st.confirmed.version_code,
		       (unsigned long long)st.security_counter);
		printf("keylist %llu, rootlist %llu\n", (unsigned long long)st.keylist_version,
		       (unsigned long long)st.rootlist_version);
		if (err_name)
			printf("last error %s: %s\n", err_name, st.last_error_detail);
		return 0;
	}
	json_t *root = json_pack(
		"{s:s, s:s, s:s, s:b, s:s, s:i, s:i, s:o, s:I, s:I, s:I, s:I, s:b, s:o, s:I, s:I, "
		"s:I}",
		"device_id", cli->config.device_id, "model", cli->config.model, "hw_revision",
		cli->config.hw_revision, "provisioned", st.provisioned, "phase",
		ota_phase_name(st.phase), "active_slot", (int)st.running_slot, "confirmed_slot",
		(int)st.confirmed_slot, "installed", slot_json(&st.confirmed), "version_code",
		(json_int_t)(st.confirmed.valid ? st.confirmed.version_code : 0),
		"security_counter", (json_int_t)st.security_counter, "keylist_version",
		(json_int_t)st.keylist_version, "rootlist_version", (json_int_t)st.rootlist_version,
		"pending", st.phase == OTA_PHASE_PENDING || st.phase == OTA_PHASE_TRIAL, "target",
		st.phase != OTA_PHASE_IDLE ? slot_json(&st.target) : json_null(), "staged_bytes",
		(json_int_t)st.staged_bytes, "latest_trusted_time", (json_int_t)st.latest_time,
		"next_event_seq", (json_int_t)st.next_event_seq);
	if (!root)
		return EXIT_USAGE;
	json_object_set_new(root, "version",
			    st.confirmed.valid ? json_string(st.confirmed.version) : json_null());
	json_object_set_new(root, "last_error", err_name ? json_string(err_name) : json_null());
	json_object_set_new(root, "last_error_detail", json_string(st.last_error_detail));
	struct ota_freshness fresh;
	if (ota_agent_freshness(&cli->agent, &fresh) == OTA_OK)
		json_object_set_new(root, "freshness",
				    json_pack("{s:I, s:I, s:s, s:I, s:b}", "timestamp_issued_at",
					      (json_int_t)fresh.issued_at, "timestamp_expires_at",
					      (json_int_t)fresh.expires_at, "current_version",
					      fresh.version, "current_version_code",
					      (json_int_t)fresh.version_code, "frozen",
					      fresh.frozen));
	char *text = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(2));
	json_decref(root);
	if (!text)
		return EXIT_USAGE;
	printf("%s\n", text);
	free(text);
	return 0;
}

int main(int argc, char **argv)
{
	struct cli cli;
	int rc = EXIT_USAGE;
	memset(&cli, 0, sizeof(cli));
	cli.lock_fd = -1;
	if (early_answer(argc, argv))
		return 0;
	if (parse_args(&cli, argc, argv) != 0) {
		usage();
		return EXIT_USAGE;
	}
	if (open_agent(&cli, strcmp(cli.command, "status") != 0) != 0)
		goto out;
	if (strcmp(cli.command, "provision") == 0)
		rc = cmd_provision(&cli);
	else if (strcmp(cli.command, "install") == 0)
		rc = cmd_install(&cli);
	else if (strcmp(cli.command, "boot") == 0)
		rc = cmd_boot(&cli);
	else if (strcmp(cli.command, "confirm") == 0)
		rc = cmd_confirm(&cli);
	else if (strcmp(cli.command, "status") == 0)
		rc = cmd_status(&cli);
	else if (strcmp(cli.command, "fetch") == 0)
		rc = ota_agent_fetch(&cli.agent, &cli.config, &cli.port_ctx, cli.bundle_path);
	else if (strcmp(cli.command, "freshness") == 0)
		rc = ota_agent_freshness_once(&cli.agent, &cli.config, &cli.port_ctx);
	else if (strcmp(cli.command, "run") == 0)
		rc = ota_agent_run(&cli.agent, &cli.config, &cli.port_ctx);
	else {
		usage();
		rc = EXIT_USAGE;
	}
out:
	ota_agent_close(&cli.agent);
	ota_linux_port_close(&cli.port_ctx);
	free(cli.work);
	free(cli.delta_work);
	if (cli.lock_fd >= 0)
		close(cli.lock_fd);
	return rc;
}
