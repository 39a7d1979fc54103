/* Replays every file of a fuzz target's corpus through its entry point as a TAP test, so
 * the corpus runs in `make test` with any compiler. A crash or sanitizer report fails the
 * run; a clean return is a pass. */
#include <dirent.h>

#include "core/common.h"

#include "core/file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(void)
{
	struct dirent **names;
	int n = scandir(PX_CORPUS_DIR, &names, NULL, by_name);
	if (n < 0) {
		printf("1..1\nnot ok 1 - cannot read corpus '%s': %s\n", PX_CORPUS_DIR,
		       strerror(errno));
		return 1;
	}
	int count = 0;
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			_cleanup_free_ char *path =
			        xasprintf("%s/%s", PX_CORPUS_DIR, names[i]->d_name);
			_cleanup_free_ char *data = NULL;
			size_t len = 0;
			struct px_err *err = NULL;
			if (px_file_read(path, 64u << 20, &data, &len, &err) < 0) {
				printf("not ok %d - %s: %s\n", ++count, names[i]->d_name, err->msg);
				px_err_free(err);
				return 1;
			}
			LLVMFuzzerTestOneInput((const uint8_t *)data, len);
			printf("ok %d - %s\n", ++count, names[i]->d_name);
		}
		free(names[i]);
	}
	free(names);
	printf("1..%d\n", count);
	return count > 0 ? 0 : 1;
}
