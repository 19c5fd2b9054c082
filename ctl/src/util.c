/* SPDX-License-Identifier: Apache-2.0 */
/* Output helpers, bounded file reads and login profiles. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"

void ctl_print_json(const json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s != NULL) {
		puts(s);
		free(s);
	}
}

void ctl_bar(char *out, size_t cap, unsigned width, uint64_t total, uint64_t ok, uint64_t bad,
	     uint64_t flight)
{
	size_t used = 0;
	uint64_t denom = total > 0 ? total : 1;
	unsigned n_ok = (unsigned)(ok * width / denom);
	unsigned n_bad = (unsigned)(bad * width / denom);
	unsigned n_flight = (unsigned)(flight * width / denom);

	if (n_ok + n_bad + n_flight > width)
		n_flight = width > n_ok + n_bad ? width - n_ok - n_bad : 0;
	for (unsigned i = 0; i < width && used + 4 < cap; i++) {
		/* # confirmed, x failed, > in flight, . pending: readable without colour */
		char ch = i < n_ok			? '#'
			  : i < n_ok + n_bad		? 'x'
			  : i < n_ok + n_bad + n_flight ? '>'
							: '.';

		out[used++] = ch;
	}
	out[used] = '\0';
}

char *ctl_read_file(const char *path, size_t max, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t len;

	if (f == NULL)
		return NULL;
	buf = malloc(max + 1);
	if (buf == NULL) {
		fclose(f);
		return NULL;
	}
	len = fread(buf, 1, max + 1, f);
	fclose(f);
	if (len > max) {
		free(buf);
		errno = EFBIG;
		return NULL;
	}
	buf[len] = '\0';
	if (ret_len != NULL)
		*ret_len = len;
	return buf;
}

void ctl_mkdir_p(const char *path)
{
	char buf[CTL_MAX_PATH];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(buf, 0700);
		*p = '/';
	}
	mkdir(buf, 0700);
}

static void trim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 &&
	       (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	memmove(s, s + strspn(s, " \t"), strlen(s + strspn(s, " \t")) + 1);
}

/*
 * The profile file (default ~/.config/fleetota/ctl.conf, mode 0600):
 *   [default]
 *   server = http://127.0.0.1:8080
 *   token = fota_...
 * Values already set (options, environment) win over the file.
 */
bool ctl_profile_load(struct ctl *ctl)
{
	FILE *f = fopen(ctl->config_path, "r");
	char line[CTL_PROFILE_LINE_BYTES], section[CTL_MAX_PROFILE] = "";
	bool found = false;

	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *eq;

		trim(line);
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (line[0] == '[') {
			snprintf(section, sizeof(section), "%.*s", (int)strcspn(line + 1, "]"),
				 line + 1);
			found |= strcmp(section, ctl->profile) == 0;
			continue;
		}
		if (strcmp(section, ctl->profile) != 0 || (eq = strchr(line, '=')) == NULL)
			continue;
		*eq = '\0';
		trim(line);
		trim(eq + 1);
		if (strcmp(line, "server") == 0 && ctl->server[0] == '\0')
			snprintf(ctl->server, sizeof(ctl->server), "%s", eq + 1);
		else if (strcmp(line, "token") == 0 && ctl->token[0] == '\0')
			snprintf(ctl->token, sizeof(ctl->token), "%s", eq + 1);
		else if (strcmp(line, "cacert") == 0 && ctl->cacert[0] == '\0')
			snprintf(ctl->cacert, sizeof(ctl->cacert), "%s", eq + 1);
	}
	fclose(f);
	return found;
}

/* Rewrites the file with this profile replaced (others kept), mode 0600. */
bool ctl_profile_save(const struct ctl *ctl)
{
	char tmp[CTL_PROFILE_TMP_BYTES], line[CTL_PROFILE_LINE_BYTES],
		section[CTL_MAX_PROFILE] = "";
	size_t len = 0;
	char *old = ctl_read_file(ctl->config_path, 256 * 1024, &len);
	FILE *out;
	int fd;
	char *dir_end;
	char dir[CTL_MAX_PATH];

	snprintf(dir, sizeof(dir), "%s", ctl->config_path);
	dir_end = strrchr(dir, '/');
	if (dir_end != NULL) {
		*dir_end = '\0';
		ctl_mkdir_p(dir);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", ctl->config_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (out = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd);
		free(old);
		return false;
	}
	for (char *p = old, *nl; p != NULL && *p != '\0'; p = nl != NULL ? nl + 1 : NULL) {
		nl = strchr(p, '\n');
		snprintf(line, sizeof(line), "%.*s",
			 (int)(nl != NULL ? (size_t)(nl - p) : strlen(p)), p);
		if (line[0] == '[')
			snprintf(section, sizeof(section), "%.*s", (int)strcspn(line + 1, "]"),
				 line + 1);
		if (strcmp(section, ctl->profile) != 0)
			fprintf(out, "%s\n", line);
	}
	fprintf(out, "[%s]\nserver = %s\ntoken = %s\n", ctl->profile, ctl->server, ctl->token);
	if (ctl->cacert[0] != '\0')
		fprintf(out, "cacert = %s\n", ctl->cacert);
	free(old);
	if (fclose(out) != 0 || rename(tmp, ctl->config_path) != 0) {
		unlink(tmp);
		return false;
	}
	return true;
}
