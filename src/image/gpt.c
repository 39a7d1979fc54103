#include <libfdisk/libfdisk.h>
#include <stdarg.h>
#include <strings.h>

#include "core/common.h"

#include "core/reader.h"

#include "core/file.h"
#include "core/log.h"
#include "image/gpt.h"

/* One open image: the libfdisk context and the last message libfdisk produced, which is
 * usually the reason behind a failure ("Failed to resize partition #2."). */
struct gpt {
	struct fdisk_context *cxt;
	const char *image;
	char *last_msg;
	int assigned;
};

static void gpt_close(struct gpt *g)
{
	if (g->cxt) {
		if (g->assigned)
			fdisk_deassign_device(g->cxt, 1);
		fdisk_unref_context(g->cxt);
	}
	free(g->last_msg);
	g->cxt = NULL;
	g->last_msg = NULL;
	g->assigned = 0;
}

/* libfdisk talks through this callback only. Messages are kept and logged at debug level;
 * every question is declined, so libfdisk can never wait for an answer on a terminal. */
static int ask_cb(struct fdisk_context *cxt PX_UNUSED, struct fdisk_ask *ask, void *data)
{
	struct gpt *g = data;
	switch (fdisk_ask_get_type(ask)) {
	case FDISK_ASKTYPE_INFO:
	case FDISK_ASKTYPE_WARN:
	case FDISK_ASKTYPE_WARNX: {
		const char *msg = fdisk_ask_print_get_mesg(ask);
		if (!msg)
			return 0;
		px_log_debug("libfdisk: '%s': %s", g->image, msg);
		if (fdisk_ask_get_type(ask) != FDISK_ASKTYPE_INFO) {
			free(g->last_msg);
			g->last_msg = xstrdup(msg);
		}
		return 0;
	}
	default:
		return -EINVAL;
	}
}

/* The one place libfdisk's negative errno codes become errors: the message gets libfdisk's
 * own last warning when there is one. */
__attribute__((format(printf, 4, 5))) static int
fdisk_fail(struct gpt *g, int rc, struct px_err **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *head = xvasprintf(fmt, ap);
	va_end(ap);
	int e = rc < 0 ? -rc : EIO;
	if (g->last_msg) {
		size_t n = strlen(g->last_msg);
		while (n > 0 && (g->last_msg[n - 1] == '.' || g->last_msg[n - 1] == '\n'))
			n--;
		return px_err_errno(err, e, "%s (libfdisk: %.*s)", head, (int)n, g->last_msg);
	}
	return px_err_errno(err, e, "%s", head);
}

/* Whether an MBR holds a GPT-protective (type 0xEE) entry: then the GPT it announces
 * was unreadable, which deserves a clearer message than "not GPT". */
static int has_protective_entry(struct gpt *g)
{
	for (size_t i = 0; i < 4; i++) {
		struct fdisk_partition *pa = NULL;
		if (!fdisk_is_partition_used(g->cxt, i) || fdisk_get_partition(g->cxt, i, &pa) < 0)
			continue;
		struct fdisk_parttype *t = fdisk_partition_get_type(pa);
		unsigned code = t ? fdisk_parttype_get_code(t) : 0;
		fdisk_unref_partition(pa);
		if (code == 0xee)
			return 1;
	}
	return 0;
}

/* Opens 'image' and checks that it carries a GPT. A writable open lets libfdisk move a
 * misplaced backup header to the end of the file; the move reaches the disk on write. */
static int gpt_open(struct gpt *g, const char *image, int readonly, struct px_err **err)
{
	*g = (struct gpt){.image = image};
	g->cxt = fdisk_new_context();
	if (!g->cxt)
		return px_err_errno(err, ENOMEM, "cannot create a libfdisk context");
	fdisk_set_ask(g->cxt, ask_cb, g);
	fdisk_disable_dialogs(g->cxt, 1);
	int rc = fdisk_assign_device(g->cxt, image, readonly);
	if (rc < 0)
		return fdisk_fail(g, rc, err, "cannot open disk image '%s'", image);
	g->assigned = 1;
	if (!fdisk_has_label(g->cxt))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "disk image '%s' has no partition table (expected GPT)", image);
	if (fdisk_is_label(g->cxt, DOS) && has_protective_entry(g))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "disk image '%s' has a protective MBR but no valid GPT header "
		                  "(the primary and the backup are both damaged)",
		                  image);
	if (!fdisk_is_label(g->cxt, GPT)) {
		const char *name = fdisk_label_get_name(fdisk_get_label(g->cxt, NULL));
		return px_err_set(err, PX_EXIT_INPUT,
		                  "disk image '%s' has a %s partition table, not GPT%s%s", image,
		                  name ? name : "non-GPT", g->last_msg ? " (libfdisk: " : "",
		                  g->last_msg ? g->last_msg : "");
	}
	if (fdisk_get_sector_size(g->cxt) != 512)
		return px_err_set(err, PX_EXIT_INPUT, "disk image '%s' has %lu-byte sectors", image,
		                  fdisk_get_sector_size(g->cxt));
	return 0;
}

static int label_u64(struct gpt *g, int id, uint64_t *ret, struct px_err **err)
{
	struct fdisk_labelitem *item = fdisk_new_labelitem();
	if (!item)
		return px_err_errno(err, ENOMEM, "cannot allocate a libfdisk label item");
	int rc = fdisk_get_disklabel_item(g->cxt, id, item);
	if (rc == 0)
		rc = fdisk_labelitem_get_data_u64(item, ret);
	fdisk_unref_labelitem(item);
	if (rc != 0)
		return fdisk_fail(g, rc < 0 ? rc : -EINVAL, err,
		                  "cannot read the GPT header of '%s'", g->image);
	return 0;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

/* Fills *ret with partition number 'partno' (0-based) as the in-memory table has it. */
static int read_partition(struct gpt *g, size_t partno, struct px_partition *ret,
                          struct px_err **err)
{
	struct fdisk_partition *pa = NULL;
	int rc = fdisk_get_partition(g->cxt, partno, &pa);
	if (rc < 0)
		return fdisk_fail(g, rc, err, "cannot read partition %zu of '%s'", partno + 1,
		                  g->image);
	struct px_partition p = {.index = partno + 1};
	uint64_t ss = fdisk_get_sector_size(g->cxt);
	p.start = (uint64_t)fdisk_partition_get_start(pa) * ss;
	p.size = (uint64_t)fdisk_partition_get_size(pa) * ss;
	struct fdisk_parttype *t = fdisk_partition_get_type(pa);
	copy_str(p.type_guid, sizeof(p.type_guid), t ? fdisk_parttype_get_string(t) : NULL);
	copy_str(p.uuid, sizeof(p.uuid), fdisk_partition_get_uuid(pa));
	copy_str(p.name, sizeof(p.name), fdisk_partition_get_name(pa));
	fdisk_unref_partition(pa);
	rc = fdisk_gpt_get_partition_attrs(g->cxt, partno, &p.attrs);
	if (rc < 0)
		return fdisk_fail(g, rc, err, "cannot read the attributes of partition %zu of '%s'",
		                  partno + 1, g->image);
	*ret = p;
	return 0;
}

/* Picks the root partition of an open image (see px_gpt_find_root). */
static int pick_root(struct gpt *g, int root_index, struct px_partition *ret, struct px_err **err)
{
	size_t n = fdisk_get_npartitions(g->cxt);
	if (root_index < 0)
		return px_err_set(err, PX_EXIT_INPUT, "invalid root partition number %d",
		                  root_index);
	if (root_index > 0) {
		if ((size_t)root_index > n || !fdisk_is_partition_used(g->cxt, root_index - 1))
			return px_err_set(err, PX_EXIT_INPUT, "disk image '%s' has no partition %d",
			                  g->image, root_index);
		return read_partition(g, (size_t)root_index - 1, ret, err);
	}

	size_t found = 0, count = 0;
	char others[64] = "";
	for (size_t i = 0; i < n; i++) {
		if (!fdisk_is_partition_used(g->cxt, i))
			continue;
		struct px_partition p;
		if (read_partition(g, i, &p, err) < 0)
			return -1;
		if (strcasecmp(p.type_guid, PX_GPT_TYPE_LINUX_FS) != 0)
			continue;
		if (count++ == 0) {
			found = i;
			*ret = p;
		} else {
			size_t len = strlen(others);
			snprintf(others + len, sizeof(others) - len, ", %zu", i + 1);
		}
	}
	if (count == 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "disk image '%s' has no Linux filesystem partition (type %s); "
		                  "name the root partition by number",
		                  g->image, PX_GPT_TYPE_LINUX_FS);
	if (count > 1)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "disk image '%s' has %zu Linux filesystem partitions (%zu%s); "
		                  "name the root partition by number",
		                  g->image, count, found + 1, others);
	return 0;
}

int px_gpt_find_root(const char *image, int root_index, struct px_partition *ret,
                     struct px_err **err)
{
	_cleanup_(gpt_close) struct gpt g = {0};
	if (gpt_open(&g, image, 1, err) < 0 || pick_root(&g, root_index, ret, err) < 0)
		return -1;
	return 0;
}

/* The first sector of the partition that follows 'root' on the disk, or 0 when none does. */
static uint64_t next_start(struct gpt *g, const struct px_partition *root)
{
	uint64_t next = 0, root_start = root->start / 512;
	for (size_t i = 0; i < fdisk_get_npartitions(g->cxt); i++) {
		struct fdisk_partition *pa = NULL;
		if (!fdisk_is_partition_used(g->cxt, i) || i + 1 == root->index ||
		    fdisk_get_partition(g->cxt, i, &pa) < 0)
			continue;
		uint64_t s = fdisk_partition_get_start(pa);
		fdisk_unref_partition(pa);
		if (s > root_start && (next == 0 || s < next))
			next = s;
	}
	return next;
}

/* What the old layout looked like, read before the file grows. */
struct old_layout {
	struct px_partition root;
	uint64_t backup_first; /* first sector of the backup table */
	uint64_t backup_last;  /* the backup header's sector */
	uint64_t last_usable;
};

/* True when the primary GPT header is intact and names a backup header before the last
 * sector of the file: the state of an image whose file was extended after the GPT was
 * written. Reads the header directly, as libfdisk's own view is already mended. */
static bool backup_short_of_end(const char *image)
{
	_cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);
	uint8_t hdr[92];
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 ||
	    pread(fd, hdr, sizeof(hdr), 512) != (ssize_t)sizeof(hdr))
		return false;
	if (memcmp(hdr, "EFI PART", 8) != 0)
		return false;
	uint64_t alternate = px_get_le64(hdr + 32);
	return alternate + 1 < (uint64_t)st.st_size / 512;
}

/* Reads the layout at the current size and checks everything that can be refused. When
 * libfdisk had to mend the table to read it (a damaged primary header rebuilt from the
 * backup, or the reverse), the mended table is written at the current size first: once
 * the file grows, a damaged primary could not be recovered any more, because the backup
 * is looked for in the last sector. */
static int prepare(const char *image, int root_index, struct old_layout *ret, struct px_err **err)
{
	_cleanup_(gpt_close) struct gpt g = {0};
	uint64_t entries_first = 0, entries_last = 0, alt = 0;
	if (gpt_open(&g, image, 0, err) < 0 || pick_root(&g, root_index, &ret->root, err) < 0 ||
	    label_u64(&g, GPT_LABELITEM_ENTRIESLBA, &entries_first, err) < 0 ||
	    label_u64(&g, GPT_LABELITEM_ENTRIESLASTLBA, &entries_last, err) < 0 ||
	    label_u64(&g, GPT_LABELITEM_ALTLBA, &alt, err) < 0 ||
	    label_u64(&g, GPT_LABELITEM_LASTLBA, &ret->last_usable, err) < 0)
		return -1;
	uint64_t next = next_start(&g, &ret->root);
	if (next)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "cannot grow partition %zu of '%s': it is not the last partition "
		                  "(another one starts at sector %" PRIu64 ")",
		                  ret->root.index, image, next);
	uint64_t table = entries_last - entries_first + 1;
	ret->backup_last = alt;
	ret->backup_first = alt >= table ? alt - table : alt;
	if (fdisk_label_is_changed(fdisk_get_label(g.cxt, NULL))) {
		/* A backup header short of the last sector is what every grown or VHD-rounded
		 * image has: moving it is routine. Anything else libfdisk mended is news. */
		size_t n = g.last_msg ? strcspn(g.last_msg, ".\n") : 0;
		void (*say)(const char *, ...) =
		        backup_short_of_end(image) ? px_log_debug : px_log_warn;
		say("repairing the GPT of '%s'%s%.*s%s", image, n ? " (libfdisk: " : "", (int)n,
		    n ? g.last_msg : "", n ? ")" : "");
		int rc = fdisk_write_disklabel(g.cxt);
		if (rc < 0)
			return fdisk_fail(&g, rc, err, "cannot write the GPT of '%s'", image);
		g.assigned = 0;
		rc = fdisk_deassign_device(g.cxt, 0);
		if (rc < 0)
			return fdisk_fail(&g, rc, err, "cannot sync '%s'", image);
	}
	return 0;
}

/* Turns the sectors of the old backup GPT into a hole (or zeros where holes cannot be
 * punched): they now lie inside the grown partition, and a stale GPT header there could
 * be taken for a real one by recovery tools. They held nothing but the old backup. */
static int clear_old_backup(const char *image, const struct old_layout *old, struct px_err **err)
{
	_cleanup_close_ int fd = open(image, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot open '%s'", image);
	off_t off = (off_t)(old->backup_first * 512);
	off_t len = (off_t)((old->backup_last - old->backup_first + 1) * 512);
	int r = px_file_zero_range(fd, off, len);
	if (r < 0)
		return px_err_errno(err, -r, "cannot clear the old backup GPT of '%s'", image);
	return 0;
}

/* Extends the file; on any later failure the caller truncates it back. */
static int extend_file(const char *image, uint64_t size, struct px_err **err)
{
	_cleanup_close_ int fd = open(image, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot open '%s'", image);
	if (ftruncate(fd, (off_t)size) < 0)
		return px_err_errno(err, errno, "cannot extend '%s' to %" PRIu64 " bytes", image,
		                    size);
	return 0;
}

/* Moves the backup GPT to the end of the (already extended) file and grows the root
 * partition. Sets *ret_changed when anything was written. */
static int relabel(const char *image, const struct old_layout *old, int *ret_changed,
                   struct px_err **err)
{
	_cleanup_(gpt_close) struct gpt g = {0};
	uint64_t last_usable = 0;
	if (gpt_open(&g, image, 0, err) < 0 ||
	    label_u64(&g, GPT_LABELITEM_LASTLBA, &last_usable, err) < 0)
		return -1;

	size_t partno = old->root.index - 1;
	uint64_t start = old->root.start / 512;
	uint64_t cur_end = start + old->root.size / 512 - 1;
	if (cur_end > last_usable)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "partition %zu of '%s' ends at sector %" PRIu64
		                  ", past the last usable sector %" PRIu64,
		                  old->root.index, image, cur_end, last_usable);
	uint64_t grain = PX_GPT_ALIGN / 512;
	uint64_t new_end = (last_usable + 1) / grain * grain - 1;
	if (new_end > cur_end) {
		struct fdisk_partition *pa = fdisk_new_partition();
		if (!pa)
			return px_err_errno(err, ENOMEM, "cannot allocate a libfdisk partition");
		int rc = fdisk_partition_set_size(pa, new_end - start + 1);
		if (rc == 0)
			rc = fdisk_partition_size_explicit(pa, 1);
		if (rc == 0)
			rc = fdisk_set_partition(g.cxt, partno, pa);
		fdisk_unref_partition(pa);
		if (rc < 0)
			return fdisk_fail(&g, rc, err,
			                  "cannot grow partition %zu of '%s' to end at sector "
			                  "%" PRIu64,
			                  old->root.index, image, new_end);
	}

	*ret_changed = fdisk_label_is_changed(fdisk_get_label(g.cxt, NULL));
	if (*ret_changed) {
		int rc = fdisk_write_disklabel(g.cxt);
		if (rc < 0)
			return fdisk_fail(&g, rc, err, "cannot write the GPT of '%s'", image);
	}
	/* Deassigning syncs the file: only a table that reached the disk counts. */
	g.assigned = 0;
	int rc = fdisk_deassign_device(g.cxt, 0);
	if (rc < 0)
		return fdisk_fail(&g, rc, err, "cannot sync '%s'", image);
	return 0;
}

int px_gpt_grow(const char *image, uint64_t new_size, int root_index, struct px_partition *ret,
                struct px_err **err)
{
	struct stat st;
	if (stat(image, &st) < 0)
		return px_err_errno(err, errno, "cannot stat '%s'", image);
	if (!S_ISREG(st.st_mode))
		return px_err_set(err, PX_EXIT_INPUT, "disk image '%s' is not a regular file",
		                  image);
	uint64_t cur_size = (uint64_t)st.st_size;
	if (new_size % 512 != 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "cannot grow '%s' to %" PRIu64
		                  " bytes: not a multiple of the 512-byte sector",
		                  image, new_size);
	if (new_size < cur_size)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "refusing to shrink disk image '%s' from %" PRIu64 " to %" PRIu64
		                  " bytes: pexi only grows disks",
		                  image, cur_size, new_size);
	if (new_size > (uint64_t)INT64_MAX)
		return px_err_set(err, PX_EXIT_INPUT, "disk size %" PRIu64 " is too large",
		                  new_size);

	/* Everything that can be refused is checked before the file changes. */
	struct old_layout old = {0};
	if (prepare(image, root_index, &old, err) < 0)
		return -1;

	if (new_size > cur_size && extend_file(image, new_size, err) < 0)
		return -1;
	int changed = 0;
	if (relabel(image, &old, &changed, err) < 0) {
		/* The table on disk is untouched unless the write itself failed: restore the
		 * old size so the image is as it was. */
		if (new_size > cur_size && truncate(image, (off_t)cur_size) < 0)
			px_log_warn("cannot restore the size of '%s': %s", image, strerror(errno));
		return px_err_wrap(err, "growing '%s'", image);
	}
	if (changed && old.backup_last < new_size / 512 - 1 && old.backup_first > old.last_usable &&
	    clear_old_backup(image, &old, err) < 0)
		return -1;
	if (px_gpt_find_root(image, (int)old.root.index, ret, err) < 0)
		return px_err_wrap(err, "reading back '%s'", image);
	return 0;
}
