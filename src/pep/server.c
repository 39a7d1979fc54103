#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#if __has_include(<linux/vm_sockets.h>)
#include <linux/vm_sockets.h>
#define HAVE_VSOCK 1
#endif

#include "core/common.h"

#include "core/clock.h"
#include "core/buf.h"
#include "core/log.h"
#include "manifest/manifest.h"
#include "pep/audit.h"
#include "pep/frame.h"
#include "pep/handle.h"
#include "pep/policy.h"
#include "pep/server.h"

/* Output a connection may have queued before it stops reading more requests: a peer that
 * does not read its answers cannot make the daemon buffer without end. */
#define MAX_OUT_BYTES (8u << 20)
#define READ_CHUNK    16384
/* Input bytes held across all connections (read buffers and requests not yet answered):
 * past it the daemon stops reading until answers drain, so many peers together cannot
 * make it buffer more than this however the per-connection caps add up. */
#define MAX_BUFFERED (256u << 20)
/* A frame must arrive whole within this many stall timeouts, so a peer trickling one byte
 * at a time cannot hold a half-read frame forever. */
#define FRAME_DEADLINE_STALLS 6
#define ACCEPT_PER_WAKE       64
#define TICK_MS               200

PX_DEFINE_CLEANUP(struct px_manifest *, px_manifest_free)

/* ---- the handler, shared by workers, swapped on SIGHUP ---- */

struct hold {
	struct px_pep_handler *h;
	struct px_frame_limits lim;
	atomic_int refs;
};

static void hold_unref(struct hold *h)
{
	if (h && atomic_fetch_sub(&h->refs, 1) == 1) {
		px_pep_handler_free(h->h);
		free(h);
	}
}

/* ---- event sources ---- */

enum ev_kind { EV_LISTEN, EV_CONN, EV_SIGNAL, EV_WAKE };

struct ev {
	enum ev_kind kind;
	int fd;
};

struct listener {
	struct ev ev;
	char *name;
	char *unix_path; /* removed at exit */
};

struct outbuf {
	struct outbuf *next;
	char *data;
	size_t len, off;
};

struct job;

struct conn {
	struct ev ev; /* first: the epoll data points here */
	struct conn *prev, *next;
	uint64_t serial;
	/* input: bytes read but not yet cut into frames */
	uint8_t *in;
	size_t in_len, in_cap;
	/* output */
	struct outbuf *out_head, *out_tail;
	size_t out_bytes;
	/* request accounting */
	unsigned inflight;       /* jobs not yet completed */
	unsigned held_n;         /* completed no-id answers waiting for their turn */
	struct job *held;        /* sorted by order */
	uint64_t next_order;     /* assigned to the next no-id frame */
	uint64_t send_order;     /* the no-id answer to send next */
	uint64_t last_in_ms;     /* last byte read */
	uint64_t frame_start_ms; /* when the bytes now in 'in' began arriving */
	uint64_t last_out_ms;    /* last byte written, or when output became pending */
	uint32_t events;         /* what epoll currently watches */
	bool hello;
	bool eof;     /* read side finished: close once everything is answered */
	bool closing; /* protocol error: stop reading, flush, close */
	bool dead;    /* closed; freed when the last job comes back */
};

struct job {
	struct job *next;
	struct conn *conn;
	struct hold *hold;
	struct px_frame frame;
	bool ordered; /* no id: answered in order */
	size_t cost;  /* input bytes it holds, counted in server.buffered */
	uint64_t order;
	struct px_buf out;
};

/* ---- daemon state: the loop thread owns everything but the two queues ---- */

struct server {
	const struct px_pep_server_config *cfg;
	struct px_pep_server_config cfg_copy;
	int epfd;
	struct ev sig, wake;
	struct listener *listeners;
	size_t n_listeners;
	bool listening;
	struct conn *conns;
	/* Closed connections are freed only after the batch of events being handled, which
	 * may still point at them (a signal or a completion can close a connection whose
	 * own event comes later in the same batch). */
	struct conn *graveyard;
	unsigned n_conns;
	uint64_t serial;
	struct hold *hold;
	struct px_pep_env env;
	bool have_env;
	struct px_audit *audit;
	bool stopping;
	size_t buffered; /* see MAX_BUFFERED */
	bool starved;    /* some connection stopped reading for the budget */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *todo_head, *todo_tail;
	struct job *done;
	bool quit;
	pthread_t *threads;
	unsigned n_threads;
	unsigned inflight; /* jobs handed to workers and not back yet */
};

static int sig_pipe_w = -1;

static void on_signal(int signo)
{
	int saved = errno;
	unsigned char b = (unsigned char)signo;
	ssize_t w = write(sig_pipe_w, &b, 1);
	(void)w; /* a full pipe already holds a wake-up */
	errno = saved;
}

/* The event loop keeps its deadlines unsigned. */
static uint64_t now_ms(void)
{
	return (uint64_t)px_mono_ms();
}

/* ---- policy ---- */

static int load_hold(struct server *s, struct hold **ret, struct px_err **err)
{
	_cleanup_(px_manifest_freep) struct px_manifest *m = NULL;
	if (px_manifest_load_pep(s->cfg->policy_path, &m, err) < 0)
		return -1;
	/* The limits are the policy's (with the environment overrides applied there); the
	 * frame cap follows from the request body limit. */
	struct px_pep_policy *pol = NULL;
	if (px_pep_policy_new(m, &pol, err) < 0)
		return -1;
	const struct px_pep_limits *l = px_pep_policy_limits(pol);
	uint64_t body = l->max_request_bytes;
	uint64_t frame =
	        (body + 2) / 3 * 4 + l->max_url_bytes * 6 + l->max_header_bytes * 6 + 65536;
	size_t max_headers = l->max_headers;
	px_pep_policy_free(pol);
	struct px_pep_handler *h = NULL;
	if (px_pep_handler_new(m, s->have_env ? &s->env : NULL, s->cfg->ca_file, &h, err) < 0)
		return -1;
	struct hold *hd = xcalloc(1, sizeof(*hd));
	hd->h = h;
	/* One byte past each limit still decodes, so the policy refuses it with its own
	 * message and audit line; anything larger is refused at the frame layer. */
	hd->lim.max_body = body + 1 > SIZE_MAX ? SIZE_MAX : (size_t)body + 1;
	hd->lim.max_frame = frame > UINT32_MAX ? UINT32_MAX : (uint32_t)frame;
	hd->lim.max_headers =
	        max_headers + 1 > PX_FRAME_MAX_HEADERS ? max_headers + 1 : PX_FRAME_MAX_HEADERS;
	atomic_init(&hd->refs, 1);
	*ret = hd;
	return 0;
}

static void reload(struct server *s)
{
	struct px_err *err = NULL;
	struct hold *h = NULL;
	if (load_hold(s, &h, &err) < 0) {
		px_log_warn("policy reload failed, keeping the current policy: %s",
		            err ? err->msg : "unknown error");
		px_err_free(err);
		return;
	}
	hold_unref(s->hold);
	s->hold = h;
	px_log_info("policy '%s' reloaded", s->cfg->policy_path);
}

/* ---- workers ---- */

static void fail_closed(struct px_pep_response *resp, const char *why)
{
	px_pep_response_free(resp);
	resp->code = PX_PEP_HTTP_ERROR;
	resp->message = xstrdup(why);
}

static void run_job(struct server *s, struct job *j)
{
	struct px_pep_response resp = {0};
	struct px_pep_trace trace = {0};
	px_pep_handle(j->hold->h, &j->frame.req, &resp, &trace);
	struct px_err *err = NULL;
	/* No answer leaves without its audit line. */
	if (px_audit_record(s->audit, &j->frame.req, &resp, &trace, &err) < 0) {
		px_log_warn("%s", err->msg);
		px_err_free(err);
		fail_closed(&resp, "the audit log cannot be written");
	}
	if (px_frame_encode_response(j->frame.id, j->frame.id_numeric, &resp, &j->out, &err) < 0) {
		px_err_free(err);
		px_buf_free(&j->out);
		px_frame_encode_error(j->frame.id, j->frame.id_numeric, PX_PEP_CONSTRAINT_VIOLATION,
		                      "response too large for a frame", &j->out);
	}
	px_pep_response_free(&resp);
	px_pep_trace_free(&trace);
	px_frame_free(&j->frame);
}

static void *worker(void *arg)
{
	struct server *s = arg;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->todo_head && !s->quit)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->quit)
			break;
		struct job *j = s->todo_head;
		s->todo_head = j->next;
		if (!s->todo_head)
			s->todo_tail = NULL;
		pthread_mutex_unlock(&s->lock);
		run_job(s, j);
		pthread_mutex_lock(&s->lock);
		j->next = s->done;
		bool was_empty = !s->done;
		s->done = j;
		pthread_mutex_unlock(&s->lock);
		if (was_empty) {
			uint64_t one = 1;
			ssize_t w = write(s->wake.fd, &one, sizeof(one));
			(void)w; /* an eventfd counter that is already set is fine */
		}
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- connections ---- */

static void conn_watch(struct server *s, struct conn *c)
{
	if (c->dead)
		return;
	uint32_t want = 0;
	bool room = c->inflight + c->held_n < s->cfg->max_queue && c->out_bytes < MAX_OUT_BYTES;
	if (s->buffered >= MAX_BUFFERED) {
		room = false;
		s->starved = true;
	}
	if (!c->eof && !c->closing && !s->stopping && room)
		want |= EPOLLIN;
	if (c->out_head)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	struct epoll_event e = {.events = want, .data.ptr = &c->ev};
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->ev.fd, &e) == 0)
		c->events = want;
}

static void job_free(struct job *j)
{
	px_frame_free(&j->frame);
	px_buf_free(&j->out);
	hold_unref(j->hold);
	free(j);
}

static void conn_free(struct server *s, struct conn *c)
{
	s->buffered -= c->in_cap;
	while (c->out_head) {
		struct outbuf *o = c->out_head;
		c->out_head = o->next;
		free(o->data);
		free(o);
	}
	while (c->held) {
		struct job *j = c->held;
		c->held = j->next;
		job_free(j);
	}
	free(c->in);
	free(c);
}

static void bury(struct server *s, struct conn *c)
{
	c->prev = NULL;
	c->next = s->graveyard;
	s->graveyard = c;
}

static void free_graveyard(struct server *s)
{
	while (s->graveyard) {
		struct conn *c = s->graveyard;
		s->graveyard = c->next;
		conn_free(s, c);
	}
}

static void conn_close(struct server *s, struct conn *c, const char *why)
{
	if (c->dead)
		return;
	px_log_debug("connection %" PRIu64 " closed: %s", c->serial, why);
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->ev.fd, NULL);
	close(c->ev.fd);
	c->ev.fd = -1;
	c->dead = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	if (c->inflight == 0)
		bury(s, c);
}

static void conn_flush(struct server *s, struct conn *c)
{
	while (c->out_head) {
		struct outbuf *o = c->out_head;
		ssize_t w = send(c->ev.fd, o->data + o->off, o->len - o->off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_close(s, c, "write failed");
			return;
		}
		c->last_out_ms = now_ms();
		o->off += (size_t)w;
		c->out_bytes -= (size_t)w;
		if (o->off < o->len)
			continue;
		c->out_head = o->next;
		if (!c->out_head)
			c->out_tail = NULL;
		free(o->data);
		free(o);
	}
	if (!c->out_head && c->inflight == 0 && c->held_n == 0 && (c->eof || c->closing)) {
		conn_close(s, c, c->closing ? "protocol error" : "peer finished");
		return;
	}
	conn_watch(s, c);
}

static void conn_send(struct conn *c, struct px_buf *b)
{
	struct outbuf *o = xcalloc(1, sizeof(*o));
	o->data = px_buf_steal(b, &o->len);
	if (!c->out_head)
		c->last_out_ms = now_ms();
	if (c->out_tail)
		c->out_tail->next = o;
	else
		c->out_head = o;
	c->out_tail = o;
	c->out_bytes += o->len;
}

/* Hands a finished answer to its connection, keeping no-id answers in request order. */
static void deliver(struct conn *c, struct job *j)
{
	if (!j->ordered) {
		conn_send(c, &j->out);
		job_free(j);
		return;
	}
	struct job **pp = &c->held;
	while (*pp && (*pp)->order < j->order)
		pp = &(*pp)->next;
	j->next = *pp;
	*pp = j;
	c->held_n++;
	while (c->held && c->held->order == c->send_order) {
		struct job *h = c->held;
		c->held = h->next;
		c->held_n--;
		c->send_order++;
		conn_send(c, &h->out);
		job_free(h);
	}
}

static struct job *job_new(struct conn *c, bool ordered)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->conn = c;
	j->ordered = ordered;
	if (ordered)
		j->order = c->next_order++;
	return j;
}

/* An answer made on the loop thread (a refusal, a hello) still waits its turn. */
static void answer_now(struct server *s, struct conn *c, struct job *j)
{
	deliver(c, j);
	conn_flush(s, c);
}

static void audit_refusal(struct server *s, const struct px_frame *f, enum px_pep_code code,
                          const char *why)
{
	struct px_pep_response resp = {.code = code, .message = (char *)why};
	struct px_pep_trace t = {.decision = "deny"};
	snprintf(t.reason, sizeof(t.reason), "frame: %s", why);
	struct px_err *err = NULL;
	if (px_audit_record(s->audit, f && f->type == PX_FRAME_REQUEST ? &f->req : NULL, &resp, &t,
	                    &err) < 0) {
		px_log_warn("%s", err->msg);
		px_err_free(err);
	}
}

/* The ready line is one line of one word: control bytes and spaces become '_'. */
/* What a guest names itself goes into our log and the ready line: printable ASCII only,
 * so it can neither forge a line nor send a terminal escape (C0, C1, DEL). */
static void sanitize_guest_text(const char *in, char *out, size_t n)
{
	size_t i = 0;
	for (; in[i] && i + 1 < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		out[i] = ch <= 0x20 || ch >= 0x7f ? '_' : (char)ch;
	}
	out[i] = '\0';
}

static void on_frame(struct server *s, struct conn *c, const uint8_t *p, size_t len)
{
	struct px_frame f;
	struct px_err *err = NULL;
	if (px_frame_decode(p, len, &s->hold->lim, &f, &err) < 0) {
		/* The frame boundary held, so the stream goes on after the refusal. */
		struct job *j = job_new(c, f.id == NULL);
		px_frame_encode_error(f.id, f.id_numeric, PX_PEP_CONSTRAINT_VIOLATION, err->msg,
		                      &j->out);
		audit_refusal(s, &f, PX_PEP_CONSTRAINT_VIOLATION, err->msg);
		px_err_free(err);
		px_frame_free(&f);
		answer_now(s, c, j);
		return;
	}
	if (f.type == PX_FRAME_HELLO) {
		char inst[PX_FRAME_MAX_INSTANCE + 1], guest[PX_FRAME_MAX_INSTANCE + 1];
		sanitize_guest_text(f.instance_id, inst, sizeof(inst));
		sanitize_guest_text(f.guest ? f.guest : "unknown guest", guest, sizeof(guest));
		px_log_info("hello from instance '%s' (%s) on connection %" PRIu64, inst, guest,
		            c->serial);
		c->hello = true;
		if (s->cfg->ready_fd >= 0) {
			_cleanup_free_ char *line = xasprintf("hello %s\n", inst);
			if (write(s->cfg->ready_fd, line, strlen(line)) < 0)
				px_log_debug("ready fd: %s", strerror(errno));
		}
		struct job *j = job_new(c, true);
		px_frame_encode_hello_ok(&j->out);
		px_frame_free(&f);
		answer_now(s, c, j);
		return;
	}
	if (f.type == PX_FRAME_POWEROFF) {
		struct job *j = job_new(c, f.id == NULL);
		px_frame_encode_error(f.id, f.id_numeric, PX_PEP_CONSTRAINT_VIOLATION,
		                      "poweroff frames go from the host to the guest", &j->out);
		px_frame_free(&f);
		answer_now(s, c, j);
		return;
	}
	struct job *j = job_new(c, f.id == NULL);
	j->frame = f;
	j->cost = len;
	s->buffered += len;
	j->hold = s->hold;
	atomic_fetch_add(&s->hold->refs, 1);
	c->inflight++;
	s->inflight++;
	pthread_mutex_lock(&s->lock);
	if (s->todo_tail)
		s->todo_tail->next = j;
	else
		s->todo_head = j;
	s->todo_tail = j;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Cuts complete frames out of the input buffer. Returns false when the connection must
 * stop reading (a length over the limit: the stream cannot be resynchronised). */
static bool cut_frames(struct server *s, struct conn *c, size_t *ret_need)
{
	size_t pos = 0;
	bool okay = true;
	*ret_need = PX_FRAME_HEADER;
	while (c->in_len - pos >= PX_FRAME_HEADER) {
		uint32_t len;
		struct px_err *err = NULL;
		if (px_frame_length(c->in + pos, s->hold->lim.max_frame, &len, &err) < 0) {
			struct job *j = job_new(c, true);
			px_frame_encode_error(NULL, false, PX_PEP_CONSTRAINT_VIOLATION, err->msg,
			                      &j->out);
			audit_refusal(s, NULL, PX_PEP_CONSTRAINT_VIOLATION, err->msg);
			px_err_free(err);
			c->closing = true;
			deliver(c, j);
			okay = false;
			pos = c->in_len;
			break;
		}
		if (c->in_len - pos - PX_FRAME_HEADER < len) {
			*ret_need = PX_FRAME_HEADER + (size_t)len;
			break;
		}
		on_frame(s, c, c->in + pos + PX_FRAME_HEADER, len);
		if (c->dead)
			return false;
		pos += PX_FRAME_HEADER + len;
		if (c->inflight + c->held_n >= s->cfg->max_queue)
			break;
	}
	if (pos) {
		memmove(c->in, c->in + pos, c->in_len - pos);
		c->in_len -= pos;
		c->frame_start_ms = now_ms();
	}
	/* An idle connection keeps no input buffer: memory follows what peers send. */
	if (c->in_len == 0 && c->in) {
		s->buffered -= c->in_cap;
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	return okay;
}

static void conn_read(struct server *s, struct conn *c)
{
	size_t need = PX_FRAME_HEADER;
	if (!cut_frames(s, c, &need) || c->dead) {
		if (!c->dead)
			conn_flush(s, c);
		return;
	}
	if (c->inflight + c->held_n >= s->cfg->max_queue) {
		conn_flush(s, c);
		return;
	}
	/* Grow toward the announced frame in steps that follow the bytes actually sent, so a
	 * peer announcing 16 MiB and sending ten bytes holds ten bytes, not 16 MiB. */
	if (c->in_cap - c->in_len < READ_CHUNK / 4) {
		size_t cap = c->in_cap ? c->in_cap * 2 : READ_CHUNK;
		size_t cap_need = need > c->in_len + READ_CHUNK ? need : c->in_len + READ_CHUNK;
		if (cap > cap_need)
			cap = cap_need;
		if (cap > c->in_cap && s->buffered + (cap - c->in_cap) <= MAX_BUFFERED) {
			s->buffered += cap - c->in_cap;
			c->in = xrealloc(c->in, cap);
			c->in_cap = cap;
		}
	}
	if (c->in_cap == c->in_len) {
		/* Over the budget: wait for answers to drain instead of reading. */
		s->starved = true;
		conn_watch(s, c);
		return;
	}
	ssize_t r = recv(c->ev.fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	if (r < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_close(s, c, "read failed");
		return;
	}
	if (r == 0) {
		c->eof = true;
		if (c->in_len)
			px_log_debug("connection %" PRIu64 " ended inside a frame", c->serial);
		c->in_len = 0;
		conn_flush(s, c);
		return;
	}
	if (c->in_len == 0)
		c->frame_start_ms = now_ms();
	c->in_len += (size_t)r;
	c->last_in_ms = now_ms();
	if (!cut_frames(s, c, &need) || c->dead) {
		if (!c->dead)
			conn_flush(s, c);
		return;
	}
	conn_flush(s, c);
}

static void do_accept(struct server *s, struct listener *l)
{
	for (int i = 0; i < ACCEPT_PER_WAKE; i++) {
		int fd = accept4(l->ev.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* Out of descriptors: stop accepting until the next tick rather
				 * than spin on a listener that stays readable. */
				px_log_warn("out of file descriptors; accepting paused");
				struct epoll_event e = {0};
				epoll_ctl(s->epfd, EPOLL_CTL_MOD, l->ev.fd, &e);
				s->listening = false;
			}
			return;
		}
		if (s->n_conns >= s->cfg->max_connections) {
			px_log_debug("connection limit of %u reached; refusing one",
			             s->cfg->max_connections);
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = xcalloc(1, sizeof(*c));
		c->ev.kind = EV_CONN;
		c->ev.fd = fd;
		c->serial = ++s->serial;
		c->last_in_ms = c->last_out_ms = now_ms();
		c->events = EPOLLIN;
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = &c->ev};
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->n_conns++;
	}
}

static void on_done(struct server *s)
{
	uint64_t v;
	ssize_t r = read(s->wake.fd, &v, sizeof(v));
	(void)r;
	pthread_mutex_lock(&s->lock);
	struct job *list = s->done;
	s->done = NULL;
	pthread_mutex_unlock(&s->lock);
	/* The list is newest first; answer oldest first. */
	struct job *rev = NULL;
	while (list) {
		struct job *n = list->next;
		list->next = rev;
		rev = list;
		list = n;
	}
	while (rev) {
		struct job *j = rev;
		rev = j->next;
		j->next = NULL;
		struct conn *c = j->conn;
		c->inflight--;
		s->inflight--;
		s->buffered -= j->cost;
		if (c->dead) {
			job_free(j);
			if (c->inflight == 0)
				bury(s, c);
			continue;
		}
		deliver(c, j);
		/* Frames already buffered while the queue was full go on now: epoll will
		 * not report bytes that were read before. */
		size_t need;
		if (c->in_len >= PX_FRAME_HEADER && !c->eof && !c->closing && !s->stopping &&
		    !cut_frames(s, c, &need) && c->dead)
			continue;
		if (!c->dead)
			conn_flush(s, c);
	}
}

/* Lets connections that stopped reading for the global budget read again. */
static void unstarve(struct server *s)
{
	if (!s->starved || s->buffered >= MAX_BUFFERED)
		return;
	s->starved = false;
	for (struct conn *c = s->conns; c; c = c->next)
		conn_watch(s, c);
}

static void sweep(struct server *s)
{
	uint64_t t = now_ms();
	const struct px_pep_server_config *cfg = s->cfg;
	for (struct conn *c = s->conns, *n; c; c = n) {
		n = c->next;
		if (c->in_len && t - c->last_in_ms > cfg->stall_timeout_ms)
			conn_close(s, c, "stalled inside a frame");
		else if (c->in_len && t - c->frame_start_ms > (uint64_t)cfg->stall_timeout_ms *
		                                                      FRAME_DEADLINE_STALLS)
			conn_close(s, c, "a frame took too long to arrive");
		else if (c->out_head && t - c->last_out_ms > cfg->stall_timeout_ms)
			conn_close(s, c, "not reading its answers");
		else if (!c->hello && !c->in_len && !c->out_head && !c->inflight &&
		         cfg->idle_timeout_ms && t - c->last_in_ms > cfg->idle_timeout_ms)
			conn_close(s, c, "idle");
	}
	if (!s->listening && !s->stopping) {
		for (size_t i = 0; i < s->n_listeners; i++) {
			struct epoll_event e = {.events = EPOLLIN, .data.ptr = &s->listeners[i].ev};
			epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->listeners[i].ev.fd, &e);
		}
		s->listening = true;
	}
}

static void poweroff_all(struct server *s)
{
	unsigned n = 0;
	for (struct conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (!c->hello)
			continue;
		struct px_buf b = PX_BUF_INIT;
		px_frame_encode_poweroff(&b);
		conn_send(c, &b);
		conn_flush(s, c);
		n++;
	}
	px_log_info("poweroff sent to %u connection%s", n, n == 1 ? "" : "s");
}

/* ---- listeners ---- */

static int listen_unix(const char *path, int *ret_fd, struct px_err **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return px_err_set(err, PX_EXIT_USAGE, "unix socket path '%s' is too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot create a unix socket");
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "'%s' exists and is not a socket; not replacing it",
			                  path);
		/* A socket nobody answers on is left over from a daemon that died. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (probe >= 0)
			close(probe);
		if (live)
			return px_err_set(err, PX_EXIT_FAILURE, "'%s' is in use by another process",
			                  path);
		unlink(path);
	}
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0)
		return px_err_errno(err, errno, "cannot bind unix socket '%s'", path);
	*ret_fd = steal_fd(&fd);
	return 0;
}

static int listen_tcp(const char *spec, int *ret_fd, char **ret_name, struct px_err **err)
{
	_cleanup_free_ char *host = NULL;
	const char *port_s;
	const char *colon = strrchr(spec, ':');
	if (!colon) {
		host = xstrdup("127.0.0.1");
		port_s = spec;
	} else if (spec[0] == '[') {
		const char *close_b = strchr(spec, ']');
		if (!close_b || close_b + 1 != colon)
			return px_err_set(err, PX_EXIT_USAGE, "bad listen address 'tcp:%s'", spec);
		host = xstrndup(spec + 1, (size_t)(close_b - spec - 1));
		port_s = colon + 1;
	} else {
		host = xstrndup(spec, (size_t)(colon - spec));
		port_s = colon + 1;
	}
	char *end;
	errno = 0;
	unsigned long port = strtoul(port_s, &end, 10);
	if (!*port_s || *end || errno || port > 65535)
		return px_err_set(err, PX_EXIT_USAGE, "bad port in listen address 'tcp:%s'", spec);
	struct sockaddr_storage ss = {0};
	socklen_t slen;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		slen = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		slen = sizeof(*v6);
	} else {
		return px_err_set(err, PX_EXIT_USAGE,
		                  "listen address 'tcp:%s' needs an IP address, not a name", spec);
	}
	_cleanup_close_ int fd =
	        socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot create a tcp socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, slen) < 0)
		return px_err_errno(err, errno, "cannot bind 'tcp:%s'", spec);
	/* Report the port the kernel chose for port 0, so tests can find it. */
	socklen_t gl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &gl);
	unsigned bound = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
	*ret_name = ss.ss_family == AF_INET ? xasprintf("tcp:%s:%u", host, bound)
	                                    : xasprintf("tcp:[%s]:%u", host, bound);
	*ret_fd = steal_fd(&fd);
	return 0;
}

static int listen_vsock(const char *spec, int *ret_fd, struct px_err **err)
{
#ifdef HAVE_VSOCK
	char *end;
	errno = 0;
	unsigned long port = strtoul(spec, &end, 10);
	if (!*spec || *end || errno || port > UINT32_MAX)
		return px_err_set(err, PX_EXIT_USAGE, "bad port in listen address 'vsock:%s'",
		                  spec);
	_cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return px_err_errno(err, errno,
		                    "cannot create a vsock socket (is vsock available?)");
	struct sockaddr_vm sa = {
	        .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = (unsigned)port};
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return px_err_errno(err, errno, "cannot bind 'vsock:%s'", spec);
	*ret_fd = steal_fd(&fd);
	return 0;
#else
	(void)ret_fd;
	return px_err_set(err, PX_EXIT_NOT_IMPLEMENTED,
	                  "vsock is not available on this system ('%s')", spec);
#endif
}

static int open_listener(const char *addr, struct listener *l, struct px_err **err)
{
	int fd = -1;
	l->ev.kind = EV_LISTEN;
	if (strncmp(addr, "unix:", 5) == 0) {
		if (listen_unix(addr + 5, &fd, err) < 0)
			return -1;
		l->unix_path = xstrdup(addr + 5);
		l->name = xstrdup(addr);
	} else if (strncmp(addr, "tcp:", 4) == 0) {
		if (listen_tcp(addr + 4, &fd, &l->name, err) < 0)
			return -1;
	} else if (strncmp(addr, "vsock:", 6) == 0) {
		if (listen_vsock(addr + 6, &fd, err) < 0)
			return -1;
		l->name = xstrdup(addr);
	} else {
		return px_err_set(
		        err, PX_EXIT_USAGE,
		        "listen address '%s' must start with unix:, tcp: or vsock:", addr);
	}
	if (listen(fd, SOMAXCONN) < 0) {
		int e = errno;
		close(fd);
		return px_err_errno(err, e, "cannot listen on '%s'", addr);
	}
	l->ev.fd = fd;
	return 0;
}

/* ---- the loop ---- */

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return xstrdup(".");
	return slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
}

static void raise_fd_limit(unsigned want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max &&
	    rl.rlim_cur < want + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void shutdown_listeners(struct server *s)
{
	for (size_t i = 0; i < s->n_listeners; i++) {
		struct listener *l = &s->listeners[i];
		if (l->ev.fd >= 0) {
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, l->ev.fd, NULL);
			close(l->ev.fd);
			l->ev.fd = -1;
		}
		if (l->unix_path)
			unlink(l->unix_path);
	}
}

static void begin_stop(struct server *s)
{
	s->stopping = true;
	shutdown_listeners(s);
	s->listening = false;
	/* Half-read frames will never complete; the rest drain. */
	for (struct conn *c = s->conns, *n; c; c = n) {
		n = c->next;
		c->in_len = 0;
		c->eof = true;
		conn_flush(s, c);
	}
	px_log_info("stopping: %u request%s in flight", s->inflight, s->inflight == 1 ? "" : "s");
}

static bool drained(struct server *s)
{
	if (s->inflight)
		return false;
	for (struct conn *c = s->conns; c; c = c->next)
		if (c->out_head)
			return false;
	return true;
}

static int serve(struct server *s)
{
	uint64_t last_sweep = now_ms(), stop_deadline = 0;
	struct epoll_event evs[64];
	for (;;) {
		if (s->stopping && (drained(s) || now_ms() >= stop_deadline))
			break;
		int n = epoll_wait(s->epfd, evs, (int)PX_ARRAY_SIZE(evs), TICK_MS);
		if (n < 0 && errno != EINTR)
			return -1;
		for (int i = 0; i < n; i++) {
			struct ev *e = evs[i].data.ptr;
			if (e->kind == EV_LISTEN) {
				do_accept(s, (struct listener *)e);
			} else if (e->kind == EV_WAKE) {
				on_done(s);
			} else if (e->kind == EV_SIGNAL) {
				unsigned char signo;
				while (read(s->sig.fd, &signo, 1) == 1) {
					if (signo == SIGHUP) {
						reload(s);
					} else if (signo == SIGUSR1) {
						poweroff_all(s);
					} else if (!s->stopping) {
						begin_stop(s);
						stop_deadline = now_ms() + s->cfg->drain_timeout_ms;
					}
				}
			} else {
				struct conn *c = (struct conn *)e;
				if (c->dead)
					continue;
				if (evs[i].events & EPOLLOUT)
					conn_flush(s, c);
				/* A hang-up means the peer can no longer read answers either. */
				if (!c->dead && (evs[i].events & (EPOLLHUP | EPOLLERR)))
					conn_close(s, c, "hung up");
				else if (!c->dead && (evs[i].events & EPOLLIN))
					conn_read(s, c);
			}
		}
		free_graveyard(s);
		unstarve(s);
		uint64_t t = now_ms();
		if (t - last_sweep >= TICK_MS) {
			sweep(s);
			last_sweep = t;
		}
	}
	return 0;
}

static void stop_workers(struct server *s, bool join)
{
	pthread_mutex_lock(&s->lock);
	s->quit = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (join)
		for (unsigned i = 0; i < s->n_threads; i++)
			pthread_join(s->threads[i], NULL);
}

int px_pep_server_run(const struct px_pep_server_config *cfg_in, struct px_err **err)
{
	/* The server lives on the heap: when workers outlive the drain timeout, it stays
	 * for them until the process exits instead of vanishing with this stack frame. */
	struct server *s = xcalloc(1, sizeof(*s));
	s->cfg_copy = *cfg_in;
	struct px_pep_server_config *pc = &s->cfg_copy;
	if (!pc->workers)
		pc->workers = PX_PEP_DEFAULT_WORKERS;
	if (!pc->max_connections)
		pc->max_connections = PX_PEP_DEFAULT_MAX_CONNECTIONS;
	if (!pc->max_queue)
		pc->max_queue = PX_PEP_DEFAULT_MAX_QUEUE;
	if (!pc->stall_timeout_ms)
		pc->stall_timeout_ms = PX_PEP_DEFAULT_STALL_MS;
	if (!pc->drain_timeout_ms)
		pc->drain_timeout_ms = PX_PEP_DEFAULT_DRAIN_MS;
	const struct px_pep_server_config cfg = *pc;
	s->cfg = pc;
	s->epfd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	int rc = -1;

	if (cfg.hosts_file) {
		if (px_pep_env_hosts_file(cfg.hosts_file, &s->env, err) < 0) {
			px_err_wrap(err, "hosts file '%s'", cfg.hosts_file);
			goto out;
		}
		s->have_env = true;
	}
	if (load_hold(s, &s->hold, err) < 0)
		goto out;
	if (px_audit_open(cfg.audit_path, cfg.instance, &s->audit, err) < 0)
		goto out;

	/* Signals reach the loop through a self-pipe written by the handler. A signalfd would
	 * need the signals blocked in every thread, and threads started before this point
	 * (by libraries, or by sanitizers) would still take them with the default action. */
	int sp[2] = {-1, -1};
	if (pipe2(sp, O_NONBLOCK | O_CLOEXEC) < 0) {
		px_err_errno(err, errno, "cannot set up the event loop");
		goto out;
	}
	s->sig = (struct ev){EV_SIGNAL, sp[0]};
	sig_pipe_w = sp[1];
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < PX_ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(cfg.max_connections);

	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->wake = (struct ev){EV_WAKE, eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
	if (s->epfd < 0 || s->wake.fd < 0) {
		px_err_errno(err, errno, "cannot set up the event loop");
		goto out;
	}
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = &s->sig};
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sig.fd, &e);
	e.data.ptr = &s->wake;
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake.fd, &e);

	s->listeners = xcalloc(cfg.n_listen, sizeof(*s->listeners));
	for (size_t i = 0; i < cfg.n_listen; i++) {
		s->listeners[i].ev.fd = -1;
		if (open_listener(cfg.listen[i], &s->listeners[i], err) < 0)
			goto out;
		s->n_listeners++;
		struct epoll_event le = {.events = EPOLLIN, .data.ptr = &s->listeners[i].ev};
		epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listeners[i].ev.fd, &le);
	}
	s->listening = true;

	/* Their directories stay readable, not just the files: a policy replaced by rename
	 * (as editors and `pexi up` write it) is a new inode a file rule would not cover. */
	const char *files[] = {cfg.policy_path, cfg.ca_file, cfg.hosts_file};
	char *keep[PX_ARRAY_SIZE(files)] = {0};
	for (size_t i = 0; i < PX_ARRAY_SIZE(files); i++)
		keep[i] = files[i] ? dir_of(files[i]) : NULL;
	const char *missing = NULL;
	char **dirs = xcalloc(s->n_listeners + 1, sizeof(*dirs));
	for (size_t i = 0; i < s->n_listeners; i++)
		if (s->listeners[i].unix_path)
			dirs[i] = dir_of(s->listeners[i].unix_path);
	rc = px_sandbox_apply(cfg.sandbox, (const char *const *)keep, PX_ARRAY_SIZE(keep),
	                      (const char *const *)dirs, s->n_listeners, &missing, err);
	for (size_t i = 0; i < PX_ARRAY_SIZE(keep); i++)
		free(keep[i]);
	for (size_t i = 0; i < s->n_listeners; i++)
		free(dirs[i]);
	free(dirs);
	if (rc < 0)
		goto out;
	rc = -1;
	if (missing)
		px_log_warn("sandbox: %s not available; running without it", missing);
	else if (cfg.sandbox != PX_SANDBOX_OFF)
		px_log_info("sandbox: no_new_privs, landlock and seccomp applied");

	/* Workers start with the signals blocked, so the handler runs on the loop thread
	 * and never interrupts a request's system calls. */
	sigset_t mask, old;
	sigemptyset(&mask);
	for (size_t i = 0; i < PX_ARRAY_SIZE(sigs); i++)
		sigaddset(&mask, sigs[i]);
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	s->threads = xcalloc(cfg.workers, sizeof(*s->threads));
	for (; s->n_threads < cfg.workers; s->n_threads++)
		if (pthread_create(&s->threads[s->n_threads], NULL, worker, s) != 0)
			break;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (s->n_threads < cfg.workers) {
		px_err_errno(err, errno, "cannot start worker threads");
		goto out;
	}

	for (size_t i = 0; i < s->n_listeners; i++)
		px_log_info("listening on %s", s->listeners[i].name);
	if (serve(s) < 0) {
		px_err_errno(err, errno, "event loop failed");
		goto out;
	}
	if (s->inflight)
		px_log_warn("%u request%s still running after the drain timeout", s->inflight,
		            s->inflight == 1 ? "" : "s");
	if (px_audit_sync(s->audit, err) < 0)
		goto out;
	px_log_info("stopped");
	rc = 0;
out:;
	/* Workers still inside a request hold the handler and the audit log: when some did
	 * not finish in time, the process exits around them instead of freeing under them. */
	bool busy = s->inflight > 0;
	if (s->n_threads)
		stop_workers(s, !busy);
	shutdown_listeners(s);
	for (size_t i = 0; i < s->n_listeners; i++) {
		free(s->listeners[i].name);
		free(s->listeners[i].unix_path);
	}
	free(s->listeners);
	if (!busy) {
		for (struct conn *c = s->conns, *n; c; c = n) {
			n = c->next;
			close(c->ev.fd);
			conn_free(s, c);
		}
		free_graveyard(s);
		free(s->threads);
		px_audit_close(s->audit);
		hold_unref(s->hold);
		if (s->have_env)
			px_pep_env_free(&s->env);
	}
	if (s->sig.fd > 0)
		close(s->sig.fd);
	if (sig_pipe_w >= 0) {
		/* A late signal now writes to a closed descriptor and is ignored. */
		int w = sig_pipe_w;
		sig_pipe_w = -1;
		close(w);
	}
	if (s->wake.fd > 0 && !busy)
		close(s->wake.fd);
	if (s->epfd >= 0)
		close(s->epfd);
	if (!busy) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		free(s);
	}
	return rc;
}
