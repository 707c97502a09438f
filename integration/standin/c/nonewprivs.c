/*
 * Stand-in for e2e-test-images/nonewprivs: installed setuid root, it prints
 * the effective uid it runs with, so a spec can tell whether no_new_privs
 * kept the setuid bit from taking effect.
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("Effective uid: %d\n", geteuid());
	return 0;
}
