/*
 * tickle-ack: sends TCP "tickle" ACKs, so that clients of a VIP that moved learn at once that their
 * connections are gone. Each ACK goes from VIP:port to client:port with sequence and acknowledgement
 * numbers 0; the client, seeing a segment outside its window, answers with an ACK carrying its real
 * numbers; the VIP's new holder has no such connection and answers that with a RST, which the client
 * accepts. Node has no raw sockets, hence this program (built by src/net/native-build.ts).
 *
 * Usage: tickle-ack ROUNDS SRC_IP:PORT DST_IP:PORT [SRC_IP:PORT DST_IP:PORT ...]
 * Sends every pair's ACK once per round, round after round (so a burst lost on the wire takes one
 * copy of each, not every copy of some). Prints "sent N of M". Exit 0: all sent; 1: some sendto
 * failed (each said on stderr); 2: usage. Needs CAP_NET_RAW.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ROUNDS_MAX 10
#define PAIRS_MAX 65536
#define TICKLE_WINDOW 1024

struct packet {
  struct iphdr ip;
  struct tcphdr tcp;
};

/* The Internet checksum (RFC 1071) of `length` bytes, continuing from the partial `sum`. */
static uint32_t sum_words(const void *data, size_t length, uint32_t sum) {
  const uint8_t *bytes = data;
  for (size_t i = 0; i + 1 < length; i += 2) sum += (uint32_t)(bytes[i] << 8 | bytes[i + 1]);
  if (length % 2 == 1) sum += (uint32_t)(bytes[length - 1] << 8);
  return sum;
}

static uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons((uint16_t)~sum);
}

/* "a.b.c.d:port" into network-order address and port; 0 on success. */
static int parse_endpoint(const char *text, struct in_addr *address, uint16_t *port) {
  char host[INET_ADDRSTRLEN];
  const char *colon = strrchr(text, ':');
  if (colon == NULL || (size_t)(colon - text) >= sizeof host) return -1;
  memcpy(host, text, (size_t)(colon - text));
  host[colon - text] = '\0';
  char *end = NULL;
  unsigned long value = strtoul(colon + 1, &end, 10);
  if (inet_pton(AF_INET, host, address) != 1 || *end != '\0' || end == colon + 1 || value == 0 ||
      value > 65535)
    return -1;
  *port = htons((uint16_t)value);
  return 0;
}

static void build(struct packet *p, struct in_addr src, uint16_t sport, struct in_addr dst, uint16_t dport) {
  memset(p, 0, sizeof *p);
  p->ip.version = 4;
  p->ip.ihl = sizeof p->ip / 4;
  p->ip.tot_len = htons(sizeof *p);
  p->ip.ttl = 64;
  p->ip.protocol = IPPROTO_TCP;
  p->ip.saddr = src.s_addr;
  p->ip.daddr = dst.s_addr;
  p->ip.check = fold(sum_words(&p->ip, sizeof p->ip, 0));
  p->tcp.source = sport;
  p->tcp.dest = dport;
  p->tcp.doff = sizeof p->tcp / 4;
  p->tcp.ack = 1;
  p->tcp.window = htons(TICKLE_WINDOW);
  /* The pseudo-header: source, destination, zero, protocol, TCP length. */
  uint32_t sum = sum_words(&p->ip.saddr, 8, 0);
  sum += IPPROTO_TCP + sizeof p->tcp;
  p->tcp.check = fold(sum_words(&p->tcp, sizeof p->tcp, sum));
}

int main(int argc, char **argv) {
  char *end = NULL;
  long rounds = argc > 1 ? strtol(argv[1], &end, 10) : 0;
  int pairs = (argc - 2) / 2;
  if (argc < 4 || argc % 2 != 0 || *end != '\0' || rounds < 1 || rounds > ROUNDS_MAX || pairs > PAIRS_MAX) {
    fprintf(stderr, "usage: %s ROUNDS(1-%d) SRC_IP:PORT DST_IP:PORT [...] (at most %d pairs)\n", argv[0],
            ROUNDS_MAX, PAIRS_MAX);
    return 2;
  }
  struct packet *packets = calloc((size_t)pairs, sizeof *packets);
  if (packets == NULL) {
    fprintf(stderr, "out of memory for %d packets\n", pairs);
    return 1;
  }
  for (int i = 0; i < pairs; i++) {
    struct in_addr src, dst;
    uint16_t sport, dport;
    if (parse_endpoint(argv[2 + 2 * i], &src, &sport) != 0 ||
        parse_endpoint(argv[3 + 2 * i], &dst, &dport) != 0) {
      fprintf(stderr, "not IPV4:PORT IPV4:PORT: %s %s\n", argv[2 + 2 * i], argv[3 + 2 * i]);
      return 2;
    }
    build(&packets[i], src, sport, dst, dport);
  }
  /* IPPROTO_RAW implies IP_HDRINCL: the kernel sends our header as it is. */
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) {
    fprintf(stderr, "raw socket: %s (tickle ACKs need CAP_NET_RAW)\n", strerror(errno));
    return 1;
  }
  long sent = 0;
  for (long round = 0; round < rounds; round++) {
    for (int i = 0; i < pairs; i++) {
      struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = packets[i].ip.daddr};
      if (sendto(fd, &packets[i], sizeof packets[i], 0, (struct sockaddr *)&to, sizeof to) ==
          (ssize_t)sizeof packets[i])
        sent++;
      else
        fprintf(stderr, "sendto %s %s: %s\n", argv[2 + 2 * i], argv[3 + 2 * i], strerror(errno));
    }
  }
  close(fd);
  free(packets);
  printf("sent %ld of %ld\n", sent, rounds * pairs);
  return sent == rounds * pairs ? 0 : 1;
}
