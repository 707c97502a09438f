/*
 * pause: the pod's built-in pause task.
 *
 * It is built freestanding (no libc, no heap, one page of code) so that a pod
 * pays a few kilobytes for it instead of the size of a static pause image.
 * The shim embeds the binary and runs it from a copy that every shim shares
 * (in /run/containerd-shim-pause-v2, else in containerd's root directory), so
 * the kernel shares its pages between all pods; where neither may hold an
 * executable, from a sealed memfd of the shim's own. No image is needed.
 *
 * Usage (set by the shim, see Config.Args in ../config.go):
 *   pause [-n NETNS] [-l] [-h HOSTNAME] [-s SYSCTL_PATH=VALUE]... [-u UID] [-g GID] [-r]
 *   pause -r -u UID -g GID -U NETNS [-h HOSTNAME] [-s ...]...
 *   pause -v
 *
 * -U is for a pod in a user namespace of its own, which CRI makes as the
 * owner of the pod's network namespace: the pause task joins that user
 * namespace and NETNS, makes the pod's IPC, UTS and PID namespaces (owned by
 * it) and forks the pod's PID 1, which does the rest of the setup. It reports
 * "pid N" (N: PID 1's pid on the host) on fd 3, then waits for PID 1 and
 * exits as it does.
 *
 * Setup happens while still root, in this order: join NETNS, set the hostname,
 * bring lo up, write namespaced sysctls, chroot into the working directory
 * (an empty directory), set no_new_privs, drop every capability from the
 * bounding set, then switch to UID/GID, which clears the remaining ones.
 * Last it installs a seccomp filter that allows only the system calls it
 * makes from then on and kills it on any other. It then reports "ok" (or
 * the failed step) on fd 3, so the shim knows the namespaces are ready
 * before any container joins them.
 *
 * Each report is one line written by one write(2): a write of less than
 * PIPE_BUF bytes to a pipe is atomic, so with -U the parent's report and its
 * child's never mix, whichever runs first; the shim reads them in any order.
 *
 * Duties afterwards, as Kubernetes' pause: exit 0 on SIGTERM or SIGINT, reap
 * every child on SIGCHLD, otherwise sleep.
 */
#include <sys/syscall.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/sockios.h>
#include <linux/fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>

#define VERSION "containerd-shim-pause-v2 pause task 1\n"

#define SIGINT 2
#define SIGKILL 9
#define SIGTERM 15
#define SIGCHLD 17
#define AF_INET 2
#define SOCK_DGRAM 2
#define IFF_UP 0x1
#define WNOHANG 1
#define SYNC_FD 3
#define NS_GET_USERNS 0xb701 /* _IO(0xb7, 0x1), linux/nsfs.h */

#if defined(__x86_64__)
#define FILTER_ARCH AUDIT_ARCH_X86_64
__asm__(".text\n.global _start\n_start:\n"
	"  xor %rbp,%rbp\n  mov %rsp,%rdi\n  and $-16,%rsp\n  call pause_main\n  hlt\n");

/* Unused arguments are passed as 0: prctl(2) rejects garbage in them. */
static long sys(long n, long a, long b, long c, long d)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = 0;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
#define FILTER_ARCH AUDIT_ARCH_AARCH64
__asm__(".text\n.global _start\n_start:\n  mov x0, sp\n  bl pause_main\n");

static long sys(long n, long a, long b, long c, long d)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = 0;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
	return x0;
}
#else
#error "unsupported architecture"
#endif

/* gcc may emit calls to these for struct initialisation. */
void *memset(void *s, int c, unsigned long n)
{
	unsigned char *p = s;
	while (n--)
		*p++ = (unsigned char)c;
	return s;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;
	while (n--)
		*dp++ = *sp++;
	return d;
}

static unsigned long slen(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static void put(int fd, const char *s) { sys(SYS_write, fd, (long)s, slen(s), 0); }

static __attribute__((noreturn)) void quit(int code)
{
	for (;;)
		sys(SYS_exit_group, code, 0, 0, 0);
}

/* decimal writes v in decimal at the end of buf and returns where it starts. */
static char *decimal(char buf[24], unsigned long v)
{
	int i = 23;
	buf[i] = 0;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v && i > 0);
	return buf + i;
}

/* report writes the line a b c on the sync fd in a single write(2): with -U
 * two processes report on one pipe, and only a write of less than PIPE_BUF
 * bytes is atomic there. */
static void report(const char *a, const char *b, const char *c)
{
	char line[512];
	const char *parts[3] = {a, b, c};
	unsigned long n = 0;
	for (int i = 0; i < 3; i++)
		for (const char *p = parts[i]; p && *p && n < sizeof(line) - 1; p++)
			line[n++] = *p;
	line[n++] = '\n';
	sys(SYS_write, SYNC_FD, (long)line, n, 0);
}

/* fail reports the failed step on the sync fd (and stderr) and exits 1. */
static __attribute__((noreturn)) void fail(const char *step, long err)
{
	char num[24];
	report(step, ": errno ", decimal(num, (unsigned long)(-err)));
	put(2, step);
	put(2, "\n");
	quit(1);
}

static long num(const char *s)
{
	long v = 0;
	if (!s || !*s)
		fail("bad number", -22);
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			fail("bad number", -22);
		v = v * 10 + (*s - '0');
	}
	return v;
}

struct ifreq_flags {
	char name[16];
	short flags;
	char pad[22];
};

static void loopback_up(void)
{
	struct ifreq_flags ifr;
	long fd = sys(SYS_socket, AF_INET, SOCK_DGRAM, 0, 0);
	if (fd < 0)
		fail("socket", fd);
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.name, "lo", 3);
	long r = sys(SYS_ioctl, fd, SIOCGIFFLAGS, (long)&ifr, 0);
	if (r < 0)
		fail("get lo flags", r);
	ifr.flags |= IFF_UP;
	r = sys(SYS_ioctl, fd, SIOCSIFFLAGS, (long)&ifr, 0);
	if (r < 0)
		fail("set lo up", r);
	sys(SYS_close, fd, 0, 0, 0);
}

/* sysctl writes VALUE to /proc/sys/PATH, given "PATH=VALUE". */
static void sysctl(char *kv)
{
	char path[256] = "/proc/sys/";
	unsigned long off = slen(path), i = 0;
	while (kv[i] && kv[i] != '=' && off < sizeof(path) - 1)
		path[off++] = kv[i++];
	if (kv[i] != '=')
		fail("bad sysctl", -22);
	path[off] = 0;
	const char *val = kv + i + 1;
	long fd = sys(SYS_openat, AT_FDCWD, (long)path, O_WRONLY | O_CLOEXEC, 0);
	if (fd < 0)
		fail(path, fd);
	long r = sys(SYS_write, fd, (long)val, slen(val), 0);
	if (r < 0)
		fail(path, r);
	sys(SYS_close, fd, 0, 0, 0);
}

#ifdef PAUSE_TEST_REPORT_PID_LAST
static int test_order[2];
#endif

/* enter_pod_userns joins the user namespace owning the network namespace at
 * path, becomes its root, joins the network namespace, makes new IPC, UTS and
 * PID namespaces and forks. It returns 0 in the child (the pod's PID 1) and
 * the child's pid in the parent. */
static long enter_pod_userns(const char *path)
{
	long r, pid;
	long nfd = sys(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0);
	if (nfd < 0)
		fail("open netns", nfd);
	long ufd = sys(SYS_ioctl, nfd, NS_GET_USERNS, 0, 0);
	if (ufd < 0)
		fail("user namespace of netns", ufd);
	if ((r = sys(SYS_setns, ufd, CLONE_NEWUSER, 0, 0)) < 0)
		fail("join user namespace", r);
	if ((r = sys(SYS_setgroups, 0, 0, 0, 0)) < 0)
		fail("setgroups", r);
	if ((r = sys(SYS_setresgid, 0, 0, 0, 0)) < 0 || (r = sys(SYS_setresuid, 0, 0, 0, 0)) < 0)
		fail("become the user namespace's root", r);
	if ((r = sys(SYS_setns, nfd, CLONE_NEWNET, 0, 0)) < 0)
		fail("join netns", r);
	sys(SYS_close, nfd, 0, 0, 0);
	sys(SYS_close, ufd, 0, 0, 0);
	if ((r = sys(SYS_unshare, CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID, 0, 0, 0)) < 0)
		fail("unshare", r);
#ifdef PAUSE_TEST_REPORT_PID_LAST
	sys(SYS_pipe2, (long)test_order, O_CLOEXEC, 0, 0);
#endif
	if ((pid = sys(SYS_clone, SIGCHLD, 0, 0, 0)) < 0)
		fail("fork", pid);
	if (pid == 0) {
		sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0);
		return 0;
	}
#ifdef PAUSE_TEST_REPORT_PID_LAST
	/* Test builds only: report after the child has reported, an order the
	 * kernel allows and a loaded machine produces now and then. */
	char c;
	sys(SYS_close, test_order[1], 0, 0, 0);
	sys(SYS_read, test_order[0], (long)&c, 1, 0);
#endif
	char num[24];
	report("pid ", decimal(num, (unsigned long)pid), 0);
	return pid;
}

/*
 * The seccomp filters: classic BPF over struct seccomp_data. Each checks the
 * architecture first (system call numbers differ between them), on x86_64
 * refuses the x32 calls (the same architecture, numbers with the x32 bit),
 * allows its list and kills the process on anything else.
 */
#define LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define KILL BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)
#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#if defined(__x86_64__)
#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif
#define NATIVE_ONLY BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1), KILL
#else
#define NATIVE_ONLY BPF_JUMP(BPF_JMP | BPF_JA, 0, 0, 0)
#endif
#define PROLOGUE LOAD(arch), BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FILTER_ARCH, 1, 0), KILL, LOAD(nr), NATIVE_ONLY

/* The pause task, from its ready report on: report and close the sync fd,
 * wait for signals, reap, exit. The kernel may restart an interrupted call
 * through restart_syscall. No signal handler is installed, so there is no
 * rt_sigreturn. */
static const struct sock_filter task_filter[] = {
	PROLOGUE,
	ALLOW(SYS_rt_sigtimedwait),
	ALLOW(SYS_wait4),
	ALLOW(SYS_write),
	ALLOW(SYS_close),
	ALLOW(SYS_exit_group),
	ALLOW(SYS_restart_syscall),
	KILL,
};

/* The -U parent, which only waits for the pod's PID 1 and exits as it does. */
static const struct sock_filter waiter_filter[] = {
	PROLOGUE,
	ALLOW(SYS_wait4),
	ALLOW(SYS_close),
	ALLOW(SYS_exit_group),
	KILL,
};

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* confine installs filter; no_new_privs is set, so no privilege is needed. */
static void confine(const struct sock_filter *filter, unsigned short len)
{
	struct sock_fprog prog = {len, (struct sock_filter *)filter};
	long r = sys(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, (long)&prog, 0);
	if (r < 0)
		fail("seccomp", r);
}

#ifdef PAUSE_TEST_DUMP_FILTERS
/* Test builds only: write each filter (its length, then its instructions)
 * to stdout, so a test can run them for each architecture. */
static void dump(const struct sock_filter *filter, unsigned int len)
{
	sys(SYS_write, 1, (long)&len, sizeof(len), 0);
	sys(SYS_write, 1, (long)filter, len * sizeof(*filter), 0);
}
#endif

/* await exits as the pod's PID 1 does. */
static __attribute__((noreturn)) void await(long pid)
{
	int status = 0;
	confine(waiter_filter, LEN(waiter_filter));
	sys(SYS_close, SYNC_FD, 0, 0, 0);
	while (sys(SYS_wait4, pid, (long)&status, 0, 0) == -4 /* EINTR */)
		;
	if ((status & 0x7f) == 0)
		quit((status >> 8) & 0xff);
	quit(128 + (status & 0x7f));
}

void pause_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	long uid = -1, gid = -1, r, child = 0;
	int chroot = 0;
	unsigned long sigs = (1UL << (SIGINT - 1)) | (1UL << (SIGTERM - 1)) | (1UL << (SIGCHLD - 1));

#ifdef PAUSE_TEST_DUMP_FILTERS
	dump(task_filter, LEN(task_filter));
	dump(waiter_filter, LEN(waiter_filter));
	quit(0);
#endif
	/* Run from a memfd, the command name would be its fd number. */
	sys(SYS_prctl, PR_SET_NAME, (long)"pause", 0, 0);
	/* Block first: a stop request that arrives during setup is then not lost. */
	sys(SYS_rt_sigprocmask, 0 /* SIG_BLOCK */, (long)&sigs, 0, sizeof(sigs));

	for (long i = 1; i < argc; i++) {
		char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : 0;
		if (streq(a, "-v")) {
			put(1, VERSION);
			quit(0);
		} else if (streq(a, "-l")) {
			loopback_up();
		} else if (streq(a, "-r")) {
			chroot = 1;
		} else if (!streq(a, "-n") && !streq(a, "-h") && !streq(a, "-s") &&
			   !streq(a, "-u") && !streq(a, "-g") && !streq(a, "-U")) {
			fail("unknown flag", -22);
		} else if (!v) {
			fail("missing value", -22);
		} else if (streq(a, "-n")) {
			long fd = sys(SYS_openat, AT_FDCWD, (long)v, O_RDONLY | O_CLOEXEC, 0);
			if (fd < 0)
				fail("open netns", fd);
			if ((r = sys(SYS_setns, fd, CLONE_NEWNET, 0, 0)) < 0)
				fail("join netns", r);
			sys(SYS_close, fd, 0, 0, 0);
			i++;
		} else if (streq(a, "-U")) {
			if ((child = enter_pod_userns(v)) > 0)
				break; /* the rest of the setup is the child's */
			i++;
		} else if (streq(a, "-h")) {
			if ((r = sys(SYS_sethostname, (long)v, slen(v), 0, 0)) < 0)
				fail("sethostname", r);
			i++;
		} else if (streq(a, "-s")) {
			sysctl(v);
			i++;
		} else if (streq(a, "-u")) {
			uid = num(v);
			i++;
		} else if (streq(a, "-g")) {
			gid = num(v);
			i++;
		}
	}

	if (chroot) {
		if ((r = sys(SYS_chroot, (long)".", 0, 0, 0)) < 0)
			fail("chroot", r);
		if ((r = sys(SYS_chdir, (long)"/", 0, 0, 0)) < 0)
			fail("chdir", r);
	}
	if ((r = sys(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0)) < 0)
		fail("no_new_privs", r);
	if (uid >= 0 || gid >= 0) {
		for (long c = 0; c < 64; c++)
			sys(SYS_prctl, PR_CAPBSET_DROP, c, 0, 0);
		if ((r = sys(SYS_setgroups, 0, 0, 0, 0)) < 0)
			fail("setgroups", r);
		if (gid >= 0 && (r = sys(SYS_setresgid, gid, gid, gid, 0)) < 0)
			fail("setgid", r);
		/* From root to another uid clears permitted and effective capabilities. */
		if (uid >= 0 && (r = sys(SYS_setresuid, uid, uid, uid, 0)) < 0)
			fail("setuid", r);
	}
	/* A change of credentials clears the parent-death signal: set it again so
	 * the pod's namespaces never outlive a crashed shim. */
	sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0);
	if (child > 0)
		await(child);

	if (sys(SYS_getpid, 0, 0, 0, 0) != 1)
		put(2, "pause: not running as PID 1, orphans of the pod are not reaped here\n");

	confine(task_filter, LEN(task_filter));
#ifdef PAUSE_TEST_FORBIDDEN_CALL
	/* Test builds only: one call outside the filter, which must kill. */
	sys(SYS_getpid, 0, 0, 0, 0);
#endif
	report("ok", 0, 0);
#ifdef PAUSE_TEST_REPORT_PID_LAST
	if (test_order[1] > 0)
		sys(SYS_close, test_order[1], 0, 0, 0);
#endif
	sys(SYS_close, SYNC_FD, 0, 0, 0);

	for (;;) {
		long sig = sys(SYS_rt_sigtimedwait, (long)&sigs, 0, 0, sizeof(sigs));
		if (sig == SIGINT || sig == SIGTERM)
			quit(0);
		if (sig == SIGCHLD)
			while (sys(SYS_wait4, -1, 0, WNOHANG, 0) > 0)
				;
	}
}
