/* libFuzzer target for the PEP frame layer: any bytes are treated as a stream of frames
 * (length prefix, then JSON) exactly as the server cuts them, each decoded with small
 * limits. Whatever decodes is encoded again and must decode to the same request, so the
 * encoder and decoder agree on every shape the decoder accepts. */
#include "core/common.h"

#include "core/buf.h"
#include "pep/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const struct px_frame *f, const struct px_frame_limits *lim)
{
	struct px_buf b = PX_BUF_INIT;
	if (px_frame_encode_request(f->id, f->id_numeric, &f->req, &b, NULL) < 0)
		abort();
	struct px_frame g;
	struct px_err *err = NULL;
	struct px_frame_limits big = *lim;
	big.max_frame = UINT32_MAX;
	if (px_frame_decode((uint8_t *)b.data + 4, b.len - 4, &big, &g, &err) < 0)
		abort(); /* what we encode we must read back */
	if (!px_streq(g.req.method, f->req.method) || !px_streq(g.req.url, f->req.url) ||
	    g.req.body_len != f->req.body_len || g.req.headers.n != f->req.headers.n ||
	    (f->req.body_len && memcmp(g.req.body, f->req.body, f->req.body_len) != 0))
		abort();
	px_frame_free(&g);
	px_err_free(err);
	px_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct px_frame_limits lim = {
	        .max_frame = 65536, .max_headers = 64, .max_body = 65536};
	size_t pos = 0;
	while (size - pos >= PX_FRAME_HEADER) {
		uint32_t len;
		struct px_err *err = NULL;
		if (px_frame_length(data + pos, lim.max_frame, &len, &err) < 0) {
			px_err_free(err);
			break;
		}
		pos += PX_FRAME_HEADER;
		if (len > size - pos)
			break; /* truncated: the server would wait for more */
		struct px_frame f;
		if (px_frame_decode(data + pos, len, &lim, &f, &err) == 0) {
			if (f.type == PX_FRAME_REQUEST)
				roundtrip(&f, &lim);
		} else if (!err || !err->msg) {
			abort();
		} else {
			/* Refusals are answered, with the id when one was read. */
			struct px_buf b = PX_BUF_INIT;
			px_frame_encode_error(f.id, f.id_numeric, PX_PEP_CONSTRAINT_VIOLATION,
			                      err->msg, &b);
			px_buf_free(&b);
		}
		px_frame_free(&f);
		px_err_free(err);
		pos += len;
	}
	return 0;
}
