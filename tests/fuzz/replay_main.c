/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays every file of the corpus directories given as arguments through
 * LLVMFuzzerTestOneInput, so fuzz targets run as ordinary tests when the
 * compiler has no libFuzzer. Fails when a directory holds no input.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (4u * 1024u * 1024u)

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	uint8_t *buf = malloc(REPLAY_MAX_INPUT);
	size_t len = buf ? fread(buf, 1, REPLAY_MAX_INPUT, f) : 0;
	fclose(f);
	if (!buf)
		return -1;
	/* an exact-size copy lets ASan see reads past the end of the input */
	uint8_t *input = malloc(len ? len : 1);
	if (!input) {
		free(buf);
		return -1;
	}
	memcpy(input, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(input, len);
	free(input);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned replayed = 0;
	for (int i = 1; i < argc; i++) {
		DIR *dir = opendir(argv[i]);
		if (!dir) {
			fprintf(stderr, "replay: cannot open %s\n", argv[i]);
			return 1;
		}
		struct dirent *entry;
		while ((entry = readdir(dir))) {
			char path[4096];
			struct stat st;
			snprintf(path, sizeof(path), "%s/%s", argv[i], entry->d_name);
			if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
				continue;
			if (replay_file(path) != 0) {
				fprintf(stderr, "replay: cannot read %s\n", path);
				closedir(dir);
				return 1;
			}
			replayed++;
		}
		closedir(dir);
	}
	printf("replayed %u inputs\n", replayed);
	return replayed > 0 ? 0 : 1;
}
