/* Builds small .apk packages in memory for the apk unit tests, with libarchive's writer
 * (an independent tar and gzip implementation): a control member holding .PKGINFO and
 * scripts, a data member with whatever entries a test lists. Include after tap.h. */
#ifndef PX_APK_FIXTURE_H
#define PX_APK_FIXTURE_H

#include <archive.h>
#include <archive_entry.h>

#include "core/common.h"

#include "core/buf.h"
#include "core/sha256.h"

/* One data entry: type 'f' file, 'd' directory, 'l' symlink, 'h' hard link (to 'link'). */
struct af_entry {
	char type;
	const char *path;
	unsigned mode;
	const char *content; /* files: the bytes; links: the target */
	const char *uname;
	unsigned uid;
	const char *xattr_name; /* one extended attribute, or NULL */
	const char *xattr_value;
};

static la_ssize_t af_write_cb(struct archive *a PX_UNUSED, void *ctx, const void *p, size_t n)
{
	px_buf_append(ctx, p, n, NULL);
	return (la_ssize_t)n;
}

static struct archive *af_writer(struct px_buf *out)
{
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_gzip(a);
	archive_write_set_bytes_in_last_block(a, 1);
	archive_write_open(a, out, NULL, af_write_cb, NULL);
	return a;
}

static void af_add(struct archive *a, const struct af_entry *e, int64_t mtime)
{
	struct archive_entry *ae = archive_entry_new();
	archive_entry_set_pathname(ae, e->path);
	archive_entry_set_mtime(ae, mtime, 0);
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->uid);
	archive_entry_set_uname(ae, e->uname ? e->uname : "root");
	archive_entry_set_gname(ae, e->uname ? e->uname : "root");
	size_t len = 0;
	switch (e->type) {
	case 'd':
		archive_entry_set_filetype(ae, AE_IFDIR);
		break;
	case 'l':
		archive_entry_set_filetype(ae, AE_IFLNK);
		archive_entry_set_symlink(ae, e->content);
		break;
	case 'h':
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_hardlink(ae, e->content);
		break;
	default:
		archive_entry_set_filetype(ae, AE_IFREG);
		len = e->content ? strlen(e->content) : 0;
		archive_entry_set_size(ae, (la_int64_t)len);
	}
	archive_entry_set_perm(ae, e->mode ? e->mode : (e->type == 'd' ? 0755 : 0644));
	if (e->xattr_name)
		archive_entry_xattr_add_entry(ae, e->xattr_name, e->xattr_value,
		                              strlen(e->xattr_value));
	archive_write_header(a, ae);
	if (len)
		archive_write_data(a, e->content, len);
	archive_entry_free(ae);
}

/* Builds a two-member package (control, data) into *out: pkginfo_extra is appended to
 * .PKGINFO (e.g. "depend = foo\n"); post_install, when set, becomes .post-install. */
static void af_build(struct px_buf *out, const char *name, const char *version,
                     const char *pkginfo_extra, const char *post_install,
                     const struct af_entry *entries, size_t n)
{
	struct px_buf data = PX_BUF_INIT;
	struct archive *a = af_writer(&data);
	for (size_t i = 0; i < n; i++)
		af_add(a, &entries[i], 1700000000);
	archive_write_close(a);
	archive_write_free(a);

	uint8_t d[PX_SHA256_LEN];
	char hex[PX_SHA256_HEX];
	px_sha256_buf(data.data, data.len, d);
	px_sha256_hex(d, hex);
	char *info =
	        xasprintf("# test package\npkgname = %s\npkgver = %s\narch = x86_64\n"
	                  "size = 4096\nbuilddate = 1700000000\norigin = %s\n%sdatahash = %s\n",
	                  name, version, name, pkginfo_extra ? pkginfo_extra : "", hex);
	struct px_buf control = PX_BUF_INIT;
	a = af_writer(&control);
	struct af_entry pi = {'f', ".PKGINFO", 0644, info, NULL, 0, NULL, NULL};
	af_add(a, &pi, 1700000000);
	if (post_install) {
		struct af_entry s = {'f', ".post-install", 0755, post_install, NULL, 0, NULL, NULL};
		af_add(a, &s, 1700000000);
	}
	archive_write_close(a);
	archive_write_free(a);
	free(info);

	px_buf_append(out, control.data, control.len, NULL);
	px_buf_append(out, data.data, data.len, NULL);
	px_buf_free(&control);
	px_buf_free(&data);
}

#endif
