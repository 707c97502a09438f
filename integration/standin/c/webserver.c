/*
 * Stand-in for the web server images critest pulls (e2e-test-images nginx
 * and httpd, cri-tools' hostnet-nginx), built here because no registry is
 * reachable. Usage: webserver nginx|httpd PORT.
 *
 * As nginx it behaves as the specs observe nginx: its command line reads
 * "nginx: master process ...", it writes /var/run/nginx.pid, and it serves
 * HTTP. As httpd it logs a line naming httpd and serves HTTP.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MASTER "nginx: master process nginx -g daemon off;"

static void serve(int port)
{
	static const char body[] = "<html><body>Welcome to the stand-in</body></html>\n";
	char page[256];
	int len = snprintf(page, sizeof(page),
			   "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: %zu\r\n\r\n%s",
			   sizeof(body) - 1, body);
	struct sockaddr_in addr;
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);

	if (s < 0) {
		perror("socket");
		exit(1);
	}
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons(port);
	if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(s, 64) < 0) {
		perror("bind");
		exit(1);
	}
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		char buf[1024];
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		if (read(c, buf, sizeof(buf)) > 0 && write(c, page, len) < 0)
			perror("write");
		close(c);
	}
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[0], MASTER) == 0) { /* re-executed as nginx */
		FILE *f = fopen("/var/run/nginx.pid", "w");
		if (f) {
			fprintf(f, "%d\n", getpid());
			fclose(f);
		}
		serve(atoi(argv[2]));
	}
	if (argc != 3) {
		fprintf(stderr, "usage: webserver nginx|httpd PORT\n");
		return 2;
	}
	if (strcmp(argv[1], "nginx") == 0) {
		/* Re-executed by its path, so its command name stays "nginx". */
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		char *args[] = {MASTER, argv[1], argv[2], "master", NULL};
		if (n < 0) {
			perror("readlink");
			return 1;
		}
		self[n] = 0;
		execv(self, args);
		perror("execv");
		return 1;
	}
	printf("httpd: serving on port %s\n", argv[2]);
	fflush(stdout);
	serve(atoi(argv[2]));
	return 0;
}
