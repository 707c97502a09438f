/*
 * samepid PID: starts a process with exactly pid PID (clone3's set_tid; root
 * only), prints its pid and waits for it. Tests use it to reuse the pid of a
 * process that has gone, as the kernel does in time on a busy host.
 */
#define _GNU_SOURCE
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	pid_t want = argc > 1 ? atoi(argv[1]) : 0;
	struct clone_args args;
	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	args.set_tid = (unsigned long)&want;
	args.set_tid_size = 1;
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0) {
		perror("clone3");
		return 1;
	}
	if (pid == 0)
		for (;;)
			pause();
	printf("%ld\n", pid);
	fflush(stdout);
	waitpid(pid, 0, 0);
	return 0;
}
