/*
 * coveprobe: a tiny static probe run inside test containers.
 *
 * Each subcommand answers one question about the process it runs as and
 * prints a single line: a JSON object, or a short word for the file probes.
 * Built by tests/conftest.py with `gcc -static -O2` and copied into the test
 * rootfs as /bin/coveprobe.
 *
 *   ids                 {"uid":..,"gid":..,"euid":..,"egid":..,"groups":[..]}
 *   caps                {"CapInh":"hex",..,"CapAmb":"hex"} from /proc/self/status
 *   rlimit NAME         {"name":"NOFILE","soft":N|"unlimited","hard":N|"unlimited"}
 *   nnp                 {"no_new_privs":0|1}
 *   umask               {"umask":"0022"}
 *   cwd                 {"cwd":"/path"}
 *   pid                 {"pid":N,"ppid":N}
 *   tty                 {"stdin":bool,"stdout":bool,"stderr":bool,"ttyname":"..."|null}
 *   write PATH          "ok" or the errno name (creates/truncates PATH)
 *   read PATH           "ok N" (N = bytes read) or the errno name
 *   chroot-escape MARK  "escaped", "contained", or "error <step> <ERRNO>"
 *   sleep N             sleeps N seconds (fractions allowed), prints nothing
 *   signals [READY]     blocks until SIGTERM/SIGUSR1/SIGUSR2/SIGINT/SIGHUP
 *                       arrives, prints its name; creates READY once waiting
 *   exit N              exits with status N
 *   syscall NAME        "ok" or the errno name: makes one harmless call of NAME
 *                       through syscall(2) (no libc wrapper in between):
 *                       keyctl (get the session keyring's id), add_key (a "user"
 *                       key in the process keyring), request_key (a missing
 *                       "user" key: ENOKEY when allowed), unshare (CLONE_NEWUSER),
 *                       mount (of a file system type that does not exist:
 *                       ENODEV when allowed, never mounts anything), umount2 (of
 *                       a path that does not exist), personality (query),
 *                       getcwd, ptrace (PTRACE_TRACEME), setns (fd -1: EBADF
 *                       when allowed), pivot_root (of paths that do not exist)
 *
 * Every probe exits 0 unless the command line itself is wrong (exit 2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static const char *errno_name(int err)
{
	switch (err) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case EBADF: return "EBADF";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ENFILE: return "ENFILE";
	case EMFILE: return "EMFILE";
	case ENOTTY: return "ENOTTY";
	case ETXTBSY: return "ETXTBSY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case ESPIPE: return "ESPIPE";
	case EROFS: return "EROFS";
	case EMLINK: return "EMLINK";
	case EPIPE: return "EPIPE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOSYS: return "ENOSYS";
	case ELOOP: return "ELOOP";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EDQUOT: return "EDQUOT";
	case ENOKEY: return "ENOKEY";
	default: return NULL;
	}
}

static void print_errno(int err)
{
	const char *name = errno_name(err);

	if (name)
		printf("%s\n", name);
	else
		printf("E%d\n", err);
}

static int usage(void)
{
	fprintf(stderr,
		"usage: coveprobe ids|caps|nnp|umask|cwd|pid|tty\n"
		"       coveprobe rlimit NAME | write PATH | read PATH\n"
		"       coveprobe chroot-escape MARKER | sleep N | signals [READY] | exit N\n"
		"       coveprobe syscall NAME\n");
	return 2;
}

static int cmd_ids(void)
{
	gid_t groups[NGROUPS_MAX];
	int n = getgroups(NGROUPS_MAX, groups);

	printf("{\"uid\":%u,\"gid\":%u,\"euid\":%u,\"egid\":%u,\"groups\":[",
	       (unsigned)getuid(), (unsigned)getgid(), (unsigned)geteuid(),
	       (unsigned)getegid());
	for (int i = 0; i < n; i++)
		printf("%s%u", i ? "," : "", (unsigned)groups[i]);
	printf("]}\n");
	return 0;
}

static int cmd_caps(void)
{
	static const char *const keys[] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };
	char line[512];
	int printed = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f) {
		print_errno(errno);
		return 0;
	}
	printf("{");
	while (fgets(line, sizeof(line), f)) {
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			size_t len = strlen(keys[k]);
			char *val;

			if (strncmp(line, keys[k], len) != 0 || line[len] != ':')
				continue;
			val = line + len + 1;
			while (*val == ' ' || *val == '\t')
				val++;
			val[strcspn(val, "\n")] = '\0';
			printf("%s\"%s\":\"%s\"", printed ? "," : "", keys[k], val);
			printed++;
		}
	}
	fclose(f);
	printf("}\n");
	return 0;
}

struct rlimit_name {
	const char *name;
	int resource;
};

static const struct rlimit_name rlimit_names[] = {
	{ "AS", RLIMIT_AS },           { "CORE", RLIMIT_CORE },
	{ "CPU", RLIMIT_CPU },         { "DATA", RLIMIT_DATA },
	{ "FSIZE", RLIMIT_FSIZE },     { "LOCKS", RLIMIT_LOCKS },
	{ "MEMLOCK", RLIMIT_MEMLOCK }, { "MSGQUEUE", RLIMIT_MSGQUEUE },
	{ "NICE", RLIMIT_NICE },       { "NOFILE", RLIMIT_NOFILE },
	{ "NPROC", RLIMIT_NPROC },     { "RSS", RLIMIT_RSS },
	{ "RTPRIO", RLIMIT_RTPRIO },   { "RTTIME", RLIMIT_RTTIME },
	{ "SIGPENDING", RLIMIT_SIGPENDING }, { "STACK", RLIMIT_STACK },
};

static void print_limit(rlim_t value)
{
	if (value == RLIM_INFINITY)
		printf("\"unlimited\"");
	else
		printf("%llu", (unsigned long long)value);
}

static int cmd_rlimit(const char *arg)
{
	const char *name = arg;
	struct rlimit lim;

	if (strncmp(name, "RLIMIT_", 7) == 0)
		name += 7;
	for (size_t i = 0; i < sizeof(rlimit_names) / sizeof(rlimit_names[0]); i++) {
		if (strcmp(name, rlimit_names[i].name) != 0)
			continue;
		if (getrlimit(rlimit_names[i].resource, &lim) != 0) {
			print_errno(errno);
			return 0;
		}
		printf("{\"name\":\"%s\",\"soft\":", name);
		print_limit(lim.rlim_cur);
		printf(",\"hard\":");
		print_limit(lim.rlim_max);
		printf("}\n");
		return 0;
	}
	fprintf(stderr, "coveprobe: unknown rlimit %s\n", arg);
	return 2;
}

static int cmd_nnp(void)
{
	int v = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);

	if (v < 0) {
		print_errno(errno);
		return 0;
	}
	printf("{\"no_new_privs\":%d}\n", v);
	return 0;
}

static int cmd_umask(void)
{
	mode_t old = umask(0);

	umask(old);
	printf("{\"umask\":\"%04o\"}\n", (unsigned)old);
	return 0;
}

static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static int cmd_cwd(void)
{
	char buf[PATH_MAX];

	if (!getcwd(buf, sizeof(buf))) {
		print_errno(errno);
		return 0;
	}
	printf("{\"cwd\":");
	print_json_string(buf);
	printf("}\n");
	return 0;
}

static int cmd_pid(void)
{
	printf("{\"pid\":%d,\"ppid\":%d}\n", (int)getpid(), (int)getppid());
	return 0;
}

static int cmd_tty(void)
{
	const char *name = ttyname(0);

	printf("{\"stdin\":%s,\"stdout\":%s,\"stderr\":%s,\"ttyname\":",
	       isatty(0) ? "true" : "false", isatty(1) ? "true" : "false",
	       isatty(2) ? "true" : "false");
	if (name)
		print_json_string(name);
	else
		printf("null");
	printf("}\n");
	return 0;
}

static int cmd_write(const char *path)
{
	static const char data[] = "coveprobe\n";
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0) {
		print_errno(errno);
		return 0;
	}
	if (write(fd, data, sizeof(data) - 1) < 0) {
		int err = errno;

		close(fd);
		print_errno(err);
		return 0;
	}
	if (close(fd) != 0) {
		print_errno(errno);
		return 0;
	}
	printf("ok\n");
	return 0;
}

static int cmd_read(const char *path)
{
	char buf[4096];
	unsigned long long total = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		print_errno(errno);
		return 0;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			int err = errno;

			close(fd);
			print_errno(err);
			return 0;
		}
		if (n == 0)
			break;
		total += (unsigned long long)n;
		if (total > (1ULL << 24))
			break; /* enough to know it is not empty */
	}
	close(fd);
	printf("ok %llu\n", total);
	return 0;
}

static int fail_step(const char *step)
{
	const char *name = errno_name(errno);

	if (name)
		printf("error %s %s\n", step, name);
	else
		printf("error %s E%d\n", step, errno);
	return 0;
}

/*
 * The textbook chroot breakout: chroot into a subdirectory while keeping the
 * working directory outside it, walk up with "..", and chroot to where we land.
 * Inside a properly pivoted mount namespace this can only reach the
 * container's own root, never the host's.
 */
static int cmd_chroot_escape(const char *marker)
{
	char dir[64];
	struct stat st;

	snprintf(dir, sizeof(dir), "/tmp/.coveprobe-escape-%d", (int)getpid());
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fail_step("mkdir");
	if (chdir("/") != 0)
		return fail_step("chdir");
	if (chroot(dir) != 0)
		return fail_step("chroot");
	/* cwd is now outside the new root: ".." is not stopped by it */
	for (int i = 0; i < 256; i++) {
		if (chdir("..") != 0)
			return fail_step("chdir-up");
	}
	if (chroot(".") != 0)
		return fail_step("chroot-dot");
	if (stat(marker, &st) == 0)
		printf("escaped\n");
	else
		printf("contained\n");
	return 0;
}

static int cmd_sleep(const char *arg)
{
	char *end;
	double secs = strtod(arg, &end);
	struct timespec ts;

	if (end == arg || secs < 0)
		return usage();
	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return 0;
}

static void ignore_signal(int sig)
{
	(void)sig;
}

static int cmd_signals(const char *ready)
{
	static const int sigs[] = { SIGTERM, SIGUSR1, SIGUSR2, SIGINT, SIGHUP };
	sigset_t set;
	struct sigaction sa;
	int sig = 0;

	sigemptyset(&set);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ignore_signal;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaddset(&set, sigs[i]);
		/* a handler makes the signal deliverable even to a namespace's init */
		sigaction(sigs[i], &sa, NULL);
	}
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return fail_step("sigprocmask");
	if (ready) {
		int fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0)
			return fail_step("ready");
		close(fd);
	}
	if (sigwait(&set, &sig) != 0)
		return fail_step("sigwait");
	switch (sig) {
	case SIGTERM: printf("SIGTERM\n"); break;
	case SIGUSR1: printf("SIGUSR1\n"); break;
	case SIGUSR2: printf("SIGUSR2\n"); break;
	case SIGINT: printf("SIGINT\n"); break;
	case SIGHUP: printf("SIGHUP\n"); break;
	default: printf("SIG%d\n", sig); break;
	}
	return 0;
}

/* Values from the kernel's uapi headers, so the probe needs no extra -dev package. */
#define PROBE_KEYCTL_GET_KEYRING_ID 0
#define PROBE_KEY_SPEC_PROCESS_KEYRING (-2)
#define PROBE_KEY_SPEC_SESSION_KEYRING (-3)
#define PROBE_CLONE_NEWUSER 0x10000000
#define PROBE_PTRACE_TRACEME 0

static int cmd_syscall(const char *name)
{
	char buf[PATH_MAX];
	long rc;

	if (strcmp(name, "keyctl") == 0)
		rc = syscall(SYS_keyctl, PROBE_KEYCTL_GET_KEYRING_ID,
			     PROBE_KEY_SPEC_SESSION_KEYRING, 0);
	else if (strcmp(name, "add_key") == 0)
		rc = syscall(SYS_add_key, "user", "coveprobe", "x", (size_t)1,
			     PROBE_KEY_SPEC_PROCESS_KEYRING);
	else if (strcmp(name, "request_key") == 0)
		rc = syscall(SYS_request_key, "user", "coveprobe-missing", NULL, 0);
	else if (strcmp(name, "unshare") == 0)
		rc = syscall(SYS_unshare, PROBE_CLONE_NEWUSER);
	else if (strcmp(name, "mount") == 0)
		rc = syscall(SYS_mount, "none", "/", "coveprobe-no-such-fs", 0UL, NULL);
	else if (strcmp(name, "umount2") == 0)
		rc = syscall(SYS_umount2, "/coveprobe-no-such-path", 0);
	else if (strcmp(name, "personality") == 0)
		rc = syscall(SYS_personality, 0xffffffffUL);
	else if (strcmp(name, "getcwd") == 0)
		rc = syscall(SYS_getcwd, buf, sizeof(buf));
	else if (strcmp(name, "ptrace") == 0)
		rc = syscall(SYS_ptrace, PROBE_PTRACE_TRACEME, 0, NULL, NULL);
	else if (strcmp(name, "setns") == 0)
		rc = syscall(SYS_setns, -1, 0);
	else if (strcmp(name, "pivot_root") == 0)
		rc = syscall(SYS_pivot_root, "/coveprobe-no-such-path", "/coveprobe-no-such-path");
	else {
		fprintf(stderr, "coveprobe: unknown syscall probe %s\n", name);
		return 2;
	}
	if (rc < 0)
		print_errno(errno);
	else
		printf("ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd;
	int rc;

	if (argc < 2)
		return usage();
	cmd = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (strcmp(cmd, "ids") == 0)
		rc = cmd_ids();
	else if (strcmp(cmd, "caps") == 0)
		rc = cmd_caps();
	else if (strcmp(cmd, "nnp") == 0)
		rc = cmd_nnp();
	else if (strcmp(cmd, "umask") == 0)
		rc = cmd_umask();
	else if (strcmp(cmd, "cwd") == 0)
		rc = cmd_cwd();
	else if (strcmp(cmd, "pid") == 0)
		rc = cmd_pid();
	else if (strcmp(cmd, "tty") == 0)
		rc = cmd_tty();
	else if (strcmp(cmd, "rlimit") == 0 && argc == 3)
		rc = cmd_rlimit(argv[2]);
	else if (strcmp(cmd, "write") == 0 && argc == 3)
		rc = cmd_write(argv[2]);
	else if (strcmp(cmd, "read") == 0 && argc == 3)
		rc = cmd_read(argv[2]);
	else if (strcmp(cmd, "chroot-escape") == 0 && argc == 3)
		rc = cmd_chroot_escape(argv[2]);
	else if (strcmp(cmd, "sleep") == 0 && argc == 3)
		rc = cmd_sleep(argv[2]);
	else if (strcmp(cmd, "signals") == 0 && argc <= 3)
		rc = cmd_signals(argc == 3 ? argv[2] : NULL);
	else if (strcmp(cmd, "syscall") == 0 && argc == 3)
		rc = cmd_syscall(argv[2]);
	else if (strcmp(cmd, "exit") == 0 && argc == 3)
		return atoi(argv[2]) & 0xff;
	else
		return usage();
	fflush(stdout);
	return rc;
}
