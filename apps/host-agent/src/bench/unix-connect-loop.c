/*
 * unix-connect-loop PATH ITERATIONS: socket(AF_UNIX) + connect(PATH) + close,
 * ITERATIONS times. Prints "cpu_ns wall_ns errno" per iteration (thread CPU
 * time, wall clock) and the errno of the first connect (0: connected).
 * Used by unix-connect.bench.ts to time the unix guard's connect_unix hook.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	long n, i;
	int first = -1;
	double c0, w0;

	if (argc != 3 || strlen(argv[1]) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "usage: unix-connect-loop PATH ITERATIONS\n");
		return 2;
	}
	strcpy(sun.sun_path, argv[1]);
	n = atol(argv[2]);
	c0 = ns(CLOCK_THREAD_CPUTIME_ID);
	w0 = ns(CLOCK_MONOTONIC);
	for (i = 0; i < n; i++) {
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		int rc = connect(s, (struct sockaddr *)&sun, sizeof(sun));

		if (first < 0)
			first = rc == 0 ? 0 : errno;
		close(s);
	}
	printf("%.1f %.1f %d\n", (ns(CLOCK_THREAD_CPUTIME_ID) - c0) / n, (ns(CLOCK_MONOTONIC) - w0) / n, first);
	return 0;
}
