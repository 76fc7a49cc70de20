/* SPDX-License-Identifier: MIT */
/*
 * wanproxy.c - a TCP relay on loopback that makes a local server look
 * remote: each direction holds its bytes back by half the round trip and
 * limits them to a rate shared by all connections, as one WAN link would.
 * The kernel here has no netem qdisc, so the benchmarks use this instead.
 *
 * Design notes
 *
 * - One thread, one epoll set, edge-triggered sockets.  Handling an event
 *   only records that a socket became readable or writable.  All reading,
 *   writing, connecting and freeing happens afterwards, in one pass over
 *   the connections (the service pass), so no event of a batch can point
 *   at a connection freed earlier in the same batch.
 * - A direction of a connection is a pipe: a ring of bytes read from its
 *   source socket and not yet written to its destination, plus a FIFO of
 *   stamps (end position, release time) for the bytes not due yet.  The
 *   positions only grow and head <= due <= tail <= head + cap hold.
 *   Nothing is read while the ring or the stamp FIFO is full: that is the
 *   back-pressure, the sender's socket buffer fills and it must wait.
 * - A link is the serialisation of bytes at the rate, then propagation for
 *   half the round trip.  So a token bucket per direction (shared by every
 *   connection) bounds what may be read from the sources, and a byte read
 *   at time t is released to the destination at t + rtt/2.  The bytes in
 *   a ring are then those on the wire, about rate * rtt / 2.
 * - Connection setup costs what a handshake costs.  The client's connect
 *   to us completes at once on loopback, at t0; over the WAN its first
 *   byte could leave only after the SYN and SYN-ACK, at t0 + rtt.  So the
 *   client's bytes count as sent no earlier than t0 + rtt, and we connect
 *   to the upstream at t0 + 1.5 rtt, when its accept() would return.  A
 *   request sent at once is answered at the client about 2 rtt after its
 *   connect, as over a real link.
 * - A FIN travels like a byte: shutdown(SHUT_WR) on the destination once
 *   every byte before it has been written and its own half round trip has
 *   passed.  A reset, a failed read or write, or a refused upstream connect
 *   closes the failed side at once, and rtt/2 later writes what the other
 *   side may still take and resets that side too (SO_LINGER 0).
 * - The relay terminates TCP at both ends: the endpoints see loopback
 *   round trips, so the WAN's slow start and loss recovery are not modelled.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define NSEC_PER_SEC 1000000000ULL
#define NSEC_PER_MSEC 1000000ULL
/* Each ring holds at least this much, and twice the bandwidth-delay
 * product when that is more, so that a full link never waits on it. */
#define QUEUE_MIN (4ULL << 20)
/* One stamp per read; when they run out we stop reading for a while. */
#define STAMPS_MAX 4096
#define READ_MAX (512ULL << 10)
/* The bucket holds 2 ms of the rate, never less than this, and we sleep
 * until an eighth of it is back.  Tokens that come while it is full are
 * lost, so it must outlast our wake-up latency: 1.75 ms of slack here;
 * with a 1 ms bucket a busy machine lost 2-6% of 1 Gbit/s. */
#define BURST_MIN (32ULL << 10)
#define EVENTS_MAX 64
#define ACCEPT_RETRY_NS (100 * NSEC_PER_MSEC)
/* Beyond these the nanosecond arithmetic below could overflow. */
#define RATE_MBIT_MAX 40000.0
#define RTT_MS_MAX 10000.0

/* One direction of the emulated link, shared by all connections. */
struct wan_link {
	uint64_t rate;		/* bytes per second; 0 means unlimited */
	uint64_t burst;		/* bucket size in bytes */
	uint64_t quantum;	/* tokens to sleep for when the bucket is dry */
	uint64_t credit;	/* tokens times NSEC_PER_SEC, exact integer */
	uint64_t refilled_ns;	/* when credit was last brought up to date */
	bool starved;		/* a source waited for tokens in this pass */
	uint64_t bytes;		/* bytes written out, for the stats */
};

struct wan_stamp {
	uint64_t end;		/* ring position after the stamped bytes */
	uint64_t due_ns;	/* when they may be written */
};

struct wan_conn;

/* One socket of a connection; the epoll events point at it. */
struct wan_side {
	struct wan_conn *conn;	/* back pointer, borrowed */
	int fd;			/* owned; -1 before connect and once closed */
	bool readable;		/* an edge was seen and no EAGAIN since */
	bool writable;
	bool read_eof;		/* the peer's FIN was read */
	bool error_seen;	/* EPOLLERR came, not yet looked at */
};

struct wan_pipe {
	struct wan_side *src, *dst;	/* borrowed from the connection */
	struct wan_link *link;		/* borrowed from the proxy */
	char *buf;			/* owned, cap bytes */
	uint64_t cap;			/* a power of two */
	uint64_t head;			/* written to dst up to here */
	uint64_t due;			/* released up to here */
	uint64_t tail;			/* read from src up to here */
	struct wan_stamp *stamps;	/* owned ring of STAMPS_MAX */
	unsigned int stamp_first, stamp_count;
	uint64_t floor_ns;	/* no byte counts as sent before this */
	uint64_t eof_due_ns;	/* when the FIN reaches dst */
	bool shut;		/* dst is shut down for writing */
};

enum wan_state { CONN_WAITING, CONN_CONNECTING, CONN_OPEN };

struct wan_list {
	struct wan_list *prev, *next;
};

struct wan_conn {
	struct wan_list node;	/* first: the list links conns through it */
	struct wan_side client, upstream;
	struct wan_pipe up;	/* client to upstream */
	struct wan_pipe down;	/* upstream to client */
	enum wan_state state;
	uint64_t connect_at_ns;	/* CONN_WAITING: when to connect upstream */
	uint64_t abort_at_ns;	/* 0, or when to reset the surviving side */
	struct wan_side *failed; /* the side that failed, if abort_at_ns */
};

struct wan_stats {
	uint64_t accepted;	/* connections from clients */
	uint64_t closed;	/* ended by FINs both ways */
	uint64_t reset;		/* ended by a reset or an error */
	uint64_t connect_failed; /* upstream connects that failed */
};

struct wan_opts {
	const char *listen, *upstream;
	const char *port_file, *stats_file;
	double rtt_ms, rate_mbit;
};

struct wan_proxy {
	int epfd, listen_fd, timer_fd, signal_fd;
	struct sockaddr_storage upstream;
	socklen_t upstream_len;
	const char *upstream_name;	/* borrowed from the options */
	uint64_t delay_ns;		/* half the round trip */
	uint64_t queue_cap;
	struct wan_link up, down;
	struct wan_list conns;		/* sentinel of a circular list */
	uint64_t timer_armed_ns;	/* 0 while disarmed */
	bool accept_ready;
	uint64_t accept_retry_ns;	/* after EMFILE: not before this */
	bool stop;
	struct wan_stats stats;
	/* Their addresses tell these fds' epoll events from the sides'. */
	char tag_listen, tag_timer, tag_signal;
};

/* The one logging call: LOG_ERR or LOG_INFO, to stderr. */
__attribute__((format(printf, 2, 3)))
static void wan_log(int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	/* Formatted first, so that a line reaches stderr in one write. */
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "wanproxy: %s: %s\n",
		level <= LOG_ERR ? "error" : "info", line);
}

static const char *wan_strerror(int err)
{
	const char *s = strerrordesc_np(err);

	return s ? s : "unknown error";
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* The earlier of two deadlines, where 0 means none. */
static uint64_t deadline_min(uint64_t a, uint64_t b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return min_u64(a, b);
}

/* ---- token bucket ---- */

static void link_init(struct wan_link *l, uint64_t rate, uint64_t now)
{
	memset(l, 0, sizeof(*l));
	l->rate = rate;
	l->burst = max_u64(BURST_MIN, rate / 500);
	l->quantum = l->burst / 8;
	l->credit = l->burst * NSEC_PER_SEC;
	l->refilled_ns = now;
}

static void link_refill(struct wan_link *l, uint64_t now)
{
	uint64_t full = l->burst * NSEC_PER_SEC;
	uint64_t dt;

	if (l->rate == 0 || now <= l->refilled_ns)
		return;
	/* The bucket is full after burst / rate (at most a second), so a
	 * longer gap adds nothing and is cut to keep dt * rate in range. */
	dt = min_u64(now - l->refilled_ns, NSEC_PER_SEC);
	l->refilled_ns = now;
	l->credit = min_u64(l->credit + dt * l->rate, full);
}

/* How many bytes may enter the link now. */
static uint64_t link_allowance(const struct wan_link *l)
{
	return l->rate ? l->credit / NSEC_PER_SEC : UINT64_MAX;
}

static void link_spend(struct wan_link *l, uint64_t n)
{
	if (l->rate)
		l->credit -= n * NSEC_PER_SEC;
}

/* When the bucket, refilled at its last refill, next holds a quantum. */
static uint64_t link_ready_ns(const struct wan_link *l)
{
	uint64_t want = l->quantum * NSEC_PER_SEC;

	if (l->credit >= want)
		return l->refilled_ns + 1;
	return l->refilled_ns + (want - l->credit + l->rate - 1) / l->rate;
}

/* ---- pipes ---- */

/* The ring bytes [from, from + len) as one or two iovecs; returns how
 * many.  len must not exceed cap. */
static int ring_iov(char *buf, uint64_t cap, uint64_t from, uint64_t len,
		    struct iovec iov[2])
{
	uint64_t off = from & (cap - 1);
	uint64_t first = cap - off;

	iov[0].iov_base = buf + off;
	if (len <= first) {
		iov[0].iov_len = len;
		return 1;
	}
	iov[0].iov_len = first;
	iov[1].iov_base = buf;
	iov[1].iov_len = len - first;
	return 2;
}

static int pipe_init(struct wan_pipe *p, struct wan_side *src,
		     struct wan_side *dst, struct wan_link *link, uint64_t cap)
{
	memset(p, 0, sizeof(*p));
	p->src = src;
	p->dst = dst;
	p->link = link;
	p->cap = cap;
	/* malloc maps a ring this big lazily: an idle connection costs
	 * the pages it has touched, not cap. */
	p->buf = malloc(cap);
	p->stamps = malloc(STAMPS_MAX * sizeof(*p->stamps));
	if (!p->buf || !p->stamps)
		return -ENOMEM;
	return 0;
}

static void pipe_fini(struct wan_pipe *p)
{
	free(p->buf);
	free(p->stamps);
	p->buf = NULL;
	p->stamps = NULL;
}

/* Stamps the bytes up to tail with due; reads in one pass share a time,
 * so their stamps merge. */
static void pipe_stamp(struct wan_pipe *p, uint64_t due)
{
	struct wan_stamp *last;

	if (p->stamp_count > 0) {
		last = &p->stamps[(p->stamp_first + p->stamp_count - 1) %
				  STAMPS_MAX];
		if (last->due_ns == due) {
			last->end = p->tail;
			return;
		}
	}
	last = &p->stamps[(p->stamp_first + p->stamp_count) % STAMPS_MAX];
	last->end = p->tail;
	last->due_ns = due;
	p->stamp_count++;
}

/* Moves the stamps that are due by now into the released range. */
static void pipe_release(struct wan_pipe *p, uint64_t now)
{
	const struct wan_stamp *s;

	while (p->stamp_count > 0) {
		s = &p->stamps[p->stamp_first];
		if (s->due_ns > now)
			break;
		p->due = s->end;
		p->stamp_first = (p->stamp_first + 1) % STAMPS_MAX;
		p->stamp_count--;
	}
}

/* What may be read now; marks the link starved when only the tokens
 * are missing, so that the timer wakes us when there are some. */
static uint64_t pipe_room(struct wan_pipe *p)
{
	uint64_t room = p->cap - (p->tail - p->head);
	uint64_t tokens = link_allowance(p->link);

	if (room == 0 || p->stamp_count == STAMPS_MAX)
		return 0;
	if (tokens == 0)
		p->link->starved = true;
	return min_u64(min_u64(room, tokens), READ_MAX);
}

/* After a read or write returned -1: 0 to go on, with ready cleared if
 * the socket has nothing more for now (edge-triggered, so the next epoll
 * event sets it again), or -errno when the connection failed. */
static int io_failed(bool *ready)
{
	if (errno == EINTR)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		*ready = false;
		return 0;
	}
	return -errno;
}

/* Reads from src what the ring and the link allow, until EAGAIN.
 * Returns 0 or -errno of the failed read. */
static int pipe_fill(struct wan_pipe *p, uint64_t now, uint64_t delay)
{
	uint64_t sent = max_u64(now, p->floor_ns);
	struct iovec iov[2];
	uint64_t n;
	ssize_t r;

	while (p->src->readable && !p->src->read_eof) {
		n = pipe_room(p);
		if (n == 0)
			return 0;
		r = readv(p->src->fd, iov, ring_iov(p->buf, p->cap, p->tail,
						       n, iov));
		if (r < 0) {
			r = io_failed(&p->src->readable);
			if (r < 0)
				return (int)r;
			continue;
		}
		if (r == 0) {
			p->src->read_eof = true;
			p->eof_due_ns = sent + delay;
			return 0;
		}
		link_spend(p->link, (uint64_t)r);
		p->tail += (uint64_t)r;
		pipe_stamp(p, sent + delay);
	}
	return 0;
}

/* Writes the released bytes to dst until EAGAIN, then passes the FIN on
 * when it is due.  Returns 0 or -errno of the failed call. */
static int pipe_flush(struct wan_pipe *p, uint64_t now)
{
	struct msghdr msg = { 0 };
	struct iovec iov[2];
	ssize_t r;

	pipe_release(p, now);
	while (p->dst->writable && p->head < p->due) {
		msg.msg_iov = iov;
		msg.msg_iovlen = ring_iov(p->buf, p->cap, p->head,
					  p->due - p->head, iov);
		r = sendmsg(p->dst->fd, &msg, MSG_NOSIGNAL);
		if (r < 0) {
			r = io_failed(&p->dst->writable);
			if (r < 0)
				return (int)r;
			continue;
		}
		p->head += (uint64_t)r;
		p->link->bytes += (uint64_t)r;
	}

	if (p->src->read_eof && !p->shut && p->head == p->tail &&
	    p->eof_due_ns <= now) {
		if (shutdown(p->dst->fd, SHUT_WR) < 0)
			return -errno;
		p->shut = true;
	}
	return 0;
}

/* Moves the pipe as far as it goes now.  It loops because a write can
 * make room for a read that waited on a full ring, whose socket will
 * signal no new edge, and with no delay a read gives bytes to write at
 * once.  On failure returns -errno and the side that failed. */
static int pipe_pump(struct wan_pipe *p, uint64_t now, uint64_t delay,
		     struct wan_side **ret_failed)
{
	uint64_t head, tail;
	int r;

	do {
		head = p->head;
		tail = p->tail;
		r = pipe_flush(p, now);
		if (r < 0) {
			*ret_failed = p->dst;
			return r;
		}
		r = pipe_fill(p, now, delay);
		if (r < 0) {
			*ret_failed = p->src;
			return r;
		}
	} while (p->head != head || p->tail != tail);
	return 0;
}

/* The next time this pipe needs the service pass, 0 for none.  Due
 * bytes waiting for a writable socket need no timer: EPOLLOUT comes. */
static uint64_t pipe_deadline(const struct wan_pipe *p)
{
	if (p->stamp_count > 0)
		return p->stamps[p->stamp_first].due_ns;
	if (p->src->read_eof && !p->shut && p->head == p->tail)
		return p->eof_due_ns;
	return 0;
}

/* ---- connections ---- */

static void side_close(struct wan_side *s, bool reset)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (s->fd < 0)
		return;
	/* A zero linger makes close() send RST instead of FIN. */
	if (reset)
		setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(s->fd);
	s->fd = -1;
	s->readable = false;
	s->writable = false;
}

static void conn_free(struct wan_conn *c)
{
	if (!c)
		return;
	side_close(&c->client, false);
	side_close(&c->upstream, false);
	pipe_fini(&c->up);
	pipe_fini(&c->down);
	free(c);
}

static void conn_unlink_free(struct wan_conn *c)
{
	c->node.prev->next = c->node.next;
	c->node.next->prev = c->node.prev;
	conn_free(c);
}

static int side_watch(struct wan_proxy *px, struct wan_side *s)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.ptr = s,
	};
	int one = 1;

	/* We write whole released ranges at once; Nagle would only add
	 * a loopback round trip to the delay we mean to control. */
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (epoll_ctl(px->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
		return -errno;
	return 0;
}

/* Takes fd; on failure it is closed with the half-built connection. */
static int conn_new(struct wan_proxy *px, int fd, uint64_t now)
{
	struct wan_conn *c = calloc(1, sizeof(*c));
	int r;

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->client = (struct wan_side){ .conn = c, .fd = fd };
	c->upstream = (struct wan_side){ .conn = c, .fd = -1 };
	r = pipe_init(&c->up, &c->client, &c->upstream, &px->up,
		      px->queue_cap);
	if (r < 0)
		goto err_free;
	r = pipe_init(&c->down, &c->upstream, &c->client, &px->down,
		      px->queue_cap);
	if (r < 0)
		goto err_free;
	r = side_watch(px, &c->client);
	if (r < 0)
		goto err_free;

	c->up.floor_ns = now + 2 * px->delay_ns;
	c->connect_at_ns = now + 3 * px->delay_ns;
	c->state = CONN_WAITING;
	c->node.prev = px->conns.prev;
	c->node.next = &px->conns;
	px->conns.prev->next = &c->node;
	px->conns.prev = &c->node;
	px->stats.accepted++;
	return 0;

err_free:
	conn_free(c);
	return r;
}

/* Closes the failed side now and schedules the reset of the other one
 * for when the failure would have crossed the link. */
static void conn_fail(struct wan_proxy *px, struct wan_conn *c,
		      struct wan_side *failed, uint64_t now)
{
	if (c->abort_at_ns)
		return;
	c->abort_at_ns = now + px->delay_ns + 1;
	c->failed = failed;
	side_close(failed, true);
}

/* Ends a failed connection: what the failed side sent before failing has
 * arrived by now, so write what the survivor takes, then reset it. */
static void conn_abort(struct wan_proxy *px, struct wan_conn *c)
{
	struct wan_pipe *p = c->failed == &c->client ? &c->up : &c->down;

	/* Best effort: whatever fails here ends in the reset anyway. */
	if (p->dst->fd >= 0 && c->state == CONN_OPEN)
		pipe_flush(p, c->abort_at_ns);
	side_close(p->dst, true);
	px->stats.reset++;
	conn_unlink_free(c);
}

static int conn_connect(struct wan_proxy *px, struct wan_conn *c)
{
	struct wan_side *s = &c->upstream;
	int r;

	s->fd = socket(px->upstream.ss_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -errno;
	r = side_watch(px, s);
	if (r < 0)
		return r;
	if (connect(s->fd, (struct sockaddr *)&px->upstream,
		    px->upstream_len) < 0 && errno != EINPROGRESS)
		return -errno;
	/* Done or not, EPOLLOUT tells: it is reported for a socket
	 * that is already writable when it is added. */
	c->state = CONN_CONNECTING;
	return 0;
}

/* CONN_CONNECTING and the socket became writable: did it connect? */
static int conn_connected(struct wan_conn *c)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(c->upstream.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	if (err)
		return -err;
	c->state = CONN_OPEN;
	return 0;
}

/* Brings the upstream socket to CONN_OPEN when its time has come. */
static int conn_setup(struct wan_proxy *px, struct wan_conn *c, uint64_t now)
{
	int r = 0;

	if (c->state == CONN_WAITING && now >= c->connect_at_ns)
		r = conn_connect(px, c);
	if (r == 0 && c->state == CONN_CONNECTING && c->upstream.writable)
		r = conn_connected(c);
	if (r < 0) {
		wan_log(LOG_ERR, "cannot connect to upstream %s: %s",
			px->upstream_name, wan_strerror(-r));
		px->stats.connect_failed++;
	}
	return r;
}

/* A reset that comes after the peer's FIN: we read that socket no more,
 * so only EPOLLERR tells.  Before the FIN, the next read reports it, after
 * the bytes that came first, and this leaves it to the read. */
static bool side_reset_after_eof(struct wan_side *s)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (!s->error_seen || !s->read_eof || s->fd < 0)
		return false;
	s->error_seen = false;
	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return true;
	return err != 0;
}

static void conn_service(struct wan_proxy *px, struct wan_conn *c,
			 uint64_t now)
{
	struct wan_side *failed = &c->client;
	int r = 0;

	if (c->abort_at_ns) {
		if (now >= c->abort_at_ns)
			conn_abort(px, c);
		return;
	}
	if (side_reset_after_eof(&c->client))
		goto err_fail;
	failed = &c->upstream;
	if (side_reset_after_eof(&c->upstream) || conn_setup(px, c, now) < 0)
		goto err_fail;

	if (c->state != CONN_OPEN) {
		/* The client's bytes wait in the ring for the upstream. */
		failed = &c->client;
		if (pipe_fill(&c->up, now, px->delay_ns) < 0)
			goto err_fail;
		return;
	}
	r = pipe_pump(&c->up, now, px->delay_ns, &failed);
	if (r == 0)
		r = pipe_pump(&c->down, now, px->delay_ns, &failed);
	if (r < 0)
		goto err_fail;

	if (c->up.shut && c->down.shut) {
		px->stats.closed++;
		conn_unlink_free(c);
	}
	return;

err_fail:
	conn_fail(px, c, failed, now);
}

static uint64_t conn_deadline(const struct wan_conn *c)
{
	if (c->abort_at_ns)
		return c->abort_at_ns;
	if (c->state == CONN_WAITING)
		return c->connect_at_ns;
	/* Until the upstream is open nothing can be written to it: the
	 * connect's EPOLLOUT brings us back, a timer would only spin. */
	if (c->state != CONN_OPEN)
		return 0;
	return deadline_min(pipe_deadline(&c->up), pipe_deadline(&c->down));
}

/* ---- the proxy ---- */

/* Takes every pending connection; failures are logged and skipped: one
 * client we cannot serve must not stop the others. */
static void proxy_accept(struct wan_proxy *px, uint64_t now)
{
	int fd, r;

	if (px->accept_retry_ns && now >= px->accept_retry_ns)
		px->accept_retry_ns = 0;
	while (px->accept_ready && px->accept_retry_ns == 0) {
		fd = accept4(px->listen_fd, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			px->accept_ready = false;
			break;
		}
		if (fd < 0) {
			r = -errno;
			/* Out of fds or memory: pending clients wait in
			 * the backlog, we try again a little later. */
			wan_log(LOG_ERR, "cannot accept a connection: %s",
				wan_strerror(-r));
			px->accept_retry_ns = now + ACCEPT_RETRY_NS;
			break;
		}
		r = conn_new(px, fd, now);
		if (r < 0)
			wan_log(LOG_ERR, "cannot set up a connection: %s",
				wan_strerror(-r));
	}
}

/* One service pass over every connection, then a rotation of the list
 * so that a different connection reads first from a starved link. */
static void proxy_service(struct wan_proxy *px, uint64_t now)
{
	struct wan_list *n, *next, *s = &px->conns;

	link_refill(&px->up, now);
	link_refill(&px->down, now);
	px->up.starved = false;
	px->down.starved = false;
	proxy_accept(px, now);
	for (n = s->next; n != s; n = next) {
		next = n->next;
		conn_service(px, (struct wan_conn *)n, now);
	}

	if (s->next != s && s->next->next != s) {
		n = s->next;
		s->prev->next = s->next;
		s->next->prev = s->prev;
		s->prev = n;
		s->next = n->next;
		n->next->prev = s;
		n->next = s;
	}
}

static uint64_t proxy_deadline(const struct wan_proxy *px)
{
	const struct wan_list *n;
	uint64_t d = 0;

	for (n = px->conns.next; n != &px->conns; n = n->next)
		d = deadline_min(d, conn_deadline((const struct wan_conn *)n));
	if (px->up.starved)
		d = deadline_min(d, link_ready_ns(&px->up));
	if (px->down.starved)
		d = deadline_min(d, link_ready_ns(&px->down));
	if (px->accept_ready && px->accept_retry_ns)
		d = deadline_min(d, px->accept_retry_ns);
	return d;
}

/* Arms the one-shot timer for deadline (0: disarm), unless it already
 * is; an absolute time in the past fires at once. */
static int proxy_arm(struct wan_proxy *px, uint64_t deadline)
{
	struct itimerspec its = { 0 };

	if (deadline == px->timer_armed_ns)
		return 0;
	its.it_value.tv_sec = (time_t)(deadline / NSEC_PER_SEC);
	its.it_value.tv_nsec = (long)(deadline % NSEC_PER_SEC);
	if (timerfd_settime(px->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	px->timer_armed_ns = deadline;
	return 0;
}

static void proxy_event(struct wan_proxy *px, const struct epoll_event *ev)
{
	struct signalfd_siginfo si;
	struct wan_side *s;
	uint64_t ticks;

	if (ev->data.ptr == &px->tag_listen) {
		px->accept_ready = true;
	} else if (ev->data.ptr == &px->tag_timer) {
		/* Level-triggered: read it empty or it fires forever. */
		if (read(px->timer_fd, &ticks, sizeof(ticks)) > 0)
			px->timer_armed_ns = 0;
	} else if (ev->data.ptr == &px->tag_signal) {
		if (read(px->signal_fd, &si, sizeof(si)) > 0)
			px->stop = true;
	} else {
		/* Errors and hang-ups show in the next read or write. */
		s = ev->data.ptr;
		if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			s->readable = true;
		if (ev->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			s->writable = true;
		if (ev->events & EPOLLERR)
			s->error_seen = true;
	}
}

static int proxy_run(struct wan_proxy *px)
{
	struct epoll_event evs[EVENTS_MAX];
	int i, n, r;

	while (!px->stop) {
		r = proxy_arm(px, proxy_deadline(px));
		if (r < 0)
			return r;
		n = epoll_wait(px->epfd, evs, EVENTS_MAX, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (i = 0; i < n; i++)
			proxy_event(px, &evs[i]);
		if (!px->stop)
			proxy_service(px, now_ns());
	}
	return 0;
}

/* ---- setup ---- */

/* Splits "host:port" or "[v6]:port" and resolves it; passive for the
 * address we listen on.  Logs why it failed: getaddrinfo's causes have
 * no errno. */
static int resolve(const char *spec, bool passive,
		   struct sockaddr_storage *ret_addr, socklen_t *ret_len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	const char *colon = strrchr(spec, ':');
	const char *h = spec;
	char host[256];
	size_t hl;
	int r;

	/* glibc takes "99999" as a port and wraps it: check ourselves. */
	if (!colon || colon == spec || strlen(colon + 1) > 5 ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    colon[1] == '\0' || atoi(colon + 1) > 65535)
		goto err_spec;
	hl = (size_t)(colon - spec);
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		goto err_spec;
	memcpy(host, h, hl);
	host[hl] = '\0';

	hints.ai_flags = passive ? AI_PASSIVE : 0;
	r = getaddrinfo(host, colon + 1, &hints, &ai);
	if (r == EAI_SYSTEM) {
		r = -errno;
		wan_log(LOG_ERR, "cannot resolve '%s': %s", spec,
			wan_strerror(-r));
		return r;
	}
	if (r != 0) {
		wan_log(LOG_ERR, "cannot resolve '%s': %s", spec,
			gai_strerror(r));
		return -EHOSTUNREACH;
	}
	memcpy(ret_addr, ai->ai_addr, ai->ai_addrlen);
	*ret_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;

err_spec:
	wan_log(LOG_ERR, "'%s' is not HOST:PORT", spec);
	return -EINVAL;
}

static int epoll_add(int epfd, int fd, uint32_t events, void *tag)
{
	struct epoll_event ev = { .events = events, .data.ptr = tag };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	return 0;
}

/* Listens on addr (changed); returns the port through ret_port. */
static int proxy_listen(struct wan_proxy *px, struct sockaddr_storage *addr,
			socklen_t len, int *ret_port)
{
	int one = 1;

	px->listen_fd = socket(addr->ss_family,
			       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (px->listen_fd < 0)
		return -errno;
	setsockopt(px->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(px->listen_fd, (struct sockaddr *)addr, len) < 0 ||
	    listen(px->listen_fd, SOMAXCONN) < 0)
		return -errno;
	len = sizeof(*addr);
	if (getsockname(px->listen_fd, (struct sockaddr *)addr, &len) < 0)
		return -errno;
	/* sin_port and sin6_port sit at the same offset. */
	*ret_port = ntohs(((struct sockaddr_in *)addr)->sin_port);
	return epoll_add(px->epfd, px->listen_fd, EPOLLIN | EPOLLET,
			 &px->tag_listen);
}

/* The timer and the signals, as fds of the epoll set. */
static int proxy_fds(struct wan_proxy *px)
{
	sigset_t mask;
	int r;

	px->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (px->epfd < 0)
		return -errno;
	px->timer_fd = timerfd_create(CLOCK_MONOTONIC,
				      TFD_NONBLOCK | TFD_CLOEXEC);
	if (px->timer_fd < 0)
		return -errno;
	r = epoll_add(px->epfd, px->timer_fd, EPOLLIN, &px->tag_timer);
	if (r < 0)
		return r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	px->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (px->signal_fd < 0)
		return -errno;
	return epoll_add(px->epfd, px->signal_fd, EPOLLIN, &px->tag_signal);
}

/* Twice the bandwidth-delay product, at least QUEUE_MIN, a power of 2. */
static uint64_t queue_cap(const struct wan_opts *o)
{
	double bdp = o->rate_mbit * 1e6 / 8 * o->rtt_ms / 1e3;
	uint64_t cap = QUEUE_MIN;

	while ((double)cap < 2 * bdp)
		cap <<= 1;
	return cap;
}

static void proxy_init(struct wan_proxy *px, const struct wan_opts *o)
{
	uint64_t now = now_ns();
	uint64_t rate = (uint64_t)(o->rate_mbit * 1e6 / 8 + 0.5);

	memset(px, 0, sizeof(*px));
	px->epfd = px->listen_fd = px->timer_fd = px->signal_fd = -1;
	px->upstream_name = o->upstream;
	px->delay_ns = (uint64_t)(o->rtt_ms * 1e6 / 2 + 0.5);
	px->queue_cap = queue_cap(o);
	link_init(&px->up, rate, now);
	link_init(&px->down, rate, now);
	px->conns.prev = px->conns.next = &px->conns;
	px->accept_ready = true;
}

static void proxy_fini(struct wan_proxy *px)
{
	struct wan_list *n, *next;

	for (n = px->conns.next; n != &px->conns; n = next) {
		next = n->next;
		conn_free((struct wan_conn *)n);
	}
	px->conns.prev = px->conns.next = &px->conns;
	if (px->signal_fd >= 0)
		close(px->signal_fd);
	if (px->timer_fd >= 0)
		close(px->timer_fd);
	if (px->listen_fd >= 0)
		close(px->listen_fd);
	if (px->epfd >= 0)
		close(px->epfd);
}

/* Writes the file in one rename, so a reader never sees half of it. */
static int write_file(const char *path, const char *text)
{
	char tmp[4096];
	FILE *f;
	int r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	if (fputs(text, f) == EOF)
		r = -errno;
	if (fclose(f) == EOF && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

static int write_stats(const struct wan_proxy *px, const char *path)
{
	char text[512];

	snprintf(text, sizeof(text),
		 "connections %" PRIu64 "\n"
		 "connections_closed %" PRIu64 "\n"
		 "connections_reset %" PRIu64 "\n"
		 "connect_failed %" PRIu64 "\n"
		 "bytes_up %" PRIu64 "\n"
		 "bytes_down %" PRIu64 "\n",
		 px->stats.accepted, px->stats.closed, px->stats.reset,
		 px->stats.connect_failed, px->up.bytes, px->down.bytes);
	return write_file(path, text);
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wanproxy --listen HOST:PORT --upstream HOST:PORT\n"
		"                --rtt-ms N --rate-mbit M\n"
		"                [--port-file FILE] [--stats-file FILE]\n"
		"Relays TCP connections to the upstream as over a link of\n"
		"round trip N ms and M Mbit/s each way (0: unlimited).\n"
		"PORT 0 picks a free port, written to the port file.\n");
}

/* A number in [0, max]; returns -EINVAL for anything else. */
static int parse_number(const char *s, double max, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !(v >= 0 && v <= max))
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct wan_opts *o)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "upstream", required_argument, NULL, 'u' },
		{ "rtt-ms", required_argument, NULL, 'r' },
		{ "rate-mbit", required_argument, NULL, 'b' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "stats-file", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool rtt = false, rate = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': o->listen = optarg; break;
		case 'u': o->upstream = optarg; break;
		case 'p': o->port_file = optarg; break;
		case 's': o->stats_file = optarg; break;
		case 'r':
			if (parse_number(optarg, RTT_MS_MAX, &o->rtt_ms) < 0)
				return -EINVAL;
			rtt = true;
			break;
		case 'b':
			if (parse_number(optarg, RATE_MBIT_MAX,
					 &o->rate_mbit) < 0)
				return -EINVAL;
			rate = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (optind != argc || !o->listen || !o->upstream || !rtt || !rate)
		return -EINVAL;
	return 0;
}

/* Everything but the loop: returns 0 or -errno, logged here. */
static int proxy_start(struct wan_proxy *px, const struct wan_opts *o)
{
	struct sockaddr_storage addr;
	socklen_t len;
	char text[32];
	int port = 0, r;

	r = resolve(o->upstream, false, &px->upstream, &px->upstream_len);
	if (r == 0)
		r = resolve(o->listen, true, &addr, &len);
	if (r < 0)
		return r;
	r = proxy_fds(px);
	if (r < 0) {
		wan_log(LOG_ERR, "cannot set up epoll: %s", wan_strerror(-r));
		return r;
	}
	r = proxy_listen(px, &addr, len, &port);
	if (r < 0) {
		wan_log(LOG_ERR, "cannot listen on %s: %s", o->listen,
			wan_strerror(-r));
		return r;
	}
	snprintf(text, sizeof(text), "%d\n", port);
	if (o->port_file && (r = write_file(o->port_file, text)) < 0) {
		wan_log(LOG_ERR, "cannot write %s: %s", o->port_file,
			wan_strerror(-r));
		return r;
	}

	/* The listen spec with the port we got, as the user wrote it. */
	wan_log(LOG_INFO, "listening on %.*s:%d, upstream %s, rtt %g ms, "
		"rate %g Mbit/s each way, queue %" PRIu64 " MiB per direction",
		(int)(strrchr(o->listen, ':') - o->listen), o->listen, port,
		o->upstream, o->rtt_ms, o->rate_mbit, px->queue_cap >> 20);
	return 0;
}

int main(int argc, char **argv)
{
	struct wan_opts o = { 0 };
	struct wan_proxy px;
	int r;

	if (parse_opts(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	proxy_init(&px, &o);
	r = proxy_start(&px, &o);
	if (r < 0)
		goto out;

	r = proxy_run(&px);
	if (r < 0)
		wan_log(LOG_ERR, "event loop failed: %s", wan_strerror(-r));
	if (o.stats_file) {
		int rs = write_stats(&px, o.stats_file);

		if (rs < 0)
			wan_log(LOG_ERR, "cannot write %s: %s", o.stats_file,
				wan_strerror(-rs));
		if (r == 0)
			r = rs;
	}

out:
	proxy_fini(&px);
	return r < 0 ? 1 : 0;
}
