#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* We read libisofs's image stream ourselves instead of handing it to libburn; this makes
 * libisofs.h declare struct burn_source. */
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>

#include "core/common.h"

#include "core/file.h"
#include "image/cloudinit.h"
#include "image/seed.h"

/* libisofs reports failures as negative codes; this is the one place they become px_err.
 * The library queues a message with more detail than the code, which is added when there
 * is one. */
static int iso_fail(struct px_err **err, int code, const char *what)
{
	char text[4096] = "";
	char severity[80] = "";
	int msg_code = 0, imgid = 0;
	if (iso_obtain_msgs("SORRY", &msg_code, &imgid, text, severity) > 0 && text[0]) {
		size_t n = strlen(text);
		while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
			text[--n] = '\0';
		return px_err_set(err, PX_EXIT_FAILURE, "libisofs: %s: %s (%s)", what,
		                  iso_error_to_msg(code), text);
	}
	return px_err_set(err, PX_EXIT_FAILURE, "libisofs: %s: %s", what, iso_error_to_msg(code));
}

/* An ISO 9660 17-byte date is written from this text, "YYYYMMDDhhmmsscc" in GMT. Passing
 * it as libisofs's volume "uuid" makes the creation and modification dates exact and
 * independent of the build machine's time zone. */
static int iso_date(int64_t epoch, char out[32], struct px_err **err)
{
	time_t t = (time_t)epoch;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999)
		return px_err_set(err, PX_EXIT_FAILURE, "epoch %" PRId64 " is out of range", epoch);
	if (strftime(out, 32, "%Y%m%d%H%M%S00", &tm) != 16)
		return px_err_set(err, PX_EXIT_FAILURE, "epoch %" PRId64 " is out of range", epoch);
	return 0;
}

static void set_times(IsoNode *node, time_t t)
{
	iso_node_set_mtime(node, t);
	iso_node_set_atime(node, t);
	iso_node_set_ctime(node, t);
}

static int add_file(IsoImage *image, const char *name, const char *text, time_t t,
                    struct px_err **err)
{
	size_t len = strlen(text);
	/* The memory stream takes ownership of a malloc'd buffer and frees it itself. */
	unsigned char *copy = xmalloc(len ? len : 1);
	memcpy(copy, text, len);
	IsoStream *stream = NULL;
	int r = iso_memory_stream_new(copy, len, &stream);
	if (r < 0) {
		free(copy);
		return iso_fail(err, r, name);
	}
	IsoFile *file = NULL;
	r = iso_image_add_new_file(image, iso_image_get_root(image), name, stream, &file);
	if (r < 0) {
		/* On success the new file took over our reference; here it is still ours. */
		iso_stream_unref(stream);
		return iso_fail(err, r, name);
	}
	IsoNode *node = (IsoNode *)file;
	iso_node_set_permissions(node, 0644);
	iso_node_set_uid(node, 0);
	iso_node_set_gid(node, 0);
	set_times(node, t);
	return 0;
}

static int make_opts(time_t t, const char *date, IsoWriteOpts **ret, struct px_err **err)
{
	IsoWriteOpts *o = NULL;
	int r = iso_write_opts_new(&o, 0);
	if (r < 0)
		return iso_fail(err, r, "cannot create write options");
	/* Level 3 with Rock Ridge for Linux and Joliet for the others; names and attributes
	 * come from Rock Ridge, so the ISO 9660 names are only a fallback. */
	iso_write_opts_set_iso_level(o, 3);
	iso_write_opts_set_rockridge(o, 1);
	iso_write_opts_set_joliet(o, 1);
	/* Joliet names exactly as written ("meta-data", as mkisofs writes them), without
	 * the dot and ";1" that ECMA-119 names need. */
	iso_write_opts_set_omit_version_numbers(o, 2);
	iso_write_opts_set_no_force_dots(o, 2);
	/* Without this libisofs maps the volume id to d-characters (uppercase). */
	iso_write_opts_set_relaxed_vol_atts(o, 1);
	/* Every owner, mode and date is fixed, whatever the nodes say. */
	iso_write_opts_set_replace_mode(o, 2, 2, 2, 2);
	iso_write_opts_set_default_dir_mode(o, 0755);
	iso_write_opts_set_default_file_mode(o, 0644);
	iso_write_opts_set_default_uid(o, 0);
	iso_write_opts_set_default_gid(o, 0);
	iso_write_opts_set_replace_timestamps(o, 2);
	iso_write_opts_set_default_timestamp(o, t);
	iso_write_opts_set_dir_rec_mtime(o, 1);
	iso_write_opts_set_always_gmt(o, 1);
	/* The date string overrides creation and modification; expiration and effective
	 * stay "not specified". libisofs takes a non-const pointer but only reads it. */
	_cleanup_free_ char *uuid = xstrdup(date);
	r = iso_write_opts_set_pvd_times(o, t, t, 0, 0, uuid);
	if (r < 0) {
		iso_write_opts_free(o);
		return iso_fail(err, r, "cannot set the volume dates");
	}
	*ret = o;
	return 0;
}

/* Drains the image stream produced by libisofs's writer thread into fd. */
static int copy_burn_source(struct burn_source *bs, int fd, const char *path, struct px_err **err)
{
	unsigned char block[2048];
	for (;;) {
		int n = bs->read_xt(bs, block, (int)sizeof(block));
		if (n == 0)
			return 0;
		if (n < 0)
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "libisofs: cannot produce the image for '%s'", path);
		if (px_write_all(fd, block, (size_t)n, path, err) < 0) {
			bs->cancel(bs);
			return -1;
		}
	}
}

/* Everything that needs libisofs initialised; px_seed_write brackets it. */
static int write_image(const struct px_seed_content *c, time_t t, const char *date, int fd,
                       const char *out_path, struct px_err **err)
{
	IsoImage *image = NULL;
	int r = iso_image_new(PX_SEED_VOLUME_ID, &image);
	if (r < 0)
		return iso_fail(err, r, "cannot create an image");
	iso_image_set_volume_id(image, PX_SEED_VOLUME_ID);
	iso_image_set_volset_id(image, PX_SEED_VOLUME_ID);
	/* Host extended attributes and ACLs never enter the image (there are no host files,
	 * but the setting documents the intent). */
	iso_image_set_ignore_aclea(image, 3);
	set_times((IsoNode *)iso_image_get_root(image), t);

	/* Added in the order NoCloud reads them; libisofs sorts directory records anyway. */
	r = add_file(image, "meta-data", c->meta_data, t, err);
	if (r == 0)
		r = add_file(image, "user-data", c->user_data, t, err);
	if (r == 0 && c->network_config)
		r = add_file(image, "network-config", c->network_config, t, err);
	IsoWriteOpts *opts = NULL;
	if (r == 0)
		r = make_opts(t, date, &opts, err);
	struct burn_source *bs = NULL;
	if (r == 0) {
		int ir = iso_image_create_burn_source(image, opts, &bs);
		if (ir < 0)
			r = iso_fail(err, ir, "cannot start writing the image");
	}
	iso_write_opts_free(opts);
	if (r == 0) {
		r = copy_burn_source(bs, fd, out_path, err);
		bs->free_data(bs);
		free(bs);
	}
	iso_image_unref(image);
	return r;
}

int px_seed_write(const struct px_seed_content *c, int64_t epoch, const char *out_path,
                  struct px_err **err)
{
	if (!c->meta_data || !c->user_data)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "seed '%s': meta-data and user-data are "
		                  "required",
		                  out_path);
	if (epoch < 0)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "seed '%s': epoch %" PRId64 " is before 1970", out_path, epoch);
	char date[32];
	if (iso_date(epoch, date, err) < 0)
		return px_err_wrap(err, "seed '%s'", out_path);
	time_t t = (time_t)epoch;

	/* bit0: leave the process locale alone; our names are plain ASCII. */
	int r = iso_init_with_flag(1);
	if (r < 0)
		return iso_fail(err, r, "cannot initialise");
	/* Queue messages for iso_fail instead of printing them: library code never prints. */
	iso_set_msgs_severities("SORRY", "NEVER", "pexi");
	/* libisofs stamps directory records and new nodes with "now"; pin it to the epoch
	 * for this write and drop the override afterwards (it is process-wide). */
	time_t now = t;
	iso_nowtime(&now, 1);

	struct px_atomic a;
	r = px_atomic_open(&a, out_path, 0644, err);
	if (r == 0) {
		r = write_image(c, t, date, a.fd, out_path, err);
		if (r == 0)
			r = px_atomic_commit(&a, err);
		else
			px_atomic_abort(&a);
	}
	iso_nowtime(&now, 2);
	iso_finish();
	if (r < 0)
		return px_err_wrap(err, "writing seed '%s'", out_path);
	return 0;
}
