#include <et/com_err.h>
#include <ext2fs/ext2fs.h>
#include <libgen.h>

#include "core/common.h"

#include "core/spawn.h"
#include "core/file.h"
#include "image/fsgrow.h"
#include "image/sparse.h"

/* What the superblock says, read through libext2fs at the partition's offset. */
struct fs_info {
	uint64_t block_size;
	uint64_t blocks;
	bool is_64bit;
};

static int probe(const char *image, uint64_t offset, struct fs_info *ret, struct px_err **err)
{
	initialize_ext2_error_table();
	_cleanup_free_ char *opts = xasprintf("offset=%" PRIu64, offset);
	ext2_filsys fs = NULL;
	errcode_t rc = ext2fs_open2(image, opts, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
	if (rc)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "no ext2/3/4 filesystem at offset %" PRIu64 " of '%s': %s",
		                  offset, image, error_message(rc));
	struct ext2_super_block *sb = fs->super;
	const char *why = NULL;
	if (ext2fs_has_feature_journal_needs_recovery(sb))
		why = "its journal needs recovery (it was not cleanly unmounted); boot it once "
		      "or replay the journal with e2fsck first";
	else if (sb->s_last_orphan != 0 || ext2fs_has_feature_orphan_present(sb))
		why = "it has orphan inodes left by an unclean shutdown; run e2fsck on it first";
	else if (sb->s_state & EXT2_ERROR_FS)
		why = "it is marked as having errors; run e2fsck on it first";
	else if (!(sb->s_state & EXT2_VALID_FS))
		why = "it is not marked clean; run e2fsck on it first";
	struct fs_info info = {
	        .block_size = EXT2_BLOCK_SIZE(sb),
	        .blocks = ext2fs_blocks_count(sb),
	        .is_64bit = ext2fs_has_feature_64bit(sb),
	};
	ext2fs_close_free(&fs);
	if (why)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "refusing to resize the filesystem at offset %" PRIu64
		                  " of '%s': %s",
		                  offset, image, why);
	*ret = info;
	return 0;
}

/* A temporary file beside the image, removed when it goes out of scope. */
struct tmpfile {
	char *path;
	int fd;
};

static void tmpfile_remove(struct tmpfile *t)
{
	if (t->fd >= 0)
		close(t->fd);
	if (t->path)
		unlink(t->path);
	free(t->path);
}

static int tmpfile_create(struct tmpfile *t, const char *image, uint64_t size, struct px_err **err)
{
	_cleanup_free_ char *copy = xstrdup(image);
	t->path = xasprintf("%s/.fsgrow.tmp.XXXXXX", dirname(copy));
	/* e2fsprogs reads "name?options": a '?' in the path would be taken for options. */
	if (strchr(t->path, '?'))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "e2fsprogs cannot open files under '%s': the path contains '?'",
		                  t->path);
	t->fd = mkostemp(t->path, O_CLOEXEC);
	if (t->fd < 0) {
		int e = errno;
		free(t->path);
		t->path = NULL;
		return px_err_errno(err, e, "cannot create a temporary file beside '%s'", image);
	}
	if (ftruncate(t->fd, (off_t)size) < 0)
		return px_err_errno(err, errno, "cannot size '%s'", t->path);
	return 0;
}

/* Up to three lines of e2fsck's report naming what it found, for the error message. */
static char *fsck_findings(const char *out)
{
	_cleanup_free_ char *copy = xstrdup(out ? out : "");
	char *res = xstrdup("");
	int lines = 0;
	for (char *line = copy, *next; line && lines < 3; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!*line || strncmp(line, "Pass ", 5) == 0 || strstr(line, " files ("))
			continue;
		char *joined = xasprintf("%s%s%s", res, lines ? "; " : "", line);
		free(res);
		res = joined;
		lines++;
	}
	return res;
}

/* The forced, read-only check. -n rather than -p or -y: a filesystem that needs repairs
 * is refused, never silently changed, so what pexi builds is what the user gave it. */
static int check(const char *path, const char *image, uint64_t offset, struct px_err **err)
{
	const char *const argv[] = {"e2fsck", "-f", "-n", path, NULL};
	struct px_spawn_result r = {0};
	if (px_spawn(argv, 1, &r, err) < 0)
		return px_err_wrap(err, "checking the filesystem of '%s'", image);
	int status = r.exit_status;
	_cleanup_free_ char *findings = status ? fsck_findings(r.out) : NULL;
	px_spawn_result_free(&r);
	/* e2fsck's exit status is a bit set: 8 and up (or a signal) mean it could not do its
	 * job, which is our failure; anything else non-zero is about the filesystem. */
	if (status >= 8)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "cannot check the filesystem at offset %" PRIu64
		                  " of '%s': e2fsck failed with status %d%s%s",
		                  offset, image, status, *findings ? ": " : "", findings);
	if (status != 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "refusing to resize the filesystem at offset %" PRIu64
		                  " of '%s': e2fsck -fn found problems (status %d)%s%s",
		                  offset, image, status, *findings ? ": " : "", findings);
	return 0;
}

static int resize(const char *path, uint64_t blocks, int64_t epoch, struct px_err **err)
{
	/* libext2fs takes its clock from E2FSPROGS_FAKE_TIME; 0 would mean "unset". */
	_cleanup_free_ char *env = xasprintf("E2FSPROGS_FAKE_TIME=%" PRId64, epoch > 0 ? epoch : 1);
	_cleanup_free_ char *count = xasprintf("%" PRIu64, blocks);
	/* -f skips resize2fs's own demand for a fresh e2fsck -f: the read-only forced check
	 * and the superblock checks above cover it, and a check that repaired things would
	 * also stamp the current time. The size is computed here, never below the current
	 * one and never past the file. */
	const char *const argv[] = {"env", env, "resize2fs", "-f", path, count, NULL};
	_cleanup_free_ char *out = NULL;
	return px_run(argv, &out, err);
}

int px_fs_grow(const char *image, uint64_t offset, uint64_t size, int64_t epoch,
               struct px_err **err)
{
	struct fs_info fs = {0};
	if (probe(image, offset, &fs, err) < 0)
		return -1;
	if (fs.block_size == 0) /* libext2fs opens nothing smaller than 1 KiB blocks */
		return px_err_set(err, PX_EXIT_INPUT, "invalid block size in '%s'", image);
	uint64_t blocks = size / fs.block_size;
	if (blocks < fs.blocks)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "the filesystem at offset %" PRIu64 " of '%s' has %" PRIu64
		                  " blocks of %" PRIu64 " bytes, more than its %" PRIu64
		                  "-byte partition holds; refusing to shrink it",
		                  offset, image, fs.blocks, fs.block_size, size);
	if (blocks == fs.blocks)
		return 0;
	if (!fs.is_64bit && blocks > UINT32_MAX)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "the filesystem at offset %" PRIu64
		                  " of '%s' lacks the 64bit feature and cannot grow past %" PRIu64
		                  " bytes",
		                  offset, image, (uint64_t)UINT32_MAX * fs.block_size);

	uint64_t old_bytes = fs.blocks * fs.block_size, new_bytes = blocks * fs.block_size;
	struct stat st;
	_cleanup_close_ int img = px_file_open(image, O_RDWR, &st, err);
	if (img < 0)
		return img;
	if (offset + new_bytes > (uint64_t)st.st_size)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "a %" PRIu64 "-byte partition at offset %" PRIu64
		                  " does not fit in '%s' (%" PRIu64 " bytes)",
		                  size, offset, image, (uint64_t)st.st_size);

	/* The temporary file is exactly the new filesystem size: resize2fs then neither
	 * truncates nor extends it. */
	_cleanup_(tmpfile_remove) struct tmpfile tmp = {NULL, -1};
	if (tmpfile_create(&tmp, image, new_bytes, err) < 0 ||
	    px_sparse_copy_range(img, (off_t)offset, tmp.fd, 0, (off_t)old_bytes, false, image,
	                         tmp.path, err) < 0)
		return px_err_wrap(err, "copying the filesystem of '%s'", image);
	if (check(tmp.path, image, offset, err) < 0)
		return -1;
	if (resize(tmp.path, blocks, epoch, err) < 0)
		return px_err_wrap(err, "resizing the filesystem at offset %" PRIu64 " of '%s'",
		                   offset, image);
	struct stat tst;
	if (fstat(tmp.fd, &tst) < 0)
		return px_err_errno(err, errno, "cannot stat '%s'", tmp.path);
	if ((uint64_t)tst.st_size != new_bytes)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "resize2fs changed the size of '%s' from %" PRIu64 " to %" PRIu64
		                  " bytes",
		                  tmp.path, new_bytes, (uint64_t)tst.st_size);
	if (px_sparse_copy_range(tmp.fd, 0, img, (off_t)offset, (off_t)new_bytes, true, tmp.path,
	                         image, err) < 0)
		return px_err_wrap(err, "copying the resized filesystem back into '%s'", image);
	if (fsync(img) < 0)
		return px_err_errno(err, errno, "cannot sync '%s'", image);
	return 0;
}
