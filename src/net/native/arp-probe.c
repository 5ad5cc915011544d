/*
 * arp-probe: asks, out of given ports, whether given addresses answer ARP, all at once.
 *
 *   arp-probe TIMEOUT_MS PORT SOURCE TARGET [PORT SOURCE TARGET ...]
 *
 * Sends one ARP request (who has TARGET, tell SOURCE) out of each PORT and waits up to TIMEOUT_MS
 * for the replies. Prints one line a probe, in argument order: "PORT TARGET 1" when TARGET answered
 * on PORT, "PORT TARGET 0" when not. Exit 0 when every probe was sent, 2 on bad arguments, 1 when a
 * port could not be used (its line says why). One run for all of a node's ports costs a fork and a
 * few syscalls, where a run of arping per probe costs tens of milliseconds of CPU each.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROBES_MAX 64

struct probe {
	const char *port;
	const char *target_text;
	struct in_addr source;
	struct in_addr target;
	int fd;
	int answered;
};

static long long now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Opens an ARP socket on the port and sends the request; returns 0, or -1 with a reason printed. */
static int send_request(struct probe *p) {
	p->fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ARP));
	if (p->fd < 0) {
		printf("%s %s 0 socket: %s\n", p->port, p->target_text, strerror(errno));
		return -1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, p->port, IFNAMSIZ - 1);
	if (ioctl(p->fd, SIOCGIFINDEX, &ifr) < 0) {
		printf("%s %s 0 no such port: %s\n", p->port, p->target_text, strerror(errno));
		return -1;
	}
	int ifindex = ifr.ifr_ifindex;
	if (ioctl(p->fd, SIOCGIFHWADDR, &ifr) < 0) {
		printf("%s %s 0 no hardware address: %s\n", p->port, p->target_text, strerror(errno));
		return -1;
	}
	struct sockaddr_ll bound;
	memset(&bound, 0, sizeof bound);
	bound.sll_family = AF_PACKET;
	bound.sll_protocol = htons(ETH_P_ARP);
	bound.sll_ifindex = ifindex;
	if (bind(p->fd, (struct sockaddr *)&bound, sizeof bound) < 0) {
		printf("%s %s 0 bind: %s\n", p->port, p->target_text, strerror(errno));
		return -1;
	}
	struct ether_arp request;
	memset(&request, 0, sizeof request);
	request.arp_hrd = htons(ARPHRD_ETHER);
	request.arp_pro = htons(ETH_P_IP);
	request.arp_hln = ETH_ALEN;
	request.arp_pln = 4;
	request.arp_op = htons(ARPOP_REQUEST);
	memcpy(request.arp_sha, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	memcpy(request.arp_spa, &p->source, 4);
	memcpy(request.arp_tpa, &p->target, 4);
	struct sockaddr_ll to = bound;
	to.sll_halen = ETH_ALEN;
	memset(to.sll_addr, 0xff, ETH_ALEN);
	if (sendto(p->fd, &request, sizeof request, 0, (struct sockaddr *)&to, sizeof to) < 0) {
		printf("%s %s 0 send: %s\n", p->port, p->target_text, strerror(errno));
		return -1;
	}
	return 0;
}

/* Reads what arrived on the probe's socket; marks it answered on a reply from its target. */
static void read_replies(struct probe *p) {
	for (;;) {
		struct ether_arp reply;
		ssize_t n = recv(p->fd, &reply, sizeof reply, MSG_DONTWAIT);
		if (n < 0) return;
		if (n < (ssize_t)sizeof reply || ntohs(reply.arp_op) != ARPOP_REPLY) continue;
		if (memcmp(reply.arp_spa, &p->target, 4) == 0) p->answered = 1;
	}
}

int main(int argc, char **argv) {
	if (argc < 5 || (argc - 2) % 3 != 0 || (argc - 2) / 3 > PROBES_MAX) {
		fprintf(stderr, "usage: arp-probe TIMEOUT_MS PORT SOURCE TARGET [PORT SOURCE TARGET ...] (at most %d)\n",
		        PROBES_MAX);
		return 2;
	}
	long timeout_ms = strtol(argv[1], NULL, 10);
	if (timeout_ms <= 0 || timeout_ms > 10000) {
		fprintf(stderr, "arp-probe: TIMEOUT_MS must be 1 to 10000\n");
		return 2;
	}
	int count = (argc - 2) / 3;
	struct probe probes[PROBES_MAX];
	for (int i = 0; i < count; i++) {
		struct probe *p = &probes[i];
		p->port = argv[2 + 3 * i];
		p->target_text = argv[4 + 3 * i];
		p->fd = -1;
		p->answered = 0;
		if (strlen(p->port) >= IFNAMSIZ || inet_pton(AF_INET, argv[3 + 3 * i], &p->source) != 1 ||
		    inet_pton(AF_INET, p->target_text, &p->target) != 1) {
			fprintf(stderr, "arp-probe: bad probe %s %s %s\n", p->port, argv[3 + 3 * i], p->target_text);
			return 2;
		}
	}
	int failed = 0;
	for (int i = 0; i < count; i++)
		if (send_request(&probes[i]) < 0) {
			if (probes[i].fd >= 0) close(probes[i].fd);
			probes[i].fd = -1;
			failed = 1;
		}
	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd fds[PROBES_MAX];
		int waiting = 0;
		for (int i = 0; i < count; i++) {
			fds[i].fd = probes[i].fd >= 0 && !probes[i].answered ? probes[i].fd : -1;
			fds[i].events = POLLIN;
			fds[i].revents = 0;
			if (fds[i].fd >= 0) waiting++;
		}
		long long left = deadline - now_ms();
		if (waiting == 0 || left <= 0) break;
		if (poll(fds, count, (int)left) < 0 && errno != EINTR) break;
		for (int i = 0; i < count; i++)
			if (fds[i].revents & POLLIN) read_replies(&probes[i]);
	}
	for (int i = 0; i < count; i++) {
		if (probes[i].fd < 0) continue;
		printf("%s %s %d\n", probes[i].port, probes[i].target_text, probes[i].answered);
		close(probes[i].fd);
	}
	return failed;
}
