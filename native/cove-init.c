/*
 * cove-init: a minimal init for `cove run --init` (PID 1 inside the container).
 *
 *   cove-init [--] CMD [ARG...]
 *
 * Runs CMD as its only direct child, forwards every signal it receives to that child,
 * reaps every zombie (orphans are re-parented to it as PID 1, or as a child subreaper when
 * it runs outside a pid namespace) and exits with the child's status: its exit code, or
 * 128 + the signal number that killed it. Statically linked: containers need no libc.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* In the child: back to a pristine signal state, then become CMD. */
static void run_child(char **cmd)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* fails harmlessly for SIGKILL, SIGSTOP, reserved */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execvp(cmd[0], cmd);
	int err = errno;
	fprintf(stderr, "cove-init: exec %s: %s\n", cmd[0], strerror(err));
	_exit(err == ENOENT ? 127 : 126);
}

int main(int argc, char **argv)
{
	char **cmd = argv + 1;
	if (argc > 1 && strcmp(argv[1], "--") == 0)
		cmd++;
	if (!*cmd) {
		fprintf(stderr, "usage: cove-init [--] CMD [ARG...]\n");
		return 2;
	}
	/* outside a pid namespace, orphans of CMD are re-parented to us instead of PID 1 */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	/* Block everything before fork: signals then queue for sigwaitinfo below, and none is
	 * lost between fork and the wait loop. The child restores an empty mask. */
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);

	pid_t child = fork();
	if (child < 0) {
		perror("cove-init: fork");
		return 1;
	}
	if (child == 0)
		run_child(cmd);

	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&all, &info);
		if (sig < 0)
			continue; /* EINTR */
		if (sig != SIGCHLD) {
			kill(child, sig); /* forward; the child may already be gone (ESRCH) */
			continue;
		}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid != child)
				continue; /* a reaped orphan */
			if (WIFSIGNALED(status))
				return 128 + WTERMSIG(status);
			return WEXITSTATUS(status);
		}
	}
}
