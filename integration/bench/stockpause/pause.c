/*
 * The benchmark's stand-in for the stock pause image (registry.k8s.io/pause):
 * a pause built the way the upstream one is, in C against libc and linked
 * statically, doing the same duties: exit 0 on SIGINT or SIGTERM, reap
 * children on SIGCHLD, sleep otherwise. Memory comparisons are made against it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void reap(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		printf("stock-pause stand-in\n");
		return 0;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: not PID 1\n");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = stop;
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		return 1;
	sa.sa_handler = reap;
	sa.sa_flags = SA_NOCLDSTOP;
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		return 2;
	for (;;)
		pause();
}
