/* The libext2fs writer behind extfs.h. libext2fs reports failures as errcode_t values from
 * com_err tables (or plain errno values); they are turned into px_err once, in ext_fail. */
#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <stdarg.h>

#include "core/common.h"

#include "core/buf.h"
#include "image/extfs.h"

/* A bound on the number of components in a path: guest paths are short, and the bound keeps
 * the walk over a hostile directory tree finite. */
#define MAX_DEPTH 64

/* Host files are copied into the filesystem in pieces of this size. */
#define COPY_CHUNK (1u << 20)

struct px_extfs {
	ext2_filsys fs;
	char *image;
};

/* A split, normalised guest path: comp[0..n) point into buf. */
struct path {
	char *buf;
	char *comp[MAX_DEPTH];
	size_t n;
};

static void path_free(struct path *p)
{
	free(p->buf);
}

static int errcode_to_errno(errcode_t code)
{
	switch (code) {
	case EXT2_ET_BLOCK_ALLOC_FAIL:
	case EXT2_ET_INODE_ALLOC_FAIL:
	case EXT2_ET_DIR_NO_SPACE:
		return ENOSPC;
	case EXT2_ET_FILE_NOT_FOUND:
		return ENOENT;
	case EXT2_ET_RO_FILSYS:
		return EROFS;
	case EXT2_ET_NO_MEMORY:
		return ENOMEM;
	default:
		/* libext2fs passes plain errno values (from the I/O layer) through unchanged. */
		return code > 0 && code < 4096 ? (int)code : 0;
	}
}

/* Builds the error for a failed libext2fs call: "CONTEXT: REASON". */
__attribute__((format(printf, 3, 4))) static int ext_fail(struct px_err **err, errcode_t code,
                                                          const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	int r, errnum = errcode_to_errno(code);

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (errnum == ENOSPC)
		r = px_err_set(err, PX_EXIT_FAILURE, "%s: no space left in the filesystem (%s)",
		               msg ? msg : "ext2fs", error_message(code));
	else
		r = px_err_set(err, PX_EXIT_FAILURE, "%s: %s", msg ? msg : "ext2fs",
		               error_message(code));
	if (err && *err)
		(*err)->errnum = errnum;
	return r;
}

/* Records the errno behind an error px_err_set just built (r is its return value). */
static int with_errnum(struct px_err **err, int errnum, int r)
{
	if (err && *err)
		(*err)->errnum = errnum;
	return r;
}

static void init_error_tables(void)
{
	static bool done;
	if (!done) {
		initialize_ext2_error_table();
		done = true;
	}
}

int px_extfs_open(const char *image, uint64_t offset, bool writable, struct px_extfs **ret,
                  struct px_err **err)
{
	char opts[64];
	ext2_filsys fs = NULL;
	errcode_t e;
	int flags = EXT2_FLAG_64BITS | (writable ? EXT2_FLAG_RW : 0);

	init_error_tables();
	snprintf(opts, sizeof(opts), "offset=%" PRIu64, offset);
	e = ext2fs_open2(image, opts, flags, 0, 0, unix_io_manager, &fs);
	if (e)
		return ext_fail(err, e,
		                "cannot open the ext filesystem at byte offset %" PRIu64 " of '%s'",
		                offset, image);
	if (writable) {
		if (ext2fs_has_feature_journal_needs_recovery(fs->super)) {
			ext2fs_free(fs);
			return px_err_set(err, PX_EXIT_INPUT,
			                  "the ext filesystem at byte offset %" PRIu64
			                  " of '%s' has a journal that needs recovery: "
			                  "run 'e2fsck -f' on it first",
			                  offset, image);
		}
		if (fs->super->s_state & EXT2_ERROR_FS) {
			ext2fs_free(fs);
			return px_err_set(err, PX_EXIT_INPUT,
			                  "the ext filesystem at byte offset %" PRIu64
			                  " of '%s' is marked as having errors: "
			                  "run 'e2fsck -f' on it first",
			                  offset, image);
		}
		e = ext2fs_read_bitmaps(fs);
		if (e) {
			ext2fs_free(fs);
			return ext_fail(err, e, "cannot read the allocation bitmaps of '%s'",
			                image);
		}
	}
	struct px_extfs *x = xcalloc(1, sizeof(*x));
	x->fs = fs;
	x->image = xstrdup(image);
	*ret = x;
	return 0;
}

void px_extfs_set_time(struct px_extfs *x, int64_t now)
{
	x->fs->now = now != 0 ? (time_t)now : 1;
}

int px_extfs_close(struct px_extfs *x, struct px_err **err)
{
	_cleanup_free_ char *image = x->image;
	errcode_t e = ext2fs_close_free(&x->fs);
	free(x);
	if (e)
		return ext_fail(err, e, "cannot write the ext filesystem of '%s'", image);
	return 0;
}

void px_extfs_abort(struct px_extfs *x)
{
	if (!x)
		return;
	ext2fs_free(x->fs);
	free(x->image);
	free(x);
}

/* Splits 'path' into components, dropping empty and "." ones and refusing anything that is
 * not a plain absolute path inside the root. */
static int path_split(const char *path, struct path *p, struct px_err **err)
{
	char *save = NULL, *c;

	if (!path || path[0] != '/')
		return px_err_set(err, PX_EXIT_INPUT, "path '%s' is not absolute",
		                  path ? path : "");
	p->buf = xstrdup(path);
	p->n = 0;
	for (c = strtok_r(p->buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0)
			continue;
		if (strcmp(c, "..") == 0)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "path '%s' has a '..' component: refusing to leave "
			                  "the directory it names",
			                  path);
		if (strlen(c) > EXT2_NAME_LEN)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "path '%s' has a component longer than %d bytes", path,
			                  EXT2_NAME_LEN);
		if (p->n == MAX_DEPTH)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "path '%s' is deeper than %d components", path,
			                  MAX_DEPTH);
		p->comp[p->n++] = c;
	}
	return 0;
}

/* The last component; "" for the root, which callers refuse before they get here. */
static const char *leaf_name(const struct path *p)
{
	return p->n ? p->comp[p->n - 1] : "";
}

/* The path made of the first n components, for messages. */
static char *path_prefix(const struct path *p, size_t n)
{
	struct px_buf b = PX_BUF_INIT;
	if (n == 0)
		px_buf_puts(&b, "/");
	for (size_t i = 0; i < n; i++) {
		px_buf_puts(&b, "/");
		px_buf_puts(&b, p->comp[i]);
	}
	return px_buf_steal(&b, NULL);
}

static int not_found(struct px_extfs *x, const char *path, struct px_err **err)
{
	return with_errnum(err, ENOENT,
	                   px_err_set(err, PX_EXIT_INPUT,
	                              "'%s' not found in the root filesystem of '%s'", path,
	                              x->image));
}

static int read_inode(struct px_extfs *x, ext2_ino_t ino, struct ext2_inode_large *inode,
                      struct px_err **err)
{
	memset(inode, 0, sizeof(*inode));
	errcode_t e =
	        ext2fs_read_inode_full(x->fs, ino, (struct ext2_inode *)inode, sizeof(*inode));
	if (e)
		return ext_fail(err, e, "cannot read inode %u of '%s'", ino, x->image);
	return 0;
}

/* Writes the first sizeof(*inode) bytes of the inode; libext2fs keeps whatever lies beyond
 * (in-inode extended attributes) and recomputes the checksum. */
static int write_inode(struct px_extfs *x, ext2_ino_t ino, struct ext2_inode_large *inode,
                       struct px_err **err)
{
	errcode_t e =
	        ext2fs_write_inode_full(x->fs, ino, (struct ext2_inode *)inode, sizeof(*inode));
	if (e)
		return ext_fail(err, e, "cannot write inode %u of '%s'", ino, x->image);
	return 0;
}

/* Encodes t the way ext4 stores times: the low 32 bits (signed, so 1901..2038) in the base
 * field and, in inodes large enough, two epoch bits extending the range to 2446. */
static void encode_time(int64_t t, uint32_t *lo, uint32_t *extra)
{
	*lo = (uint32_t)t;
	*extra = (uint32_t)(((t - (int64_t)(int32_t)*lo) >> 32) & EXT4_EPOCH_MASK);
}

static size_t inode_extra_end(struct px_extfs *x, const struct ext2_inode_large *inode)
{
	if (EXT2_INODE_SIZE(x->fs->super) <= EXT2_GOOD_OLD_INODE_SIZE)
		return EXT2_GOOD_OLD_INODE_SIZE;
	return EXT2_GOOD_OLD_INODE_SIZE + inode->i_extra_isize;
}

/* Stamps atime, mtime and ctime with t, and the creation time too when 'created'. */
static void set_times(struct px_extfs *x, struct ext2_inode_large *inode, int64_t t, bool created)
{
	uint32_t lo, extra;
	size_t end = inode_extra_end(x, inode);

	encode_time(t, &lo, &extra);
	inode->i_atime = inode->i_mtime = inode->i_ctime = lo;
	if (inode_includes(end, i_ctime_extra))
		inode->i_ctime_extra = extra;
	if (inode_includes(end, i_mtime_extra))
		inode->i_mtime_extra = extra;
	if (inode_includes(end, i_atime_extra))
		inode->i_atime_extra = extra;
	if (created && inode_includes(end, i_crtime))
		inode->i_crtime = lo;
	if (created && inode_includes(end, i_crtime_extra))
		inode->i_crtime_extra = extra;
}

static void set_owner(struct ext2_inode_large *inode, uint32_t uid, uint32_t gid)
{
	inode->i_uid = (uint16_t)uid;
	ext2fs_set_i_uid_high(*inode, uid >> 16);
	inode->i_gid = (uint16_t)gid;
	ext2fs_set_i_gid_high(*inode, gid >> 16);
}

static int check_time(const char *path, int64_t t, struct px_err **err)
{
	/* The range ext4 can store with the two epoch bits. */
	if (t < INT32_MIN || t >= (int64_t)INT32_MIN + (INT64_C(4) << 32))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "time %" PRId64 " for '%s' is outside what ext4 can store", t,
		                  path);
	return 0;
}

/* A directory we changed (an entry added or removed) gets the caller's time. */
static int touch_dir(struct px_extfs *x, ext2_ino_t dir, int64_t t, struct px_err **err)
{
	struct ext2_inode_large inode;
	if (read_inode(x, dir, &inode, err) < 0)
		return -1;
	set_times(x, &inode, t, false);
	return write_inode(x, dir, &inode, err);
}

/* Sets type+permission bits, owner and times of an inode we just created. */
static int set_attrs(struct px_extfs *x, ext2_ino_t ino, uint32_t mode,
                     const struct px_extfs_attrs *a, struct px_err **err)
{
	struct ext2_inode_large inode;
	if (read_inode(x, ino, &inode, err) < 0)
		return -1;
	inode.i_mode = (uint16_t)mode;
	set_owner(&inode, a->uid, a->gid);
	inode.i_generation = 0;
	set_times(x, &inode, a->mtime, true);
	return write_inode(x, ino, &inode, err);
}

static errcode_t link_entry(struct px_extfs *x, ext2_ino_t dir, const char *name, ext2_ino_t ino,
                            int type)
{
	errcode_t e = ext2fs_link(x->fs, dir, name, ino, type);
	if (e == EXT2_ET_DIR_NO_SPACE) {
		e = ext2fs_expand_dir(x->fs, dir);
		if (!e)
			e = ext2fs_link(x->fs, dir, name, ino, type);
	}
	return e;
}

static int make_dir(struct px_extfs *x, ext2_ino_t parent, const char *name,
                    const struct px_extfs_attrs *a, const char *what, ext2_ino_t *ret,
                    struct px_err **err)
{
	ext2_ino_t ino;
	errcode_t e = ext2fs_mkdir(x->fs, parent, 0, name);
	if (e == EXT2_ET_DIR_NO_SPACE) {
		e = ext2fs_expand_dir(x->fs, parent);
		if (!e)
			e = ext2fs_mkdir(x->fs, parent, 0, name);
	}
	if (!e)
		e = ext2fs_lookup(x->fs, parent, name, strlen(name), NULL, &ino);
	if (e)
		return ext_fail(err, e, "cannot create directory '%s' in '%s'", what, x->image);
	if (set_attrs(x, ino, LINUX_S_IFDIR | (a->mode & 07777), a, err) < 0 ||
	    touch_dir(x, parent, a->mtime, err) < 0)
		return -1;
	*ret = ino;
	return 0;
}

/* Walks the first n components of p from the root. Each must be a directory; a symbolic
 * link on the way is refused, never followed. Missing directories are created with
 * 'create' when it is set; otherwise a missing one is ENOENT, reported as 'whole'. */
static int walk_dirs(struct px_extfs *x, const struct path *p, size_t n,
                     const struct px_extfs_attrs *create, const char *whole, ext2_ino_t *ret,
                     struct px_err **err)
{
	ext2_ino_t dir = EXT2_ROOT_INO;

	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *prefix = path_prefix(p, i + 1);
		struct ext2_inode_large inode;
		ext2_ino_t ino;
		errcode_t e = ext2fs_lookup(x->fs, dir, p->comp[i], strlen(p->comp[i]), NULL, &ino);
		if (e == EXT2_ET_FILE_NOT_FOUND) {
			if (!create)
				return not_found(x, whole, err);
			if (make_dir(x, dir, p->comp[i], create, prefix, &ino, err) < 0)
				return -1;
			dir = ino;
			continue;
		}
		if (e)
			return ext_fail(err, e, "cannot look up '%s' in '%s'", prefix, x->image);
		if (read_inode(x, ino, &inode, err) < 0)
			return -1;
		if (LINUX_S_ISLNK(inode.i_mode))
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s' in the root filesystem of '%s' is a symbolic link: "
			                  "refusing to follow it for '%s'",
			                  prefix, x->image, whole);
		if (!LINUX_S_ISDIR(inode.i_mode))
			return with_errnum(
			        err, ENOTDIR,
			        px_err_set(err, PX_EXIT_INPUT,
			                   "'%s' in the root filesystem of '%s' is not a directory",
			                   prefix, x->image));
		dir = ino;
	}
	*ret = dir;
	return 0;
}

/* Looks up the last component of p inside its parent without following it. */
static int lookup_leaf(struct px_extfs *x, const char *path, const struct path *p,
                       ext2_ino_t *ret_parent, ext2_ino_t *ret_ino, struct px_err **err)
{
	ext2_ino_t parent = 0, ino = 0;
	errcode_t e;

	if (p->n == 0) {
		*ret_parent = *ret_ino = EXT2_ROOT_INO;
		return 0;
	}
	if (walk_dirs(x, p, p->n - 1, NULL, path, &parent, err) < 0)
		return -1;
	e = ext2fs_lookup(x->fs, parent, leaf_name(p), strlen(leaf_name(p)), NULL, &ino);
	if (e == EXT2_ET_FILE_NOT_FOUND)
		return not_found(x, path, err);
	if (e)
		return ext_fail(err, e, "cannot look up '%s' in '%s'", path, x->image);
	*ret_parent = parent;
	*ret_ino = ino;
	return 0;
}

int px_extfs_stat(struct px_extfs *x, const char *path, struct px_extfs_attrs *ret,
                  struct px_err **err)
{
	_cleanup_(path_free) struct path p = {0};
	struct ext2_inode_large inode;
	ext2_ino_t parent = 0, ino = 0;

	if (path_split(path, &p, err) < 0 || lookup_leaf(x, path, &p, &parent, &ino, err) < 0 ||
	    read_inode(x, ino, &inode, err) < 0)
		return -1;
	ret->mode = inode.i_mode;
	ret->uid = inode_uid(inode);
	ret->gid = inode_gid(inode);
	ret->mtime = (int32_t)inode.i_mtime;
	if (inode_includes(inode_extra_end(x, &inode), i_mtime_extra))
		ret->mtime += (int64_t)(inode.i_mtime_extra & EXT4_EPOCH_MASK) << 32;
	return 0;
}

static void file_closep(ext2_file_t *f)
{
	if (*f)
		ext2fs_file_close(*f);
}

int px_extfs_read_file(struct px_extfs *x, const char *path, size_t max, char **ret_data,
                       size_t *ret_len, struct px_err **err)
{
	_cleanup_(path_free) struct path p = {0};
	_cleanup_(file_closep) ext2_file_t file = NULL;
	_cleanup_free_ char *data = NULL;
	struct ext2_inode_large inode;
	ext2_ino_t parent = 0, ino = 0;
	__u64 size;
	size_t got = 0;
	errcode_t e;

	if (path_split(path, &p, err) < 0 || lookup_leaf(x, path, &p, &parent, &ino, err) < 0 ||
	    read_inode(x, ino, &inode, err) < 0)
		return -1;
	if (LINUX_S_ISLNK(inode.i_mode))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s' in the root filesystem of '%s' is a symbolic link: "
		                  "refusing to follow it",
		                  path, x->image);
	if (!LINUX_S_ISREG(inode.i_mode))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s' in the root filesystem of '%s' is not a regular file", path,
		                  x->image);
	e = ext2fs_file_open(x->fs, ino, 0, &file);
	if (e)
		return ext_fail(err, e, "cannot open '%s' in '%s'", path, x->image);
	e = ext2fs_file_get_lsize(file, &size);
	if (e)
		return ext_fail(err, e, "cannot read '%s' in '%s'", path, x->image);
	if (size > max)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s' in the root filesystem of '%s' is larger than %zu bytes",
		                  path, x->image, max);
	data = xmalloc((size_t)size + 1);
	while (got < size) {
		unsigned int n = 0, want = (unsigned int)((size - got) > COPY_CHUNK ? COPY_CHUNK
		                                                                    : size - got);
		e = ext2fs_file_read(file, data + got, want, &n);
		if (e)
			return ext_fail(err, e, "cannot read '%s' in '%s'", path, x->image);
		if (n == 0)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "'%s' in '%s' ended after %zu of %" PRIu64 " bytes", path,
			                  x->image, got, (uint64_t)size);
		got += n;
	}
	data[got] = '\0';
	*ret_data = steal_ptr(&data);
	*ret_len = got;
	return 0;
}

/* Gives back every block of a file being deleted, its extent tree or indirect blocks
 * included. This is not ext2fs_punch, because libext2fs 1.47.0's punch refuses an extent
 * that ends on the last block of the filesystem (an off-by-one fixed in 1.47.1), which is
 * exactly what a write that ran out of space leaves behind. */
struct release {
	blk64_t last_cluster;
	bool any;
	bool bad;
};

static int release_block(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt PX_UNUSED,
                         blk64_t ref_blk PX_UNUSED, int ref_offset PX_UNUSED, void *priv)
{
	struct release *r = priv;
	blk64_t cluster = EXT2FS_B2C(fs, *blocknr);

	if (*blocknr < fs->super->s_first_data_block ||
	    *blocknr >= ext2fs_blocks_count(fs->super)) {
		r->bad = true;
		return BLOCK_ABORT;
	}
	/* With bigalloc, consecutive blocks of one cluster are freed once. */
	if (r->any && cluster == r->last_cluster)
		return 0;
	r->any = true;
	r->last_cluster = cluster;
	ext2fs_block_alloc_stats2(fs, *blocknr, -1);
	return 0;
}

/* Drops one link to ino (its directory entry is already gone). The last link frees the
 * inode: its blocks, its extended attribute block, and its bit in the inode bitmap, as
 * e2fsck expects of a deleted inode. */
static int drop_link(struct px_extfs *x, ext2_ino_t ino, int64_t t, struct px_err **err)
{
	struct ext2_inode_large inode;
	errcode_t e;
	uint32_t lo, extra;

	if (read_inode(x, ino, &inode, err) < 0)
		return -1;
	if (inode.i_links_count > 1) {
		inode.i_links_count--;
		encode_time(t, &lo, &extra);
		inode.i_ctime = lo;
		if (inode_includes(inode_extra_end(x, &inode), i_ctime_extra))
			inode.i_ctime_extra = extra;
		return write_inode(x, ino, &inode, err);
	}
	if (ext2fs_inode_has_valid_blocks2(x->fs, (struct ext2_inode *)&inode)) {
		struct release r = {0};
		e = ext2fs_block_iterate3(x->fs, ino, BLOCK_FLAG_READ_ONLY, NULL, release_block,
		                          &r);
		if (!e && r.bad)
			e = EXT2_ET_BAD_BLOCK_NUM;
		if (e)
			return ext_fail(err, e, "cannot free the blocks of inode %u in '%s'", ino,
			                x->image);
		ext2fs_iblk_set(x->fs, (struct ext2_inode *)&inode, 0);
	}
	e = ext2fs_free_ext_attr(x->fs, ino, &inode);
	if (e)
		return ext_fail(err, e, "cannot free the attributes of inode %u in '%s'", ino,
		                x->image);
	inode.i_links_count = 0;
	inode.i_size = inode.i_size_high = 0;
	inode.i_dtime = (uint32_t)t;
	if (write_inode(x, ino, &inode, err) < 0)
		return -1;
	ext2fs_inode_alloc_stats2(x->fs, ino, -1, LINUX_S_ISDIR(inode.i_mode));
	return 0;
}

/* Allocates and writes a new, empty, unlinked regular-file inode. */
static int new_file_inode(struct px_extfs *x, ext2_ino_t parent, const struct px_extfs_attrs *a,
                          ext2_ino_t *ret, struct px_err **err)
{
	size_t isize = EXT2_INODE_SIZE(x->fs->super);
	_cleanup_free_ struct ext2_inode_large *inode =
	        xcalloc(1, isize > sizeof(*inode) ? isize : sizeof(*inode));
	uint16_t mode = (uint16_t)(LINUX_S_IFREG | (a->mode & 07777));
	ext2_ino_t ino;
	errcode_t e;

	e = ext2fs_new_inode(x->fs, parent, mode, NULL, &ino);
	if (e)
		return ext_fail(err, e, "cannot allocate an inode in '%s'", x->image);
	inode->i_mode = mode;
	set_owner(inode, a->uid, a->gid);
	inode->i_links_count = 1;
	if (isize > EXT2_GOOD_OLD_INODE_SIZE)
		inode->i_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
	set_times(x, inode, a->mtime, true);
	if (ext2fs_has_feature_extents(x->fs->super)) {
		/* With an all-zero block map, opening an extent handle writes an empty extent
		 * header into the in-memory inode and sets its extents flag. */
		ext2_extent_handle_t h;
		e = ext2fs_extent_open2(x->fs, ino, (struct ext2_inode *)inode, &h);
		if (e)
			return ext_fail(err, e, "cannot set up extents for inode %u in '%s'", ino,
			                x->image);
		ext2fs_extent_free(h);
	}
	e = ext2fs_write_inode_full(x->fs, ino, (struct ext2_inode *)inode, (int)isize);
	if (e)
		return ext_fail(err, e, "cannot write inode %u of '%s'", ino, x->image);
	ext2fs_inode_alloc_stats2(x->fs, ino, +1, 0);
	*ret = ino;
	return 0;
}

/* Where the bytes of a new file come from: a buffer or a host file descriptor. */
struct source {
	const char *data;
	size_t len;
	int fd;
	const char *host_path;
};

static int copy_in(struct px_extfs *x, ext2_ino_t ino, const char *path, const struct source *src,
                   struct px_err **err)
{
	_cleanup_(file_closep) ext2_file_t file = NULL;
	_cleanup_free_ char *chunk = NULL;
	errcode_t e;

	e = ext2fs_file_open(x->fs, ino, EXT2_FILE_WRITE, &file);
	if (e)
		return ext_fail(err, e, "cannot open '%s' in '%s' for writing", path, x->image);
	if (src->fd >= 0)
		chunk = xmalloc(COPY_CHUNK);
	for (size_t off = 0;;) {
		const char *p;
		size_t n;
		if (src->fd >= 0) {
			ssize_t r = read(src->fd, chunk, COPY_CHUNK);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return px_err_errno(err, errno, "cannot read '%s'", src->host_path);
			p = chunk;
			n = (size_t)r;
		} else {
			p = src->data + off;
			n = src->len - off > COPY_CHUNK ? COPY_CHUNK : src->len - off;
		}
		if (n == 0)
			break;
		for (size_t done = 0; done < n;) {
			unsigned int w = 0;
			e = ext2fs_file_write(file, p + done, (unsigned int)(n - done), &w);
			if (e)
				return ext_fail(err, e, "cannot write '%s' in '%s'", path,
				                x->image);
			done += w;
		}
		off += n;
	}
	e = ext2fs_file_close(file);
	file = NULL;
	if (e)
		return ext_fail(err, e, "cannot write '%s' in '%s'", path, x->image);
	return 0;
}

/* Resolves the parent of p (creating it) and what its last component names now. */
static int prepare_leaf(struct px_extfs *x, const char *path, const struct path *p,
                        const struct px_extfs_attrs *a, ext2_ino_t *ret_parent, ext2_ino_t *ret_old,
                        struct px_err **err)
{
	struct px_extfs_attrs dir_attrs = {0755, a->uid, a->gid, a->mtime};
	struct ext2_inode_large inode;
	ext2_ino_t parent = 0, old = 0;
	errcode_t e;

	if (p->n == 0)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s' in the root filesystem of '%s' is a directory", path,
		                  x->image);
	if (check_time(path, a->mtime, err) < 0 ||
	    walk_dirs(x, p, p->n - 1, &dir_attrs, path, &parent, err) < 0)
		return -1;
	e = ext2fs_lookup(x->fs, parent, leaf_name(p), strlen(leaf_name(p)), NULL, &old);
	if (e == EXT2_ET_FILE_NOT_FOUND) {
		old = 0;
	} else if (e) {
		return ext_fail(err, e, "cannot look up '%s' in '%s'", path, x->image);
	} else {
		if (read_inode(x, old, &inode, err) < 0)
			return -1;
		if (LINUX_S_ISDIR(inode.i_mode))
			return with_errnum(
			        err, EISDIR,
			        px_err_set(err, PX_EXIT_INPUT,
			                   "'%s' in the root filesystem of '%s' is a directory",
			                   path, x->image));
	}
	*ret_parent = parent;
	*ret_old = old;
	return 0;
}

/* Points the entry 'name' in parent at ino, replacing (and releasing) what it named. */
static int replace_entry(struct px_extfs *x, const char *path, ext2_ino_t parent, const char *name,
                         ext2_ino_t old, ext2_ino_t ino, int type, int64_t t, struct px_err **err)
{
	errcode_t e;

	if (old) {
		e = ext2fs_unlink(x->fs, parent, name, old, 0);
		if (e)
			return ext_fail(err, e, "cannot remove the old '%s' in '%s'", path,
			                x->image);
		if (drop_link(x, old, t, err) < 0)
			return -1;
	}
	e = link_entry(x, parent, name, ino, type);
	if (e)
		return ext_fail(err, e, "cannot link '%s' in '%s'", path, x->image);
	return touch_dir(x, parent, t, err);
}

static int write_from(struct px_extfs *x, const char *path, const struct source *src,
                      const struct px_extfs_attrs *a, struct px_err **err)
{
	_cleanup_(path_free) struct path p = {0};
	ext2_ino_t parent = 0, old = 0, ino = 0;

	if (path_split(path, &p, err) < 0 || prepare_leaf(x, path, &p, a, &parent, &old, err) < 0 ||
	    new_file_inode(x, parent, a, &ino, err) < 0)
		return -1;
	if (copy_in(x, ino, path, src, err) < 0) {
		/* Give back what the half-written inode holds; the old file is untouched. */
		drop_link(x, ino, a->mtime, NULL);
		return -1;
	}
	if (replace_entry(x, path, parent, leaf_name(&p), old, ino, EXT2_FT_REG_FILE, a->mtime,
	                  err) < 0)
		return -1;
	return 0;
}

int px_extfs_write_file(struct px_extfs *x, const char *path, const void *data, size_t len,
                        const struct px_extfs_attrs *attrs, struct px_err **err)
{
	struct source src = {data, len, -1, NULL};
	return write_from(x, path, &src, attrs, err);
}

int px_extfs_write_host_file(struct px_extfs *x, const char *path, const char *host_path,
                             const struct px_extfs_attrs *attrs, struct px_err **err)
{
	_cleanup_close_ int fd = open(host_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;

	if (fd < 0)
		return px_err_errno(err, errno, "cannot open '%s'", host_path);
	if (fstat(fd, &st) < 0)
		return px_err_errno(err, errno, "cannot stat '%s'", host_path);
	if (!S_ISREG(st.st_mode))
		return px_err_set(err, PX_EXIT_INPUT, "'%s' is not a regular file", host_path);
	struct source src = {NULL, 0, fd, host_path};
	return write_from(x, path, &src, attrs, err);
}

int px_extfs_mkdir_p(struct px_extfs *x, const char *path, const struct px_extfs_attrs *attrs,
                     struct px_err **err)
{
	_cleanup_(path_free) struct path p = {0};
	ext2_ino_t dir;

	if (path_split(path, &p, err) < 0 || check_time(path, attrs->mtime, err) < 0)
		return -1;
	return walk_dirs(x, &p, p.n, attrs, path, &dir, err);
}

int px_extfs_symlink(struct px_extfs *x, const char *path, const char *target,
                     const struct px_extfs_attrs *attrs, struct px_err **err)
{
	_cleanup_(path_free) struct path p = {0};
	ext2_ino_t parent = 0, old = 0, ino = 0;
	errcode_t e;

	if (!target || !*target || strlen(target) >= x->fs->blocksize)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "symbolic link target for '%s' must be 1 to %u bytes long", path,
		                  x->fs->blocksize - 1);
	if (path_split(path, &p, err) < 0 ||
	    prepare_leaf(x, path, &p, attrs, &parent, &old, err) < 0)
		return -1;
	/* ext2fs_symlink links the new inode itself, so the old entry goes first. */
	if (old) {
		e = ext2fs_unlink(x->fs, parent, leaf_name(&p), old, 0);
		if (e)
			return ext_fail(err, e, "cannot remove the old '%s' in '%s'", path,
			                x->image);
		if (drop_link(x, old, attrs->mtime, err) < 0)
			return -1;
	}
	e = ext2fs_symlink(x->fs, parent, 0, leaf_name(&p), target);
	if (e == EXT2_ET_DIR_NO_SPACE) {
		e = ext2fs_expand_dir(x->fs, parent);
		if (!e)
			e = ext2fs_symlink(x->fs, parent, 0, leaf_name(&p), target);
	}
	if (!e)
		e = ext2fs_lookup(x->fs, parent, leaf_name(&p), strlen(leaf_name(&p)), NULL, &ino);
	if (e)
		return ext_fail(err, e, "cannot create symbolic link '%s' in '%s'", path, x->image);
	if (set_attrs(x, ino, LINUX_S_IFLNK | 0777, attrs, err) < 0)
		return -1;
	return touch_dir(x, parent, attrs->mtime, err);
}

int px_extfs_hardlink(struct px_extfs *x, const char *path, const char *target,
                      const struct px_extfs_attrs *attrs, struct px_err **err)
{
	_cleanup_(path_free) struct path p = {0}, t = {0};
	ext2_ino_t parent = 0, old = 0, tparent = 0, ino = 0;
	struct ext2_inode_large inode;

	if (path_split(target, &t, err) < 0 ||
	    lookup_leaf(x, target, &t, &tparent, &ino, err) < 0 ||
	    read_inode(x, ino, &inode, err) < 0)
		return -1;
	if (!LINUX_S_ISREG(inode.i_mode))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "hard link target '%s' in the root filesystem of '%s' is not a "
		                  "regular file",
		                  target, x->image);
	if (inode.i_links_count >= EXT2_LINK_MAX)
		return px_err_set(err, PX_EXIT_INPUT, "'%s' in '%s' has too many links", target,
		                  x->image);
	if (path_split(path, &p, err) < 0 ||
	    prepare_leaf(x, path, &p, attrs, &parent, &old, err) < 0)
		return -1;
	if (old == ino)
		return 0;
	/* The new link counts before the old entry is released, so replacing a name that
	 * already links to another inode never frees the target by accident. */
	inode.i_links_count++;
	if (write_inode(x, ino, &inode, err) < 0)
		return -1;
	return replace_entry(x, path, parent, leaf_name(&p), old, ino, EXT2_FT_REG_FILE,
	                     attrs->mtime, err);
}

static void xattrs_closep(struct ext2_xattr_handle **h)
{
	if (*h)
		ext2fs_xattrs_close(h);
}

int px_extfs_set_xattrs(struct px_extfs *x, const char *path, const char *const *names,
                        const void *const *values, const size_t *lens, size_t n,
                        struct px_err **err)
{
	_cleanup_(path_free) struct path p = {0};
	_cleanup_(xattrs_closep) struct ext2_xattr_handle *h = NULL;
	ext2_ino_t parent = 0, ino = 0;
	errcode_t e;

	if (n == 0)
		return 0;
	if (path_split(path, &p, err) < 0 || lookup_leaf(x, path, &p, &parent, &ino, err) < 0)
		return -1;
	if (!ext2fs_has_feature_xattr(x->fs->super))
		return px_err_set(err, PX_EXIT_INPUT,
		                  "the filesystem of '%s' has no extended attribute support, "
		                  "needed for '%s'",
		                  x->image, path);
	e = ext2fs_xattrs_open(x->fs, ino, &h);
	if (!e)
		e = ext2fs_xattrs_read(h);
	for (size_t i = 0; !e && i < n; i++)
		e = ext2fs_xattr_set(h, names[i], values[i], lens[i]);
	if (!e) {
		e = ext2fs_xattrs_close(&h);
		h = NULL;
	}
	if (e)
		return ext_fail(err, e, "cannot set extended attributes of '%s' in '%s'", path,
		                x->image);
	return 0;
}

int px_extfs_readlink(struct px_extfs *x, const char *path, char **ret, struct px_err **err)
{
	_cleanup_(path_free) struct path p = {0};
	_cleanup_(file_closep) ext2_file_t file = NULL;
	struct ext2_inode_large inode;
	ext2_ino_t parent = 0, ino = 0;
	errcode_t e;

	if (path_split(path, &p, err) < 0 || lookup_leaf(x, path, &p, &parent, &ino, err) < 0 ||
	    read_inode(x, ino, &inode, err) < 0)
		return -1;
	if (!LINUX_S_ISLNK(inode.i_mode))
		return with_errnum(err, EINVAL,
		                   px_err_set(err, PX_EXIT_INPUT,
		                              "'%s' in the root filesystem of '%s' is not a "
		                              "symbolic link",
		                              path, x->image));
	size_t len = inode.i_size;
	if (len == 0 || len >= x->fs->blocksize)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "symbolic link '%s' in '%s' has a bad length %zu", path, x->image,
		                  len);
	_cleanup_free_ char *target = xcalloc(1, len + 1);
	if (ext2fs_is_fast_symlink((struct ext2_inode *)&inode)) {
		if (len >= sizeof(inode.i_block))
			return px_err_set(err, PX_EXIT_INPUT,
			                  "symbolic link '%s' in '%s' is corrupt", path, x->image);
		memcpy(target, inode.i_block, len);
	} else if (inode.i_flags & EXT4_INLINE_DATA_FL) {
		size_t got = len;
		e = ext2fs_inline_data_get(x->fs, ino, (struct ext2_inode *)&inode, target, &got);
		if (e)
			return ext_fail(err, e, "cannot read symbolic link '%s' in '%s'", path,
			                x->image);
	} else {
		unsigned int got = 0;
		e = ext2fs_file_open(x->fs, ino, 0, &file);
		if (!e)
			e = ext2fs_file_read(file, target, (unsigned int)len, &got);
		if (!e && got != len)
			e = EXT2_ET_SHORT_READ;
		if (e)
			return ext_fail(err, e, "cannot read symbolic link '%s' in '%s'", path,
			                x->image);
	}
	target[len] = 0;
	*ret = steal_ptr(&target);
	return 0;
}

int px_extfs_unlink(struct px_extfs *x, const char *path, int64_t mtime, struct px_err **err)
{
	_cleanup_(path_free) struct path p = {0};
	struct ext2_inode_large inode;
	ext2_ino_t parent = 0, ino = 0;
	errcode_t e;

	if (path_split(path, &p, err) < 0 || lookup_leaf(x, path, &p, &parent, &ino, err) < 0 ||
	    read_inode(x, ino, &inode, err) < 0)
		return -1;
	if (p.n == 0 || LINUX_S_ISDIR(inode.i_mode))
		return with_errnum(err, EISDIR,
		                   px_err_set(err, PX_EXIT_INPUT,
		                              "'%s' in the root filesystem of '%s' is a directory",
		                              path, x->image));
	e = ext2fs_unlink(x->fs, parent, leaf_name(&p), ino, 0);
	if (e)
		return ext_fail(err, e, "cannot remove '%s' in '%s'", path, x->image);
	if (drop_link(x, ino, mtime, err) < 0)
		return -1;
	return touch_dir(x, parent, mtime, err);
}
