/* connect() in a tight loop, for the connect-overhead benchmark.
 *
 *   connect-loop udp|tcp HOST PORT ITERATIONS
 *
 * udp: one UDP socket, connect() to HOST:PORT again and again (each call runs
 *      the cgroup's connect4 program; no packet is sent).
 * tcp: socket(), connect() to a closed loopback port (the kernel answers RST:
 *      ECONNREFUSED), close(); runs connect4 and the egress program for the SYN.
 * Prints the mean nanoseconds per iteration twice: wall clock
 * (CLOCK_MONOTONIC), then the CPU time of this thread
 * (CLOCK_THREAD_CPUTIME_ID: the syscalls and, on loopback, the softirq work
 * they trigger, but not the time spent waiting for a CPU on a busy machine).
 * Exits 2 if a call fails in a way the benchmark does not expect (EPERM means
 * the destination was blocked).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s udp|tcp HOST PORT ITERATIONS\n", argv[0]);
		return 2;
	}
	int tcp = strcmp(argv[1], "tcp") == 0;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[3])) };
	if (inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[2]);
		return 2;
	}
	long n = atol(argv[4]);
	int udp_fd = tcp ? -1 : socket(AF_INET, SOCK_DGRAM, 0);
	long long t0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	for (long i = 0; i < n; i++) {
		int fd = tcp ? socket(AF_INET, SOCK_STREAM, 0) : udp_fd;
		if (fd < 0) {
			perror("socket");
			return 2;
		}
		int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		if (rc != 0 && !(tcp && errno == ECONNREFUSED)) {
			fprintf(stderr, "connect: %s\n", strerror(errno));
			return 2;
		}
		if (tcp)
			close(fd);
	}
	long long t1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	printf("%.1f %.1f\n", (double)(t1 - t0) / (double)n, (double)(c1 - c0) / (double)n);
	return 0;
}
