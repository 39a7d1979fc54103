#include <archive.h>
#include <archive_entry.h>

#include "core/common.h"

#include "apk/tarmem.h"

#define MAX_ENTRIES 10000

static void archive_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

int px_tarmem_each(const void *buf, size_t len, const char *what, size_t max_entry, px_tarmem_fn fn,
                   void *ctx, struct px_err **err)
{
	_cleanup_(archive_freep) struct archive *a = archive_read_new();
	struct archive_entry *e;
	unsigned count = 0;
	int r;

	if (!a)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot initialise libarchive");
	archive_read_support_format_tar(a);
	if (archive_read_open_memory(a, buf, len) != ARCHIVE_OK)
		return px_err_set(err, PX_EXIT_INPUT, "'%s': not a tar archive: %s", what,
		                  archive_error_string(a));
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		if (++count > MAX_ENTRIES)
			return px_err_set(err, PX_EXIT_INPUT, "'%s': more than %d tar entries",
			                  what, MAX_ENTRIES);
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		const char *name = archive_entry_pathname(e);
		if (!name)
			return px_err_set(err, PX_EXIT_INPUT, "'%s': tar entry without a name",
			                  what);
		while (name[0] == '.' && name[1] == '/')
			name += 2;
		int64_t size = archive_entry_size(e);
		if (size < 0 || (uint64_t)size > max_entry)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s': entry '%s' is larger than %zu bytes", what, name,
			                  max_entry);
		_cleanup_free_ uint8_t *data = xmalloc((size_t)size + 1);
		size_t got = 0;
		while (got < (size_t)size) {
			la_ssize_t n = archive_read_data(a, data + got, (size_t)size - got);
			if (n < 0)
				return px_err_set(err, PX_EXIT_INPUT, "'%s': entry '%s': %s", what,
				                  name, archive_error_string(a));
			if (n == 0)
				return px_err_set(err, PX_EXIT_INPUT,
				                  "'%s': entry '%s' is truncated", what, name);
			got += (size_t)n;
		}
		data[got] = 0;
		int s = fn(ctx, name, data, got, err);
		if (s < 0)
			return -1;
		if (s > 0)
			return 0;
	}
	if (r != ARCHIVE_EOF)
		return px_err_set(err, PX_EXIT_INPUT, "'%s': corrupt tar: %s", what,
		                  archive_error_string(a) ? archive_error_string(a) : "bad header");
	return 0;
}
