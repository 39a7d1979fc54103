/* libFuzzer target for pexi-guest's frame scanner and multiplexer (src/guest/mux.c, which
 * is compiled in: the helper is not part of libpexi). Any bytes are taken as a frame from
 * a guest app and as a frame from the host. Beyond never crashing, hanging or leaking:
 * every member span lies inside the text; a forwarded request scans again with our tag as
 * its id; answering it with its own tagged text routes it back to its connection with the
 * app's id restored byte for byte (or no id when it had none). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guest/mux.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct got {
	int conn;
	char *frame;
	size_t len;
	int n;
};

static void keep(void *ctx, int conn, char *frame, size_t len)
{
	struct got *g = ctx;
	free(g->frame);
	g->conn = conn;
	g->frame = frame;
	g->len = len;
	g->n++;
}

static void check_span(const struct px_json_member *m, size_t size)
{
	if (m->found &&
	    !(m->start < m->vstart && m->vstart < m->vend && m->vend == m->end && m->end <= size))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct px_json_member id = {0}, type = {0};
	int rid = px_json_find(text, size, "id", &id);
	int rtype = px_json_find(text, size, "type", &type);
	if (rid == 0)
		check_span(&id, size);
	if (rtype == 0)
		check_span(&type, size);
	free(px_json_string(text, size));
	uint64_t tag;
	if (px_mux_prefix_tag(text, size, &tag) && rid == 0 && !id.found)
		abort(); /* a leading tag is a top-level id whenever the whole text scans */

	struct px_mux m;
	struct got g = {0};
	px_mux_init(&m);
	/* As a host frame with nothing pending: never routed. */
	if (px_mux_answer(&m, text, size, keep, &g) == PX_MUX_ROUTED || g.n)
		abort();

	char *tagged = NULL;
	size_t tagged_len = 0;
	enum px_mux_verdict v = px_mux_request(&m, 7, text, size, &tagged, &tagged_len);
	if (v == PX_MUX_FORWARD) {
		struct px_json_member tid;
		if (px_json_find(tagged, tagged_len, "id", &tid) < 0 || !tid.found ||
		    tid.vend - tid.vstart != 4 || memcmp(tagged + tid.vstart, "\"g1\"", 4) != 0)
			abort();
		if (px_mux_answer(&m, tagged, tagged_len, keep, &g) != PX_MUX_ROUTED || g.n != 1 ||
		    g.conn != 7)
			abort();
		struct px_json_member back;
		if (px_json_find(g.frame, g.len, "id", &back) < 0 || back.found != id.found)
			abort();
		if (back.found &&
		    (back.vend - back.vstart != id.vend - id.vstart ||
		     memcmp(g.frame + back.vstart, text + id.vstart, id.vend - id.vstart) != 0))
			abort();
		if (m.n != 0)
			abort();
	} else if (v == PX_MUX_CONTROL && !(rid == 0 && rtype == 0 && type.found)) {
		abort();
	}
	free(tagged);
	free(g.frame);
	px_mux_free(&m);
	return 0;
}
