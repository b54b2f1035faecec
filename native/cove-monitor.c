/*
 * cove-monitor: the per-container supervisor (the role conmon plays for Podman).
 *
 * The engine starts it by exec'ing it in place of a process that already is the parent
 * (or subreaper) of the container's init, pid N, and that holds the read ends of the
 * container's stdout/stderr pipes or a pty master. From then on the monitor:
 *   - copies container output into a Docker json-file log (with max-size/max-file rotation)
 *     and to every client of its attach socket, as Docker multiplexed-stream frames;
 *   - forwards stdin, close-stdin and terminal-resize frames from clients to the container;
 *   - reaps pid N (and any orphan re-parented to it), writes the exit file atomically,
 *     tells the clients the exit code and finally execs the --exit-command, if any;
 *   - with --health-interval-ms, runs the --health-command every interval (a timerfd in the
 *     poll loop; a tick is skipped while the previous check still runs, so never two at
 *     once) and ends a running check (its process group) when the container exits.
 *
 * Frames (both directions): [type, 0, 0, 0, length as uint32 big-endian] + payload.
 *   monitor -> client: 1 stdout, 2 stderr, 0xFF exit (payload: exit code in decimal)
 *   client -> monitor: 0 stdin data, 1 close stdin, 2 resize "ROWS COLS", 3 handoff
 *
 * Single-threaded, one poll loop, nothing allocated while idle. Build: tools/build-native.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define CLIENT_CAP (4u << 20) /* pending output per attach client before it is dropped */
#define STDIN_CAP (4u << 20)  /* pending stdin bytes before clients stop being read */
#define LOG_LINE_MAX 16384    /* a partial line is logged as its own entry at this size */
#define READ_CHUNK 32768

enum { FR_STDOUT = 1, FR_STDERR = 2, FR_EXIT = 0xFF };                   /* to clients */
enum { FR_STDIN = 0, FR_CLOSE_STDIN = 1, FR_RESIZE = 2, FR_HANDOFF = 3 }; /* from clients */

struct buf { /* pending bytes are data[off, len) */
	char *data;
	size_t off, len, cap;
};

struct client {
	int fd;
	bool handoff; /* this client runs the clean-up (while it stays connected) */
	struct buf out;
	unsigned char hdr[8]; /* header of the frame being received */
	size_t hdr_got;
	uint32_t left; /* payload bytes of that frame still to come */
	char ctl[32];  /* payload of a control frame (truncated) */
	size_t ctl_len;
};

struct stream { /* one container output: stdout, stderr or the pty master */
	int fd;     /* -1 after EOF */
	int num;    /* 1 stdout, 2 stderr */
	char *line; /* partial line not yet logged (allocated while non-empty) */
	size_t line_len;
};

static struct {
	pid_t pid;
	const char *exit_file, *attach_path, *log_path;
	int sync_fd, stdin_fd, pty_fd;
	long long max_size, max_file;
	char **exit_argv;
	int exit_argc;
	struct stream out[2];
	int nout;
	struct buf in; /* stdin bytes waiting for the container */
	bool close_stdin;
	int log_fd;
	long long log_size;
	int listen_fd, sig_fd;
	struct client *clients[MAX_CLIENTS];
	bool handoff, exited;
	int status;
	struct timespec finished;
	long long health_ms; /* --health-interval-ms; 0: no health checks */
	char **health_argv;
	int health_argc;
	int health_fd;    /* timerfd ticking every health_ms */
	pid_t health_pid; /* the check that runs, 0 when none */
} m = {.sync_fd = -1, .stdin_fd = -1, .pty_fd = -1, .max_file = 1, .log_fd = -1, .health_fd = -1};

/* ---- small helpers ------------------------------------------------------------------- */

static void usage_error(const char *msg) {
	if (msg)
		fprintf(stderr, "cove-monitor: %s\n", msg);
	fprintf(stderr, "usage: cove-monitor --pid N --exit-file PATH --attach-socket PATH "
			"--log-path PATH --sync-fd FD\n"
			"       [--stdout-fd FD --stderr-fd FD | --pty-fd FD] [--stdin-fd FD]\n"
			"       [--log-max-size BYTES] [--log-max-file N] [--exit-command ARG]...\n"
			"       [--health-interval-ms MS --health-command ARG...]\n");
	exit(2);
}

/* Startup failure: report on the sync fd (the engine is reading it) and exit 1. */
static void fail(const char *what) {
	char msg[512];
	int n = snprintf(msg, sizeof msg, "error: %s: %s\n", what, strerror(errno));
	if (m.sync_fd >= 0 && n > 0) {
		ssize_t ignored = write(m.sync_fd, msg, (size_t)n); /* if it fails, nobody to tell */
		(void)ignored;
	}
	exit(1);
}

static long long parse_num(const char *s, long long min, const char *opt) {
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min) {
		fprintf(stderr, "cove-monitor: bad value for --%s: '%s'\n", opt, s);
		usage_error(NULL);
	}
	return v;
}

static double now_mono(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* RFC 3339 in UTC with nanoseconds: 2026-11-29T03:42:06.123456789Z */
static void rfc3339(char out[64], const struct timespec *ts) {
	struct tm tm;
	gmtime_r(&ts->tv_sec, &tm);
	size_t k = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + k, 64 - k, ".%09ldZ", ts->tv_nsec);
}

static int write_all(int fd, const char *p, size_t n) {
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno != EINTR)
			return -1;
		if (w > 0)
			p += w, n -= (size_t)w;
	}
	return 0;
}

static void add_flag(int fd, int get, int set, int flag) {
	int f = fcntl(fd, get);
	if (f < 0 || fcntl(fd, set, f | flag) < 0)
		fail("fcntl");
}

/* Append to a buffer unless that would hold more than cap pending bytes. */
static int buf_append(struct buf *b, const void *p, size_t n, size_t cap) {
	if (b->off == b->len)
		b->off = b->len = 0;
	if (b->len - b->off + n > cap)
		return -1;
	if (b->len + n > b->cap && b->off > 0) { /* reuse the consumed front first */
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->len + n)
			nc *= 2;
		char *d = realloc(b->data, nc);
		if (!d)
			return -1;
		b->data = d, b->cap = nc;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static void buf_free(struct buf *b) {
	free(b->data);
	*b = (struct buf){0};
}

/* Write pending bytes without blocking: 0 when done or the fd is full, -1 on error. */
static int buf_flush(struct buf *b, int fd) {
	while (b->off < b->len) {
		ssize_t w = write(fd, b->data + b->off, b->len - b->off);
		if (w < 0 && errno == EAGAIN)
			return 0;
		if (w < 0 && errno != EINTR)
			return -1;
		if (w > 0)
			b->off += (size_t)w;
	}
	if (b->cap > 65536)
		buf_free(b); /* give a burst's memory back */
	b->off = b->len = 0;
	return 0;
}

/* ---- json-file log ------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (0 when invalid or cut short). */
static size_t utf8_len(const unsigned char *s, size_t n) {
	unsigned char c = s[0];
	size_t len;
	uint32_t cp, min;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2, cp = c & 0x1F, min = 0x80;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, cp = c & 0x0F, min = 0x800;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0; /* overlong, out of range or a surrogate */
	return len;
}

/* Length of s without a trailing incomplete UTF-8 sequence (to split lines between chars). */
static size_t utf8_cut(const unsigned char *s, size_t n) {
	for (size_t back = 1; back <= 3 && back <= n; back++) {
		unsigned char c = s[n - back];
		if ((c & 0xC0) == 0x80)
			continue; /* continuation byte: the lead byte is further back */
		size_t need = c >= 0xF8 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		return need > back ? n - back : n;
	}
	return n;
}

/* JSON string body for s into o (room for 6 * n + 1 bytes). Returns the bytes written. */
static size_t json_escape(char *o, const unsigned char *s, size_t n) {
	static const char special[] = "\"\\\n\r\t\b\f", letter[] = "\"\\nrtbf";
	char *start = o;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		const char *sp = c ? memchr(special, c, sizeof special - 1) : NULL;
		size_t len = c >= 0x80 ? utf8_len(s + i, n - i) : 1;
		if (sp) {
			*o++ = '\\', *o++ = letter[sp - special];
		} else if (c < 0x20) {
			o += sprintf(o, "\\u%04x", c);
		} else if (len == 0) { /* not UTF-8: one replacement character per byte */
			memcpy(o, "\\ufffd", 6);
			o += 6, len = 1;
		} else {
			memcpy(o, s + i, len); /* ASCII or a valid UTF-8 sequence */
			o += len;
		}
		i += len;
	}
	return (size_t)(o - start);
}

static void log_open(int extra_flags) {
	struct stat st;
	m.log_fd = open(m.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | extra_flags, 0640);
	m.log_size = m.log_fd >= 0 && fstat(m.log_fd, &st) == 0 ? st.st_size : 0;
}

/* Docker's rotation: PATH.(M-2) -> PATH.(M-1), ..., PATH -> PATH.1, new PATH; M == 1 truncates. */
static void log_rotate(void) {
	if (m.max_file <= 1) {
		if (ftruncate(m.log_fd, 0) == 0)
			m.log_size = 0;
		return;
	}
	size_t sz = strlen(m.log_path) + 24;
	char *from = malloc(sz), *to = malloc(sz);
	for (long long i = m.max_file - 1; from && to && i >= 1; i--) {
		snprintf(from, sz, i == 1 ? "%s" : "%s.%lld", m.log_path, i - 1);
		snprintf(to, sz, "%s.%lld", m.log_path, i);
		rename(from, to); /* a missing older file is fine */
	}
	free(from);
	free(to);
	close(m.log_fd);
	log_open(O_TRUNC);
}

static void log_entry(int stream, const char *p, size_t n) {
	struct timespec now;
	char ts[64];
	clock_gettime(CLOCK_REALTIME, &now);
	rfc3339(ts, &now);
	size_t cap = 6 * n + 128;
	char *e = malloc(cap);
	if (!e)
		return; /* out of memory: this entry is lost */
	size_t o = (size_t)sprintf(e, "{\"log\":\"");
	o += json_escape(e + o, (const unsigned char *)p, n);
	o += (size_t)snprintf(e + o, cap - o, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n",
			      stream == 2 ? "stderr" : "stdout", ts);
	if (m.log_fd < 0)
		log_open(0); /* reopen after a failed rotation */
	if (m.log_fd >= 0 && m.max_size > 0 && m.log_size > 0 && m.log_size + (long long)o > m.max_size)
		log_rotate();
	if (m.log_fd >= 0 && write_all(m.log_fd, e, o) == 0)
		m.log_size += (long long)o;
	free(e);
}

/* Log the buffered partial line; when split is set keep an incomplete UTF-8 tail. */
static void log_line_flush(struct stream *s, bool split) {
	size_t len = split ? utf8_cut((unsigned char *)s->line, s->line_len) : s->line_len;
	if (len == 0)
		len = s->line_len;
	log_entry(s->num, s->line, len);
	memmove(s->line, s->line + len, s->line_len - len);
	s->line_len -= len;
	if (s->line_len == 0) {
		free(s->line);
		s->line = NULL;
	}
}

/* Split output into log entries at each '\n' and at LOG_LINE_MAX bytes. */
static void log_data(struct stream *s, const char *p, size_t n) {
	while (n > 0) {
		if (!s->line && !(s->line = malloc(LOG_LINE_MAX)))
			return;
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) + 1 : n;
		if (k > LOG_LINE_MAX - s->line_len)
			k = LOG_LINE_MAX - s->line_len;
		memcpy(s->line + s->line_len, p, k);
		s->line_len += k, p += k, n -= k;
		if (s->line[s->line_len - 1] == '\n' || s->line_len == LOG_LINE_MAX)
			log_line_flush(s, s->line[s->line_len - 1] != '\n');
	}
}

/* ---- attach clients ------------------------------------------------------------------ */

static void client_drop(int i) {
	close(m.clients[i]->fd);
	buf_free(&m.clients[i]->out);
	free(m.clients[i]);
	m.clients[i] = NULL;
}

static void client_send(int i, int type, const void *p, size_t n) {
	struct client *c = m.clients[i];
	unsigned char h[8] = {(unsigned char)type, 0, 0, 0, (unsigned char)(n >> 24),
			      (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n};
	/* over the cap the client is too slow: drop it rather than hold up the container */
	if (buf_append(&c->out, h, 8, CLIENT_CAP) < 0 || buf_append(&c->out, p, n, CLIENT_CAP) < 0 ||
	    buf_flush(&c->out, c->fd) < 0)
		client_drop(i);
}

static void broadcast(int type, const void *p, size_t n) {
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (m.clients[i])
			client_send(i, type, p, n);
}

static int stdin_target(void) {
	return m.pty_fd >= 0 ? m.pty_fd : m.stdin_fd;
}

/* Push pending stdin to the container; close it once drained if a client asked to. */
static void stdin_pump(void) {
	int fd = stdin_target();
	bool gone = fd >= 0 && buf_flush(&m.in, fd) < 0; /* EPIPE, or EIO from a closed pty */
	if (gone)
		buf_free(&m.in);
	if (m.stdin_fd >= 0 && (gone || (m.close_stdin && m.in.off == m.in.len))) {
		close(m.stdin_fd);
		m.stdin_fd = -1;
	}
}

static void frame_done(struct client *c) {
	unsigned rows, cols;
	c->ctl[c->ctl_len] = '\0';
	c->hdr_got = 0;
	if (c->hdr[0] == FR_CLOSE_STDIN && m.pty_fd < 0) {
		m.close_stdin = true;
		stdin_pump();
	} else if (c->hdr[0] == FR_RESIZE && m.pty_fd >= 0 &&
		   sscanf(c->ctl, "%u %u", &rows, &cols) == 2) {
		struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
		ioctl(m.pty_fd, TIOCSWINSZ, &ws);
	} else if (c->hdr[0] == FR_HANDOFF) {
		c->handoff = true;
	} /* other types: ignored */
}

/* Parse frames from a client; stdin payload is streamed, control payloads are small. */
static void client_input(struct client *c, const char *p, size_t n) {
	while (n > 0) {
		if (c->hdr_got < 8) {
			size_t k = 8 - c->hdr_got < n ? 8 - c->hdr_got : n;
			memcpy(c->hdr + c->hdr_got, p, k);
			c->hdr_got += k, p += k, n -= k;
			if (c->hdr_got < 8)
				return;
			c->left = (uint32_t)c->hdr[4] << 24 | (uint32_t)c->hdr[5] << 16 |
				  (uint32_t)c->hdr[6] << 8 | c->hdr[7];
			c->ctl_len = 0;
			if (c->left == 0)
				frame_done(c);
			continue;
		}
		size_t k = c->left < n ? c->left : n;
		if (c->hdr[0] == FR_STDIN) {
			bool open = m.pty_fd >= 0 || (m.stdin_fd >= 0 && !m.close_stdin);
			if (open && buf_append(&m.in, p, k, SIZE_MAX) == 0)
				stdin_pump();
		} else {
			size_t room = sizeof c->ctl - 1 - c->ctl_len, take = k < room ? k : room;
			memcpy(c->ctl + c->ctl_len, p, take);
			c->ctl_len += take;
		}
		p += k, n -= k, c->left -= (uint32_t)k;
		if (c->left == 0)
			frame_done(c);
	}
}

static void client_read(int i) {
	char b[4096];
	ssize_t n = read(m.clients[i]->fd, b, sizeof b);
	if (n > 0)
		client_input(m.clients[i], b, (size_t)n);
	else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		client_drop(i); /* a client going away is normal */
}

static void client_accept(void) {
	int fd = accept4(m.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (!m.clients[i]) {
			if (!(m.clients[i] = calloc(1, sizeof(struct client))))
				break;
			m.clients[i]->fd = fd;
			return;
		}
	}
	close(fd); /* full */
}

/* ---- container output and exit ------------------------------------------------------- */

/* One read: >0 bytes, 0 at EOF (fd done), -1 when nothing is ready. */
static ssize_t stream_read(struct stream *s) {
	char b[READ_CHUNK];
	ssize_t n = read(s->fd, b, sizeof b);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	if (n <= 0) { /* EOF, or EIO from a pty master once no slave fd is open */
		if (s->fd != m.pty_fd)
			close(s->fd); /* the pty master stays open for stdin and resize */
		s->fd = -1;
		return 0;
	}
	log_data(s, b, (size_t)n);
	broadcast(s->num, b, (size_t)n);
	return n;
}

/* Reap every child (orphans re-parented to us too) and note the container's status. */
static void reap(void) {
	struct signalfd_siginfo si;
	while (read(m.sig_fd, &si, sizeof si) > 0)
		;
	int st;
	pid_t p;
	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		if (p == m.pid && !m.exited) {
			m.exited = true;
			m.status = st;
			clock_gettime(CLOCK_REALTIME, &m.finished);
		}
		if (p == m.health_pid)
			m.health_pid = 0;
	}
}

/* ---- health checks ------------------------------------------------------------------- */

/* A tick of the health timer: start the check unless the previous one still runs. */
static void health_tick(void) {
	uint64_t ticks;
	ssize_t got = read(m.health_fd, &ticks, sizeof ticks);
	(void)got; /* the count does not matter: at most one check per tick */
	if (m.health_pid > 0 || m.exited)
		return;
	pid_t p = fork();
	if (p == 0) { /* an ordinary process: default signals, nothing blocked, its own group */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		setpgid(0, 0);
		execv(m.health_argv[0], m.health_argv);
		_exit(127);
	}
	if (p > 0) {
		setpgid(p, p); /* as the child does: whichever runs first, the group exists */
		m.health_pid = p;
	}
}

/* Reap until the running check is gone or `seconds` passed; true when it is gone. */
static bool health_wait(double seconds) {
	double deadline = now_mono() + seconds;
	while (m.health_pid > 0) {
		double left = deadline - now_mono();
		if (left <= 0)
			return false;
		struct pollfd pf = {.fd = m.sig_fd, .events = POLLIN};
		if (poll(&pf, 1, (int)(left * 1000) + 1) < 0 && errno != EINTR)
			return false;
		reap();
	}
	return true;
}

/* The container is gone: no more ticks, and a check still running is ended: SIGTERM to its
 * process group (so that it cleans up after itself), SIGKILL after 2 s. It is reaped before
 * the exit is reported, so nothing of it outlives the container. */
static void health_stop(void) {
	if (m.health_fd >= 0) {
		close(m.health_fd);
		m.health_fd = -1;
	}
	if (m.health_pid <= 0)
		return;
	kill(-m.health_pid, SIGTERM);
	if (!health_wait(2.0)) {
		kill(-m.health_pid, SIGKILL);
		health_wait(1.0);
	}
}

/* Serve output, stdin and clients until the container has exited. */
static void loop(void) {
	enum { K_SIG, K_LISTEN, K_STREAM, K_STDIN, K_CLIENT, K_HEALTH };
	struct pollfd pf[5 + MAX_CLIENTS];
	int kind[5 + MAX_CLIENTS], idx[5 + MAX_CLIENTS];
	while (!m.exited) {
		int n = 0;
#define ADD(fd_, ev_, k_, i_) \
	(pf[n] = (struct pollfd){.fd = (fd_), .events = (ev_)}, kind[n] = (k_), idx[n++] = (i_))
		ADD(m.sig_fd, POLLIN, K_SIG, 0);
		ADD(m.listen_fd, POLLIN, K_LISTEN, 0);
		if (m.health_fd >= 0)
			ADD(m.health_fd, POLLIN, K_HEALTH, 0);
		for (int i = 0; i < m.nout; i++)
			if (m.out[i].fd >= 0)
				ADD(m.out[i].fd, POLLIN, K_STREAM, i);
		if (m.in.off < m.in.len && stdin_target() >= 0)
			ADD(stdin_target(), POLLOUT, K_STDIN, 0);
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = m.clients[i];
			if (c) /* a full stdin backlog stops reading clients: backpressure */
				ADD(c->fd, (m.in.len - m.in.off < STDIN_CAP ? POLLIN : 0) |
						   (c->out.off < c->out.len ? POLLOUT : 0),
				    K_CLIENT, i);
		}
#undef ADD
		if (poll(pf, (nfds_t)n, -1) < 0 && errno != EINTR)
			exit(1);
		for (int j = 0; j < n; j++) {
			short re = pf[j].revents;
			int i = idx[j];
			if (!re)
				continue;
			if (kind[j] == K_SIG)
				reap();
			else if (kind[j] == K_LISTEN)
				client_accept();
			else if (kind[j] == K_HEALTH)
				health_tick();
			else if (kind[j] == K_STREAM)
				stream_read(&m.out[i]);
			else if (kind[j] == K_STDIN)
				stdin_pump();
			else if (m.clients[i] && (re & POLLOUT) &&
				 buf_flush(&m.clients[i]->out, m.clients[i]->fd) < 0)
				client_drop(i);
			else if (m.clients[i] && (re & (POLLIN | POLLHUP | POLLERR)))
				client_read(i);
		}
	}
}

/* Read what is left of the output for up to one second (the pipes may be held open). */
static void drain(void) {
	double deadline = now_mono() + 1.0;
	for (;;) {
		struct pollfd pf[2];
		int n = 0, which[2];
		for (int i = 0; i < m.nout; i++)
			if (m.out[i].fd >= 0)
				pf[n] = (struct pollfd){.fd = m.out[i].fd, .events = POLLIN}, which[n++] = i;
		double left = deadline - now_mono();
		if (n == 0 || left <= 0)
			break;
		if (poll(pf, (nfds_t)n, (int)(left * 1000) + 1) > 0)
			for (int j = 0; j < n; j++)
				while (pf[j].revents && m.out[which[j]].fd >= 0 &&
				       stream_read(&m.out[which[j]]) > 0)
					;
	}
	for (int i = 0; i < m.nout; i++)
		if (m.out[i].line_len)
			log_line_flush(&m.out[i], false);
	if (m.log_fd >= 0)
		fsync(m.log_fd);
}

/* One line of JSON, written to PATH.tmp, fsync'ed and renamed over PATH. */
static int write_exit_file(int code, int sig) {
	char ts[64], line[160];
	rfc3339(ts, &m.finished);
	int n = snprintf(line, sizeof line, "{\"exit_code\":%d,\"signal\":%d,\"finished_at\":\"%s\"}\n",
			 code, sig, ts);
	size_t sz = strlen(m.exit_file) + 5;
	char *tmp = malloc(sz);
	if (!tmp)
		return -1;
	snprintf(tmp, sz, "%s.tmp", m.exit_file);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	bool ok = fd >= 0 && write_all(fd, line, (size_t)n) == 0 && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	ok = ok && rename(tmp, m.exit_file) == 0;
	if (!ok)
		unlink(tmp);
	free(tmp);
	return ok ? 0 : -1;
}

/* Tell clients the exit code, flush them (up to 1 s), and close them. */
static void close_clients(int code) {
	char num[16];
	broadcast(FR_EXIT, num, (size_t)snprintf(num, sizeof num, "%d", code));
	double deadline = now_mono() + 1.0;
	for (;;) {
		struct pollfd pf[MAX_CLIENTS];
		int n = 0, which[MAX_CLIENTS];
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (m.clients[i] && m.clients[i]->out.off < m.clients[i]->out.len)
				pf[n] = (struct pollfd){.fd = m.clients[i]->fd, .events = POLLOUT},
				which[n++] = i;
		double left = deadline - now_mono();
		if (n == 0 || left <= 0)
			break;
		if (poll(pf, (nfds_t)n, (int)(left * 1000) + 1) > 0)
			for (int j = 0; j < n; j++)
				if (pf[j].revents &&
				    buf_flush(&m.clients[which[j]]->out, m.clients[which[j]]->fd) < 0)
					client_drop(which[j]);
	}
	/* A hand-off holds only if its client is still there and got the exit frame: a client
	 * killed mid-way leaves the clean-up to the exit command. */
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = m.clients[i];
		char peek;
		if (!c || !c->handoff || c->out.off < c->out.len)
			continue;
		ssize_t got = recv(c->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT);
		if (got > 0 || (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
			m.handoff = true;
	}
	for (int i = 0; i < MAX_CLIENTS; i++) {
		char b[4096]; /* discard unread input: closing with it queued resets the peer */
		while (m.clients[i] && read(m.clients[i]->fd, b, sizeof b) > 0)
			;
		if (m.clients[i])
			client_drop(i);
	}
	close(m.listen_fd);
	unlink(m.attach_path);
}

static void finish(void) {
	int code = 0, sig = 0;
	if (WIFEXITED(m.status))
		code = WEXITSTATUS(m.status);
	else if (WIFSIGNALED(m.status))
		sig = WTERMSIG(m.status), code = 128 + sig;
	health_stop();
	drain();
	int rc = write_exit_file(code, sig) == 0 ? 0 : 1;
	close_clients(code);
	if (m.handoff || m.exit_argc == 0)
		exit(rc);
	/* the exit command starts as an ordinary process: default signals, nothing blocked */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
	execv(m.exit_argv[0], m.exit_argv);
	exit(1);
}

/* ---- startup ------------------------------------------------------------------------- */

static void parse_args(int argc, char **argv) {
	static const struct option opts[] = {
		{"pid", required_argument, NULL, 'p'},
		{"exit-file", required_argument, NULL, 'e'},
		{"attach-socket", required_argument, NULL, 'a'},
		{"log-path", required_argument, NULL, 'l'},
		{"sync-fd", required_argument, NULL, 's'},
		{"stdout-fd", required_argument, NULL, 'o'},
		{"stderr-fd", required_argument, NULL, 'r'},
		{"pty-fd", required_argument, NULL, 't'},
		{"stdin-fd", required_argument, NULL, 'i'},
		{"log-max-size", required_argument, NULL, 'S'},
		{"log-max-file", required_argument, NULL, 'F'},
		{"exit-command", required_argument, NULL, 'x'},
		{"health-interval-ms", required_argument, NULL, 'H'},
		{"health-command", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0},
	};
	int out_fd = -1, err_fd = -1, c;
	if (!(m.exit_argv = calloc((size_t)argc + 1, sizeof(char *))) || /* every ARG + NULL */
	    !(m.health_argv = calloc((size_t)argc + 1, sizeof(char *))))
		exit(1);
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'p': m.pid = (pid_t)parse_num(optarg, 1, "pid"); break;
		case 'e': m.exit_file = optarg; break;
		case 'a': m.attach_path = optarg; break;
		case 'l': m.log_path = optarg; break;
		case 's': m.sync_fd = (int)parse_num(optarg, 0, "sync-fd"); break;
		case 'o': out_fd = (int)parse_num(optarg, 0, "stdout-fd"); break;
		case 'r': err_fd = (int)parse_num(optarg, 0, "stderr-fd"); break;
		case 't': m.pty_fd = (int)parse_num(optarg, 0, "pty-fd"); break;
		case 'i': m.stdin_fd = (int)parse_num(optarg, 0, "stdin-fd"); break;
		case 'S': m.max_size = parse_num(optarg, 0, "log-max-size"); break;
		case 'F': m.max_file = parse_num(optarg, 1, "log-max-file"); break;
		case 'x': m.exit_argv[m.exit_argc++] = optarg; break;
		case 'H': m.health_ms = parse_num(optarg, 1, "health-interval-ms"); break;
		case 'c': m.health_argv[m.health_argc++] = optarg; break;
		default: usage_error(NULL); /* getopt said what was wrong */
		}
	}
	if (optind < argc)
		usage_error("unexpected argument");
	if (!m.pid || !m.exit_file || !m.attach_path || !m.log_path || m.sync_fd < 0)
		usage_error("--pid, --exit-file, --attach-socket, --log-path and --sync-fd are required");
	if (m.pty_fd >= 0 && (out_fd >= 0 || err_fd >= 0 || m.stdin_fd >= 0))
		usage_error("--pty-fd excludes --stdout-fd, --stderr-fd and --stdin-fd");
	if ((m.health_ms > 0) != (m.health_argc > 0))
		usage_error("--health-interval-ms and --health-command go together");
	if (strlen(m.attach_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		usage_error("--attach-socket path too long");
	if (m.pty_fd >= 0)
		m.out[m.nout++] = (struct stream){.fd = m.pty_fd, .num = 1};
	if (out_fd >= 0)
		m.out[m.nout++] = (struct stream){.fd = out_fd, .num = 1};
	if (err_fd >= 0)
		m.out[m.nout++] = (struct stream){.fd = err_fd, .num = 2};
}

/* Keep an inherited fd: above 0..2 (about to become /dev/null), close-on-exec. */
static int keep_fd(int fd) {
	if (fd < 0)
		return fd;
	if (fcntl(fd, F_GETFD) < 0)
		fail("inherited fd is not open");
	if (fd > 2) {
		add_flag(fd, F_GETFD, F_SETFD, FD_CLOEXEC);
		return fd;
	}
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* the low fd itself becomes /dev/null */
	if (nfd < 0)
		fail("dup");
	return nfd;
}

static void setup(void) {
	m.sync_fd = keep_fd(m.sync_fd);
	m.stdin_fd = keep_fd(m.stdin_fd);
	bool pty = m.pty_fd >= 0;
	m.pty_fd = keep_fd(m.pty_fd);
	for (int i = 0; i < m.nout; i++)
		m.out[i].fd = pty && i == 0 ? m.pty_fd : keep_fd(m.out[i].fd);
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC); /* no stray inherited fd reaches the exit command */

	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	if (setsid() < 0 && errno != EPERM)
		fail("setsid");
	if (chdir("/") < 0)
		fail("chdir /");
	int null = open("/dev/null", O_RDWR);
	if (null < 0)
		fail("open /dev/null");
	for (int fd = 0; fd <= 2; fd++)
		if (null != fd && dup2(null, fd) < 0)
			fail("dup2 /dev/null");
	if (null > 2)
		close(null);

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_DFL); /* SIGTERM kills the monitor; the engine copes */
	signal(SIGCHLD, SIG_DFL); /* an inherited SIG_IGN would auto-reap the container */
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_SETMASK, &chld, NULL) < 0)
		fail("sigprocmask");
	if ((m.sig_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		fail("signalfd");
	siginfo_t info;
	if (waitid(P_PID, (id_t)m.pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
		fail("container pid is not a child of the monitor");

	log_open(0);
	if (m.log_fd < 0)
		fail("open log file");

	if (m.health_ms > 0) { /* the first check comes one interval after the start, as Docker's */
		struct itimerspec every = {
			.it_interval = {.tv_sec = m.health_ms / 1000, .tv_nsec = m.health_ms % 1000 * 1000000},
		};
		every.it_value = every.it_interval;
		m.health_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (m.health_fd < 0 || timerfd_settime(m.health_fd, 0, &every, NULL) < 0)
			fail("health timer");
	}

	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	strcpy(addr.sun_path, m.attach_path);
	if (unlink(m.attach_path) < 0 && errno != ENOENT)
		fail("remove stale attach socket");
	if ((m.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		fail("socket");
	if (bind(m.listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		fail("bind attach socket");
	if (chmod(m.attach_path, 0600) < 0)
		fail("chmod attach socket");
	if (listen(m.listen_fd, 16) < 0)
		fail("listen");

	for (int i = 0; i < m.nout; i++)
		add_flag(m.out[i].fd, F_GETFL, F_SETFL, O_NONBLOCK);
	if (m.stdin_fd >= 0)
		add_flag(m.stdin_fd, F_GETFL, F_SETFL, O_NONBLOCK);

	char msg[32];
	/* Nobody reading (the engine was killed) is no reason to abandon the container: it
	 * stays supervised, and `cove system check` stops it if it was never started. */
	ssize_t told = write_all(m.sync_fd, msg, (size_t)snprintf(msg, sizeof msg, "%d\n", (int)getpid()));
	(void)told;
	close(m.sync_fd);
	m.sync_fd = -1;
}

int main(int argc, char **argv) {
	parse_args(argc, argv);
	setup();
	reap(); /* the container may have exited before the signalfd existed */
	loop();
	finish();
	return 0;
}
