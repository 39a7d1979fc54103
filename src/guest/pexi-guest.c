/* pexi-guest: the channel bridge inside a pexi VM (static, plain libc).
 *
 *   pexi-guest [options]          serve TCP 127.0.0.1:4040 and bridge it to the host
 *   pexi-guest fetch [-X METHOD] [--addr HOST:PORT] URL
 *                                 send one request through the bridge, print the body
 *
 * Apps in the guest speak frames (4-byte big-endian length, then JSON) to 127.0.0.1:4040.
 * Every connection's frames travel over one channel to the host's PEP: the virtio-serial
 * port /dev/virtio-ports/pexi.pep when the VM has one, else AF_VSOCK to the host (CID 2).
 * mux.c gives each request a guest-unique id and routes the answers back. On each
 * (re)connection the helper first sends {"type":"hello","instance_id":...}; a
 * {"type":"poweroff"} frame from the host runs the poweroff command.
 *
 * Everything is bounded: frame length, connections, requests in flight per connection,
 * and bytes queued for a connection; one event loop with non-blocking sockets, so an app
 * that stops reading loses its own connection and never holds up the others. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "guest/mux.h"

#define GUEST_VERSION    "pexi-guest/0.1"
#define DEFAULT_PORT     4040
#define DEFAULT_VSOCK    5000
#define VIRTIO_PORT      "/dev/virtio-ports/pexi.pep"
#define INSTANCE_ID_FILE "/var/lib/cloud/data/instance-id"
#define META_DATA_FILE   "/var/lib/cloud/seed/nocloud/meta-data"
#define MAX_INSTANCE_ID  256
#define READ_CHUNK       (64 * 1024)
#define TAG_PREFIX       64 /* bytes of an oversized frame read for its id */
#define RETRY_MIN_MS     100
#define RETRY_MAX_MS     2000

struct opts {
	const char *channel; /* "auto", "virtio:PATH", "vsock:PORT", "unix:PATH" */
	unsigned vsock_port;
	unsigned port;
	const char *instance_id;
	const char *meta_data;
	char **poweroff_argv;
	size_t max_frame;
	size_t max_conns;
	size_t max_inflight;
	size_t max_queued;
	bool once; /* exit when the channel is lost instead of reconnecting (tests) */
};

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	static const char prefix[] = "pexi-guest: ";
	char line[1024];
	memcpy(line, prefix, sizeof(prefix) - 1);
	size_t room = sizeof(line) - (sizeof(prefix) - 1) - 1;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + sizeof(prefix) - 1, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = sizeof(prefix) - 1 + ((size_t)n < room ? (size_t)n : room - 1);
	line[len++] = '\n';
	/* One write per line, so lines from the helper stay whole on a shared console. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

static void *xalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		logmsg("out of memory");
		abort();
	}
	return p;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Bytes waiting to be written to one fd. */
struct obuf {
	char *data;
	size_t off, len, cap;
};

static size_t obuf_size(const struct obuf *b)
{
	return b->len - b->off;
}

static void obuf_put(struct obuf *b, const void *p, size_t n)
{
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		/* Compact first; grow only when that is not enough. */
		if (b->off > 0) {
			memmove(b->data, b->data + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
		}
		if (b->len + n > b->cap) {
			size_t cap = b->cap ? b->cap : 4096;
			while (cap < b->len + n)
				cap *= 2;
			char *nd = xalloc(cap);
			if (b->data)
				memcpy(nd, b->data, b->len);
			free(b->data);
			b->data = nd;
			b->cap = cap;
		}
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void obuf_frame(struct obuf *b, const char *json, size_t n)
{
	unsigned char hdr[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
	                        (unsigned char)(n >> 8), (unsigned char)n};
	obuf_put(b, hdr, 4);
	obuf_put(b, json, n);
}

static void obuf_free(struct obuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* Writes what it can; -1 on a write error other than "would block". */
static int obuf_flush(struct obuf *b, int fd)
{
	while (obuf_size(b) > 0) {
		ssize_t w = write(fd, b->data + b->off, obuf_size(b));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		}
		b->off += (size_t)w;
	}
	return 0;
}

/* Frames arriving on one fd: the bytes read so far, and how much of an oversized frame is
 * still to be thrown away. */
struct ibuf {
	char *data;
	size_t len, cap;
	uint64_t skip;
};

static void ibuf_free(struct ibuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* Reads once into b. Returns bytes read, 0 at end of stream, -1 on error; EAGAIN is
 * returned as -2. */
static ssize_t ibuf_read(struct ibuf *b, int fd, size_t max_frame)
{
	/* Grows by doubling, so a large frame is not copied once per chunk. */
	size_t want = b->len + READ_CHUNK;
	size_t limit = max_frame + 4 + READ_CHUNK;
	if (want > b->cap && want < 2 * b->cap)
		want = 2 * b->cap;
	if (want > limit)
		want = limit;
	if (b->cap < want) {
		char *nd = xalloc(want);
		if (b->data)
			memcpy(nd, b->data, b->len);
		free(b->data);
		b->data = nd;
		b->cap = want;
	}
	for (;;) {
		ssize_t r = read(fd, b->data + b->len, b->cap - b->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
		size_t got = (size_t)r;
		if (b->skip > 0) {
			size_t drop = got < b->skip ? got : (size_t)b->skip;
			memmove(b->data + b->len, b->data + b->len + drop, got - drop);
			b->skip -= drop;
			got -= drop;
		}
		b->len += got;
		return r;
	}
}

enum frame_status { FRAME_NONE, FRAME_READY, FRAME_TOO_BIG };

/* Looks at the head of b: a whole frame (its JSON at *json, *len bytes), not yet a whole
 * frame, or a length over the cap (the frame's announced length in *len). */
static enum frame_status ibuf_frame(struct ibuf *b, size_t max_frame, char **json, size_t *len)
{
	if (b->len < 4)
		return FRAME_NONE;
	const unsigned char *h = (const unsigned char *)b->data;
	uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	*len = n;
	if (n > max_frame)
		return FRAME_TOO_BIG;
	if (b->len - 4 < n)
		return FRAME_NONE;
	*json = b->data + 4;
	return FRAME_READY;
}

static void ibuf_consume(struct ibuf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

/* ---- the bridge ---- */

struct conn {
	int fd; /* -1: free slot */
	int id; /* the mux's name for it, never reused */
	struct ibuf in;
	struct obuf out;
	bool closing; /* write what is queued, then close */
	bool eof;     /* the app finished sending: close once its answers are written */
};

struct bridge {
	const struct opts *o;
	char instance_id[MAX_INSTANCE_ID];
	int listen_fd;
	int chan_fd;     /* -1: down */
	bool chan_heard; /* a frame came from the host since the channel opened */
	struct ibuf chan_in;
	struct obuf chan_out;
	int64_t retry_at;
	int retry_ms;
	struct conn *conns;
	int next_conn_id;
	struct px_mux mux;
	bool stop;
};

static struct conn *conn_by_id(struct bridge *b, int id)
{
	for (size_t i = 0; i < b->o->max_conns; i++)
		if (b->conns[i].fd >= 0 && b->conns[i].id == id)
			return &b->conns[i];
	return NULL;
}

static void conn_close(struct bridge *b, struct conn *c)
{
	px_mux_drop_conn(&b->mux, c->id);
	close(c->fd);
	c->fd = -1;
	ibuf_free(&c->in);
	obuf_free(&c->out);
	c->closing = false;
}

static void deliver(void *ctx, int conn, char *frame, size_t len)
{
	struct bridge *b = ctx;
	struct conn *c = conn_by_id(b, conn);
	if (c && !c->closing) {
		if (obuf_size(&c->out) + len + 4 > b->o->max_queued) {
			/* The app stopped reading: it loses its connection, nobody else waits.
			 * The loop closes it: the mux is still walking its list here. */
			logmsg("connection %d does not read its answers; closing it", conn);
			obuf_free(&c->out);
			c->closing = true;
			free(frame);
			return;
		}
		obuf_frame(&c->out, frame, len);
	}
	free(frame);
}

/* A locally made error answer, for frames the helper refuses itself. */
static void conn_refuse(struct bridge *b, struct conn *c, const char *code, const char *message)
{
	char frame[512];
	int n = snprintf(frame, sizeof(frame),
	                 "{\"status\":0,\"headers\":[],\"body_base64\":\"\",\"error\":{\"code\":"
	                 "\"%s\",\"message\":\"%s\"}}",
	                 code, message);
	px_mux_drop_conn(&b->mux, c->id);
	obuf_frame(&c->out, frame, (size_t)n);
	c->closing = true;
}

static bool chan_up(const struct bridge *b)
{
	return b->chan_fd >= 0;
}

static void chan_send(struct bridge *b, const char *json, size_t len)
{
	obuf_frame(&b->chan_out, json, len);
}

static void read_instance_id(const struct opts *o, char *out, size_t cap);

static void send_hello(struct bridge *b)
{
	/* Read again on every connection: cloud-init may have written the id since the
	 * helper started, and a new seed brings a new one. */
	read_instance_id(b->o, b->instance_id, sizeof(b->instance_id));
	char id[MAX_INSTANCE_ID * 6 + 8]; /* every byte may become \u00XX */
	if (!px_json_quote(b->instance_id, strlen(b->instance_id), id, sizeof(id)))
		px_json_quote("", 0, id, sizeof(id));
	char frame[sizeof(id) + 96];
	int n = snprintf(frame, sizeof(frame),
	                 "{\"type\":\"hello\",\"instance_id\":%s,\"guest\":\"" GUEST_VERSION "\"}",
	                 id);
	chan_send(b, frame, (size_t)n);
	if (b->retry_ms == RETRY_MIN_MS)
		logmsg("hello sent, instance-id %s", b->instance_id);
}

static int open_vsock(unsigned port)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_vm sa = {
	        .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int open_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The device of the virtio-serial port named "pexi.pep". udev links it as VIRTIO_PORT; a
 * guest without udev (busybox mdev, or nothing) only has /dev/vportNpM, whose name is in
 * /sys/class/virtio-ports/vportNpM/name. */
static bool find_virtio_port(char *out, size_t cap)
{
	if (access(VIRTIO_PORT, F_OK) == 0) {
		snprintf(out, cap, "%s", VIRTIO_PORT);
		return true;
	}
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return false;
	bool found = false;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		if (e->d_name[0] == '.' || strlen(e->d_name) > 64)
			continue;
		char path[320], name[64] = "";
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%.64s/name", e->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f) && strcmp(name, "pexi.pep\n") == 0) {
			snprintf(out, cap, "/dev/%.64s", e->d_name);
			found = true;
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

/* Opens the channel the options name; "auto" is the virtio-serial port when the VM has
 * one (QEMU without vhost-vsock), else vsock (AVF, QEMU with vhost-vsock). */
static int chan_open(struct bridge *b, const char **what)
{
	const char *ch = b->o->channel;
	int fd;
	static char found[160];
	if (strcmp(ch, "auto") == 0) {
		char dev[128];
		if (find_virtio_port(dev, sizeof(dev))) {
			snprintf(found, sizeof(found), "virtio:%s", dev);
			ch = found;
		} else {
			ch = "vsock:";
		}
	}
	*what = ch;
	if (strncmp(ch, "virtio:", 7) == 0) {
		/* The port reports POLLHUP while no host side is connected: the loop treats
		 * that as a drop and opens it again later. */
		fd = open(ch + 7, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	} else if (strncmp(ch, "vsock:", 6) == 0) {
		unsigned port = ch[6] ? (unsigned)strtoul(ch + 6, NULL, 10) : b->o->vsock_port;
		fd = open_vsock(port);
	} else if (strncmp(ch, "unix:", 5) == 0) {
		fd = open_unix(ch + 5);
	} else {
		errno = EINVAL;
		return -1;
	}
	if (fd >= 0 && set_nonblock(fd) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Retries back off from RETRY_MIN_MS to RETRY_MAX_MS and start over once the host has
 * said something; only the first failure of a series is logged, so a VM whose host side is
 * not there yet does not flood its console. */
static void backoff(struct bridge *b)
{
	b->retry_at = now_ms() + b->retry_ms;
	b->retry_ms = b->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : b->retry_ms * 2;
	if (b->o->once)
		b->stop = true;
}

static void chan_down(struct bridge *b, const char *why)
{
	if (chan_up(b)) {
		if (b->chan_heard || b->retry_ms == RETRY_MIN_MS)
			logmsg("channel lost: %s", why);
		close(b->chan_fd);
		b->chan_fd = -1;
	}
	if (b->chan_heard)
		b->retry_ms = RETRY_MIN_MS;
	ibuf_free(&b->chan_in);
	obuf_free(&b->chan_out);
	px_mux_fail_all(&b->mux, "the channel to the host was lost", deliver, b);
	backoff(b);
}

static void chan_try(struct bridge *b)
{
	const char *what;
	int fd = chan_open(b, &what);
	if (fd < 0) {
		if (b->retry_ms == RETRY_MIN_MS)
			logmsg("cannot open channel %s: %s (retrying)", what, strerror(errno));
		backoff(b);
		return;
	}
	b->chan_fd = fd;
	b->chan_heard = false;
	if (b->retry_ms == RETRY_MIN_MS)
		logmsg("channel open: %s", what);
	send_hello(b);
}

static void run_poweroff(struct bridge *b)
{
	logmsg("poweroff requested by the host: running %s", b->o->poweroff_argv[0]);
	pid_t pid = fork();
	if (pid == 0) {
		execvp(b->o->poweroff_argv[0], b->o->poweroff_argv);
		logmsg("cannot run %s: %s", b->o->poweroff_argv[0], strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		logmsg("cannot fork for poweroff: %s", strerror(errno));
}

static void host_control(struct bridge *b, const char *json, size_t len)
{
	struct px_json_member type;
	if (px_json_find(json, len, "type", &type) < 0 || !type.found)
		return;
	char *t = px_json_string(json + type.vstart, type.vend - type.vstart);
	if (!t) {
		logmsg("control frame with a type that is not a string; ignored");
		return;
	}
	if (strcmp(t, "poweroff") == 0) {
		run_poweroff(b);
	} else if (strcmp(t, "hello") == 0) {
		struct px_json_member okm;
		bool ok = px_json_find(json, len, "ok", &okm) == 0 && okm.found &&
		          okm.vend - okm.vstart == 4 && memcmp(json + okm.vstart, "true", 4) == 0;
		logmsg("host answered hello: %s", ok ? "ok" : "not ok");
	} else {
		logmsg("unknown control frame type '%.40s'; ignored", t);
	}
	free(t);
}

static void chan_readable(struct bridge *b)
{
	ssize_t r = ibuf_read(&b->chan_in, b->chan_fd, b->o->max_frame);
	if (r == -2)
		return;
	if (r <= 0) {
		chan_down(b, r == 0 ? "end of stream" : strerror(errno));
		return;
	}
	for (;;) {
		char *json;
		size_t len;
		enum frame_status st = ibuf_frame(&b->chan_in, b->o->max_frame, &json, &len);
		if (st == FRAME_NONE)
			return;
		if (st == FRAME_TOO_BIG) {
			/* The length is known, so the stream stays in step: skip the frame. Its
			 * start names the request it answers (the PEP writes the id first), which
			 * then gets an error instead of waiting forever. */
			size_t have = b->chan_in.len - 4;
			if (have < TAG_PREFIX && have < len)
				return; /* wait for enough of it to read the id */
			uint64_t tag;
			char msg[128];
			snprintf(
			        msg, sizeof(msg),
			        "the answer (%zu bytes) is over the guest helper's frame cap (%zu)",
			        len, b->o->max_frame);
			if (px_mux_prefix_tag(b->chan_in.data + 4, have, &tag))
				px_mux_fail_one(&b->mux, tag, "constraint_violation", msg, deliver,
				                b);
			logmsg("host frame of %zu bytes is over the cap; skipped", len);
			size_t drop = have < len ? have : len;
			ibuf_consume(&b->chan_in, 4 + drop);
			b->chan_in.skip = len - drop;
			continue;
		}
		b->chan_heard = true;
		switch (px_mux_answer(&b->mux, json, len, deliver, b)) {
		case PX_MUX_CONTROL:
			host_control(b, json, len);
			break;
		case PX_MUX_INVALID:
			logmsg("host frame is not a JSON object; ignored");
			break;
		case PX_MUX_UNKNOWN:
			logmsg("answer for no pending request; dropped");
			break;
		default:
			break;
		}
		ibuf_consume(&b->chan_in, 4 + len);
	}
}

static void conn_readable(struct bridge *b, struct conn *c)
{
	ssize_t r = ibuf_read(&c->in, c->fd, b->o->max_frame);
	if (r == -2)
		return;
	if (r == 0 && (c->in.len == 0 || px_mux_pending(&b->mux, c->id, NULL) > 0)) {
		/* A client may shut down its sending side and still wait for answers. */
		c->eof = true;
		return;
	}
	if (r <= 0) {
		conn_close(b, c);
		return;
	}
	for (;;) {
		char *json, *tagged;
		size_t len, tagged_len;
		enum frame_status st = ibuf_frame(&c->in, b->o->max_frame, &json, &len);
		if (st == FRAME_NONE)
			return;
		if (st == FRAME_TOO_BIG) {
			conn_refuse(b, c, "constraint_violation", "frame is over the size cap");
			return;
		}
		enum px_mux_verdict v =
		        px_mux_request(&b->mux, c->id, json, len, &tagged, &tagged_len);
		if (v == PX_MUX_CONTROL) {
			conn_refuse(b, c, "invalid_method",
			            "control frames come from the guest helper only");
			return;
		}
		if (v != PX_MUX_FORWARD) {
			conn_refuse(b, c, "invalid_method", "frame is not a JSON object");
			return;
		}
		ibuf_consume(&c->in, 4 + len);
		if (chan_up(b)) {
			chan_send(b, tagged, tagged_len);
		} else {
			/* Nobody to ask: answer at once rather than leave the app waiting. */
			px_mux_fail_all(&b->mux, "the channel to the host is down", deliver, b);
		}
		free(tagged);
		if (c->fd < 0 || c->closing)
			return;
		/* Enough in flight for this one: read the rest once answers came back. */
		if (px_mux_pending(&b->mux, c->id, NULL) >= b->o->max_inflight)
			return;
	}
}

static void accept_conn(struct bridge *b)
{
	int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (size_t i = 0; i < b->o->max_conns; i++) {
		struct conn *c = &b->conns[i];
		if (c->fd < 0) {
			memset(c, 0, sizeof(*c));
			c->fd = fd;
			c->id = ++b->next_conn_id;
			return;
		}
	}
	close(fd); /* cannot happen: the listener is not polled when full */
}

static size_t conns_open(const struct bridge *b)
{
	size_t n = 0;
	for (size_t i = 0; i < b->o->max_conns; i++)
		n += b->conns[i].fd >= 0;
	return n;
}

static int listen_loopback(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static int serve(struct bridge *b)
{
	const struct opts *o = b->o;
	size_t nfds = 2 + o->max_conns;
	struct pollfd *pfd = xalloc(nfds * sizeof(*pfd));
	struct conn **who = xalloc(nfds * sizeof(*who));
	while (!b->stop && !got_term) {
		if (!chan_up(b) && now_ms() >= b->retry_at)
			chan_try(b);
		if (b->stop)
			break;
		for (size_t i = 0; i < o->max_conns; i++) {
			struct conn *c = &b->conns[i];
			if (c->fd >= 0 && obuf_size(&c->out) == 0 &&
			    (c->closing || (c->eof && px_mux_pending(&b->mux, c->id, NULL) == 0)))
				conn_close(b, c);
		}
		/* The channel's send queue is the back-pressure point: while the host is slow
		 * to read, no app gets to add more. */
		bool chan_full = obuf_size(&b->chan_out) > 2 * o->max_frame;
		size_t n = 0;
		pfd[n++] = (struct pollfd){.fd = conns_open(b) < o->max_conns ? b->listen_fd : -1,
		                           .events = POLLIN};
		pfd[n++] = (struct pollfd){
		        .fd = b->chan_fd,
		        .events = (short)(POLLIN | (obuf_size(&b->chan_out) ? POLLOUT : 0))};
		for (size_t i = 0; i < o->max_conns; i++) {
			struct conn *c = &b->conns[i];
			if (c->fd < 0)
				continue;
			short ev = 0;
			if (!c->closing && !c->eof && !chan_full &&
			    px_mux_pending(&b->mux, c->id, NULL) < o->max_inflight)
				ev |= POLLIN;
			if (obuf_size(&c->out))
				ev |= POLLOUT;
			who[n] = c;
			pfd[n++] = (struct pollfd){.fd = c->fd, .events = ev};
		}
		int timeout = -1;
		if (!chan_up(b)) {
			int64_t wait = b->retry_at - now_ms();
			timeout = wait < 0 ? 0 : (int)wait;
		}
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			logmsg("poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].fd >= 0) {
			short re = pfd[1].revents;
			if (re & POLLIN)
				chan_readable(b);
			if (chan_up(b) && (re & POLLOUT) &&
			    obuf_flush(&b->chan_out, b->chan_fd) < 0)
				chan_down(b, strerror(errno));
			if (chan_up(b) && (re & (POLLERR | POLLNVAL)))
				chan_down(b, "error on the channel");
			else if (chan_up(b) && (re & POLLHUP) && !(re & POLLIN))
				chan_down(b, "the host side is not connected");
		}
		for (size_t i = 2; i < n; i++) {
			struct conn *c = who[i];
			short re = pfd[i].revents;
			if (c->fd < 0 || c->fd != pfd[i].fd)
				continue;
			if (re & POLLOUT) {
				if (obuf_flush(&c->out, c->fd) < 0) {
					conn_close(b, c);
					continue;
				}
			}
			if (c->closing && obuf_size(&c->out) == 0) {
				conn_close(b, c);
				continue;
			}
			if (!c->closing && !c->eof && (re & (POLLIN | POLLHUP | POLLERR)))
				conn_readable(b, c);
			else if (re & POLLERR)
				conn_close(b, c);
		}
		if (pfd[0].fd >= 0 && (pfd[0].revents & POLLIN))
			accept_conn(b);
	}
	free(pfd);
	free(who);
	return got_term ? 0 : (b->stop ? 0 : 1);
}

/* Reads the instance-id: a one-line file (cloud-init's), else the "instance-id:" line of
 * a NoCloud meta-data file (its value plain or quoted). Empty when neither has one. */
static void copy_trunc(char *out, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (n >= cap)
		n = cap - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

static void read_instance_id(const struct opts *o, char *out, size_t cap)
{
	out[0] = '\0';
	if (o->instance_id) {
		copy_trunc(out, cap, o->instance_id);
		return;
	}
	char line[512];
	FILE *f = fopen(INSTANCE_ID_FILE, "re");
	if (f) {
		if (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\r\n")] = '\0';
			copy_trunc(out, cap, line);
		}
		fclose(f);
		if (out[0])
			return;
	}
	f = fopen(o->meta_data, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "instance-id:", 12) != 0)
			continue;
		char *v = line + 12;
		v += strspn(v, " \t");
		v[strcspn(v, "\r\n")] = '\0';
		size_t n = strlen(v);
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			v[--n] = '\0';
		if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
			v[n - 1] = '\0';
			v++;
		}
		copy_trunc(out, cap, v);
		break;
	}
	fclose(f);
}

/* ---- fetch: a tiny client, for scripts in the guest and for the tests ---- */

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Decodes base64 in place; returns the decoded length, or -1. */
static long b64_decode(char *s)
{
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '=')
			break;
		int v = b64val((unsigned char)s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			s[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	return (long)o;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static char *member_string(const char *json, size_t len, const char *key)
{
	struct px_json_member m;
	if (px_json_find(json, len, key, &m) < 0 || !m.found)
		return NULL;
	return px_json_string(json + m.vstart, m.vend - m.vstart);
}

/* Prints the body of the answer frame json[0..len) (NUL-terminated) and returns fetch's
 * exit code for it. */
static int fetch_answer(const char *json, size_t len)
{
	struct px_json_member status, error, id;
	if (px_json_find(json, len, "status", &status) < 0 || !status.found ||
	    px_json_find(json, len, "error", &error) < 0 ||
	    px_json_find(json, len, "id", &id) < 0) {
		fputs("pexi-guest: the answer is not a response frame\n", stderr);
		return 4;
	}
	if (!id.found || id.vend - id.vstart != 7 || memcmp(json + id.vstart, "\"fetch\"", 7)) {
		fputs("pexi-guest: the answer does not carry the request's id\n", stderr);
		return 4;
	}
	if (error.found &&
	    !(error.vend - error.vstart == 4 && memcmp(json + error.vstart, "null", 4) == 0)) {
		const char *e = json + error.vstart;
		size_t elen = error.vend - error.vstart;
		char *code = member_string(e, elen, "code");
		char *msg = member_string(e, elen, "message");
		fprintf(stderr, "pexi-guest: error %s: %s\n", code ? code : "?", msg ? msg : "");
		free(code);
		free(msg);
		return 3;
	}
	long st = strtol(json + status.vstart, NULL, 10);
	char *body = member_string(json, len, "body_base64");
	long blen = body ? b64_decode(body) : 0;
	int rc = 0;
	if (blen < 0) {
		fputs("pexi-guest: body_base64 is not base64\n", stderr);
		rc = 4;
	} else if (body && write_all(STDOUT_FILENO, body, (size_t)blen) < 0) {
		rc = 4;
	} else if (st < 200 || st > 299) {
		fprintf(stderr, "pexi-guest: HTTP status %ld\n", st);
		rc = 1;
	}
	free(body);
	return rc;
}

/* Exit codes: 0 a 2xx answer, 1 another HTTP status, 2 usage, 3 the PEP refused it (the
 * error code and message on stderr), 4 the bridge could not be reached or answered
 * nonsense. */
static int cmd_fetch(int argc, char **argv)
{
	const char *method = "GET", *url = NULL;
	unsigned port = DEFAULT_PORT;
	size_t max = 64u << 20;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-X") == 0 && i + 1 < argc)
			method = argv[++i];
		else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (argv[i][0] != '-' && !url)
			url = argv[i];
		else
			url = NULL, i = argc;
	}
	if (!url) {
		fputs("usage: pexi-guest fetch [-X METHOD] [--port PORT] URL\n", stderr);
		return 2;
	}
	char qm[64], qu[8192];
	if (!px_json_quote(method, strlen(method), qm, sizeof(qm)) ||
	    !px_json_quote(url, strlen(url), qu, sizeof(qu))) {
		fputs("pexi-guest: method or URL too long\n", stderr);
		return 2;
	}
	char req[sizeof(qm) + sizeof(qu) + 96];
	int n = snprintf(req, sizeof(req),
	                 "{\"id\":\"fetch\",\"method\":%s,\"url\":%s,\"headers\":[],"
	                 "\"body_base64\":\"\"}",
	                 qm, qu);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "pexi-guest: cannot connect to 127.0.0.1:%u: %s\n", port,
		        strerror(errno));
		return 4;
	}
	unsigned char hdr[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
	                        (unsigned char)(n >> 8), (unsigned char)n};
	if (write_all(fd, (char *)hdr, 4) < 0 || write_all(fd, req, (size_t)n) < 0 ||
	    read_all(fd, (char *)hdr, 4) < 0) {
		fputs("pexi-guest: the bridge closed the connection\n", stderr);
		close(fd);
		return 4;
	}
	size_t len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (len > max) {
		fputs("pexi-guest: answer over the size cap\n", stderr);
		close(fd);
		return 4;
	}
	char *json = xalloc(len + 1);
	if (read_all(fd, json, len) < 0) {
		fputs("pexi-guest: the answer was cut short\n", stderr);
		free(json);
		close(fd);
		return 4;
	}
	close(fd);
	json[len] = '\0';
	int rc = fetch_answer(json, len);
	free(json);
	return rc;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fputs("usage: pexi-guest [--channel auto|virtio:PATH|vsock:PORT|unix:PATH]\n"
	      "                  [--vsock-port N] [--port N] [--instance-id ID]\n"
	      "                  [--meta-data FILE] [--poweroff-cmd 'CMD ARG...'] [--once]\n"
	      "                  [--max-frame BYTES] [--max-conns N] [--max-inflight N]\n"
	      "       pexi-guest fetch [-X METHOD] [--port N] URL\n",
	      f);
}

/* Splits a command on blanks into an argv (no quoting: it names a program and plain
 * arguments, never shell text). */
static char **split_argv(const char *s)
{
	size_t n = 0, cap = 4;
	char **v = xalloc(cap * sizeof(*v));
	/* The words point into this copy, which lives as long as the program. */
	static char *copy;
	copy = strdup(s);
	if (!copy)
		abort();
	for (char *p = copy; *p;) {
		p += strspn(p, " \t");
		if (!*p)
			break;
		size_t w = strcspn(p, " \t");
		if (n + 2 > cap) {
			char **nv = xalloc(cap * 2 * sizeof(*v));
			memcpy(nv, v, n * sizeof(*v));
			free(v);
			v = nv;
			cap *= 2;
		}
		v[n++] = p;
		p += w;
		if (*p)
			*p++ = '\0';
	}
	v[n] = NULL;
	return v;
}

static bool parse_size(const char *s, size_t min, size_t max, size_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*ret = (size_t)v;
	return true;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "fetch") == 0)
		return cmd_fetch(argc - 1, argv + 1);

	struct opts o = {
	        .channel = "auto",
	        .vsock_port = DEFAULT_VSOCK,
	        .port = DEFAULT_PORT,
	        .meta_data = META_DATA_FILE,
	        /* The PEP's default max_response_bytes (64 MiB) in base64, with headers. */
	        .max_frame = 128u << 20,
	        .max_conns = 64,
	        .max_inflight = 32,
	};
	const char *poweroff = "poweroff";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		size_t num;
		bool used = true;
		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--once") == 0) {
			o.once = true;
			used = false;
		} else if (!v) {
			usage(stderr);
			return 2;
		} else if (strcmp(a, "--channel") == 0) {
			o.channel = v;
		} else if (strcmp(a, "--vsock-port") == 0 && parse_size(v, 1, UINT32_MAX, &num)) {
			o.vsock_port = (unsigned)num;
		} else if (strcmp(a, "--port") == 0 && parse_size(v, 1, 65535, &num)) {
			o.port = (unsigned)num;
		} else if (strcmp(a, "--instance-id") == 0) {
			o.instance_id = v;
		} else if (strcmp(a, "--meta-data") == 0) {
			o.meta_data = v;
		} else if (strcmp(a, "--poweroff-cmd") == 0) {
			poweroff = v;
		} else if (strcmp(a, "--max-frame") == 0 && parse_size(v, 64, 1u << 30, &num)) {
			o.max_frame = num;
		} else if (strcmp(a, "--max-conns") == 0 && parse_size(v, 1, 4096, &num)) {
			o.max_conns = num;
		} else if (strcmp(a, "--max-inflight") == 0 && parse_size(v, 1, 4096, &num)) {
			o.max_inflight = num;
		} else {
			fprintf(stderr, "pexi-guest: bad option '%s'\n", a);
			usage(stderr);
			return 2;
		}
		if (used)
			i++;
	}
	o.poweroff_argv = split_argv(poweroff);
	if (!o.poweroff_argv[0]) {
		fputs("pexi-guest: --poweroff-cmd is empty\n", stderr);
		free(o.poweroff_argv);
		return 2;
	}
	/* Answers queued for one app: two whole frames, then it is not reading. */
	o.max_queued = 2 * (o.max_frame + 4);

	struct sigaction sa = {.sa_handler = SIG_IGN};
	sigaction(SIGPIPE, &sa, NULL);
	/* The poweroff child is reaped by the kernel. */
	sa.sa_flags = SA_NOCLDWAIT;
	sigaction(SIGCHLD, &sa, NULL);
	sa = (struct sigaction){.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	static struct bridge b;
	b.o = &o;
	b.chan_fd = -1;
	b.retry_ms = RETRY_MIN_MS;
	px_mux_init(&b.mux);
	read_instance_id(&o, b.instance_id, sizeof(b.instance_id));
	b.conns = calloc(o.max_conns, sizeof(*b.conns));
	if (!b.conns)
		abort();
	for (size_t i = 0; i < o.max_conns; i++)
		b.conns[i].fd = -1;
	b.listen_fd = listen_loopback(o.port);
	if (b.listen_fd < 0) {
		logmsg("cannot listen on 127.0.0.1:%u: %s", o.port, strerror(errno));
		return 1;
	}
	logmsg("ready: listening on 127.0.0.1:%u, instance-id %s", o.port,
	       b.instance_id[0] ? b.instance_id : "(none)");
	int rc = serve(&b);
	logmsg("exiting");
	return rc;
}
