// cgfence DNS forwarding core: the UDP side of the agent's DNS proxy (issue 19).
//
// It owns the proxy's UDP listening sockets (one per listen address, one
// port) and runs their loop on a thread of its own (pthread) with batched
// receive and send (recvmmsg/sendmmsg). It forwards, with no JavaScript, only
// what needs no decision:
//   - a query whose question name is in the allowed-name cache Node filled
//     (dfc_allow) after its own decision, within the bounds the JavaScript
//     decoder keeps (dns-query.ts QUERY_CAPS: opcode QUERY, one question, no
//     answer/authority records, at most one additional and only an OPT,
//     4 KiB). Each such query leaves Node a notice (the query's header and
//     question, and who sent it) for the run tallies and attribution;
//   - its answer when every answer record is owned by the question (the
//     0xc00c pointer or the name written out) and none is a CNAME/DNAME, so
//     the chain check (dns-answer.ts) could only find the asked, already
//     allowed, name.
// Everything else (a new name, a listed name, anything odd, any other
// answer) is queued for Node (dfc_take), which decides with the proxy's own
// code (dns-proxy.ts) and replies through dfc_reply. A pipe becomes readable
// when the queue goes from empty to non-empty.
//
// The core answers by itself only to keep its bounds: SERVFAIL when Node's
// queue is full, when a client already has max_per_client queries in flight,
// when max_inflight are in flight, and when the upstream stays silent past
// timeout_ms; FORMERR to a query larger than 4 KiB.
//
// Every cap is fixed at open or compile time and documented in
// docs/operations.md ("The UDP forwarding core"): CACHE_SLOTS allowed names in
// NAME_ARENA bytes, max_inflight queries in flight (at most 65,535),
// QUEUE_SLOTS items waiting for Node of which BIG_SLOTS over 4 KiB,
// NOTICE_SLOTS notices, BATCH datagrams per system call.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_MSG 4096 /* QUERY_CAPS.maxMessageBytes */
#define MAX_ANSWER 65536
#define MAX_LISTEN 4
#define QCOPY 320 /* bytes of a query kept while it is in flight (header, question, OPT) */
#define CACHE_SLOTS (1 << 17) /* power of two; allowed names, wire form, lower case */
#define NAME_ARENA (8 << 20) /* their bytes; full: no more names cached until the next policy */
#define CACHE_PROBES 32
#define QUEUE_SLOTS 1024
#define BIG_SLOTS 16 /* items over MAX_MSG (answers up to 64 KiB) waiting for Node at once: 1 MiB */
#define NOTICE_SLOTS 8192
#define CLIENT_SLOTS 4096 /* in-flight counts per client (source address and port, hashed) */
#define MAX_ANSWER_RECORDS 256 /* ANSWER_CAPS.maxRecords */
#define MAX_BOUNDS 24
#define NO_SLOT 0xffff
#define SWEEP_MS 100

enum { KIND_QUERY = 1, KIND_ANSWER = 2, KIND_NOTICE = 3 };
enum {
  ST_RX, ST_FAST_FORWARDED, ST_HANDED_QUERIES, ST_FAST_ANSWERS, ST_HANDED_ANSWERS,
  ST_QUEUE_FULL, ST_CLIENT_SHED, ST_INFLIGHT_FULL, ST_TIMEOUTS, ST_STRAY, ST_TOO_LARGE,
  ST_NOTICES_FULL, ST_CACHE_FULL, ST_ANSWERS_UNCHECKED, ST_QUEUE_FULL_DROPPED, ST_INFLIGHT, ST_LAT_SUM_US, ST_COUNT
};

struct cache_entry { uint64_t hash; uint32_t off; uint16_t len; };
struct pending {
  struct sockaddr_in6 client; socklen_t client_len;
  uint16_t id; uint16_t client_id; uint16_t client_slot; uint16_t qlen; uint8_t sock;
  uint64_t qhash; uint64_t t0_ns;
  uint8_t q[QCOPY];
};
struct item {
  uint32_t kind, sock, addr_len; struct sockaddr_in6 addr;
  uint32_t len, qlen; int big; uint64_t t0_ns;
  uint8_t q[QCOPY];
  uint8_t data[MAX_MSG];
};
struct notice { uint32_t sock, addr_len; struct sockaddr_in6 addr; uint32_t qlen; uint64_t t0_ns; uint8_t q[QCOPY]; };

struct dfc {
  int nlisten, listen_fd[MAX_LISTEN], up_fd, notify_rd, notify_wr;
  uint32_t timeout_ms, max_inflight, max_per_client;
  uint64_t bounds_ns[MAX_BOUNDS]; int nbounds;
  pthread_t thread; volatile int stop;
  pthread_mutex_t lock; /* cache, pending, id_slot, free list, client loads, stats */
  struct cache_entry *cache;
  uint8_t *names; uint32_t names_used;
  struct pending *pending; /* max_inflight */
  uint16_t *id_slot; /* 65536: upstream id -> pending slot, or NO_SLOT */
  uint16_t *free_slots; uint32_t nfree;
  uint16_t client_load[CLIENT_SLOTS];
  uint64_t rng;
  pthread_mutex_t qlock; /* queue, notices */
  struct item *queue; uint32_t qhead, qcount;
  uint8_t *big; uint8_t big_used[BIG_SLOTS];
  struct notice *notices; uint32_t nhead, ncount;
  uint64_t stats[ST_COUNT];
  uint64_t lat[MAX_BOUNDS + 1];
  /* receive / send batches (used by the core thread only) */
  uint8_t rx[BATCH][MAX_MSG];
  uint8_t arx[BATCH][MAX_ANSWER]; /* an upstream answer may be up to 64 KiB (EDNS) */
  uint8_t local[BATCH][QCOPY + 16]; /* local answers of this batch */
  struct sockaddr_in6 rxaddr[BATCH];
  struct iovec rxiov[BATCH], txiov[BATCH], lociov[BATCH];
  struct sockaddr_in6 rep_to[BATCH]; socklen_t rep_tolen[BATCH]; uint8_t rep_sock[BATCH]; void *rep_buf[BATCH]; size_t rep_len[BATCH];
  struct mmsghdr rxm[BATCH], txm[BATCH], locm[BATCH];
};

static uint64_t now_ns(void) {
  struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
  return h;
}

static uint64_t next_random(struct dfc *c) { /* xorshift64*, seeded from getrandom */
  c->rng ^= c->rng >> 12; c->rng ^= c->rng << 25; c->rng ^= c->rng >> 27;
  return c->rng * 2685821657736338717ULL;
}

static void observe(struct dfc *c, uint64_t ns) { /* lock held */
  int i = 0;
  while (i < c->nbounds && ns > c->bounds_ns[i]) i++;
  c->lat[i]++;
  c->stats[ST_LAT_SUM_US] += ns / 1000;
}

/* The question name at offset 12 in wire form, uncompressed, lower-cased into out; its length, or -1. */
static int question_name(const uint8_t *m, size_t len, uint8_t *out) {
  size_t pos = 12, n = 0;
  for (;;) {
    if (pos >= len) return -1;
    uint8_t l = m[pos];
    if (l == 0) { out[n++] = 0; return (int)n; }
    if (l & 0xc0) return -1; /* pointer or extended label: Node's decoder decides */
    if (n + 1 + l + 1 > 255 || pos + 1 + l > len) return -1;
    out[n++] = l;
    for (uint8_t i = 1; i <= l; i++) { uint8_t ch = m[pos + i]; out[n++] = (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch; }
    pos += 1 + l;
  }
}

/* Hash of the question (lower-cased name, type, class) of a message; 0 with *qend unset when unreadable. */
static uint64_t question_hash(const uint8_t *m, size_t len, size_t *qend) {
  uint8_t name[256 + 4];
  int n = question_name(m, len, name);
  if (n < 0 || 12 + (size_t)n + 4 > len) return 0;
  memcpy(name + n, m + 12 + n, 4);
  *qend = 12 + (size_t)n + 4;
  return fnv(name, (size_t)n + 4);
}

static int cache_has(struct dfc *c, const uint8_t *name, int n, uint64_t h) {
  for (int i = 0; i < CACHE_PROBES; i++) {
    struct cache_entry *e = &c->cache[(h + i) & (CACHE_SLOTS - 1)];
    if (e->len == 0) return 0;
    if (e->hash == h && e->len == n && memcmp(c->names + e->off, name, n) == 0) return 1;
  }
  return 0;
}

/*
 * A query the core may forward without Node: opcode 0, QR clear, one
 * question, no answer/authority records, no additional or exactly one OPT
 * that ends the message. Returns the name length (lower-cased into name), or
 * -1; *opt is 0 (no OPT), 1 (OPT) or 3 (OPT with the DO bit).
 */
static int plain_query(const uint8_t *m, size_t len, uint8_t *name, int *opt) {
  *opt = 0;
  if (len < 12 || len > MAX_MSG) return -1;
  if (m[2] & 0xf8) return -1; /* QR or opcode != 0 */
  if (m[4] != 0 || m[5] != 1 || m[6] || m[7] || m[8] || m[9]) return -1;
  int n = question_name(m, len, name);
  if (n < 0) return -1;
  size_t end = 12 + n + 4;
  if (end > len) return -1;
  unsigned ar = (m[10] << 8) | m[11];
  if (ar == 0) return end == len ? n : -1;
  if (ar != 1) return -1;
  /* OPT: root owner, type 41, rdlength ending the message */
  if (end + 11 > len || m[end] != 0 || m[end + 1] != 0 || m[end + 2] != 41) return -1;
  unsigned rdlen = (m[end + 9] << 8) | m[end + 10];
  if (end + 11 + rdlen != len) return -1;
  *opt = (m[end + 7] & 0x80) ? 3 : 1;
  return n;
}

/*
 * A local answer (SERVFAIL, FORMERR) to the query q of qlen bytes whose
 * question ends at qend (12: none): the header with QR, RA and the rcode, the
 * question, and an OPT when the query had one (opt as plain_query). Returns its length.
 */
static size_t local_answer(const uint8_t *q, size_t qend, int opt, int rcode, uint8_t *out) {
  memcpy(out, q, 12);
  out[2] = (uint8_t)(0x80 | (q[2] & 0x79)); /* QR, opcode, RD */
  out[3] = (uint8_t)(0x80 | (q[3] & 0x10) | (rcode & 0xf)); /* RA, CD, rcode */
  out[4] = 0; out[5] = qend > 12 ? 1 : 0;
  out[6] = out[7] = out[8] = out[9] = 0; out[10] = 0; out[11] = opt ? 1 : 0;
  memcpy(out + 12, q + 12, qend - 12);
  size_t n = qend;
  if (opt) {
    const uint8_t rr[11] = { 0, 0, 41, 0x04, 0xd0, 0, 0, (uint8_t)(opt & 2 ? 0x80 : 0), 0, 0, 0 }; /* 1232-byte UDP size */
    memcpy(out + n, rr, 11); n += 11;
  }
  return n;
}

/* Keeps a query of len bytes (question ending at qend) in q: whole when it fits QCOPY, else header and question with no additional record. */
static size_t keep_query(uint8_t *q, const uint8_t *m, size_t len, size_t qend) {
  if (len <= QCOPY) { memcpy(q, m, len); return len; }
  memcpy(q, m, qend);
  q[10] = q[11] = 0;
  return qend;
}

/* Queues a datagram for Node (qlock taken here); wakes it when the queue was empty. 0, or -1 when full (counted by the caller). */
static int hand_over(struct dfc *c, uint32_t kind, int sock, const struct sockaddr_in6 *addr, socklen_t alen,
                     const uint8_t *m, size_t len, const uint8_t *q, size_t qlen, uint64_t t0) {
  if (len > MAX_ANSWER) return -1;
  pthread_mutex_lock(&c->qlock);
  int big = -1;
  if (len > MAX_MSG) {
    for (int b = 0; b < BIG_SLOTS; b++) if (!c->big_used[b]) { big = b; break; }
    if (big < 0) { pthread_mutex_unlock(&c->qlock); return -1; }
  }
  if (c->qcount >= QUEUE_SLOTS) { pthread_mutex_unlock(&c->qlock); return -1; }
  struct item *it = &c->queue[(c->qhead + c->qcount) % QUEUE_SLOTS];
  it->kind = kind; it->sock = (uint32_t)sock; it->addr_len = alen; memcpy(&it->addr, addr, alen);
  it->len = (uint32_t)len; it->big = big; it->t0_ns = t0; it->qlen = (uint32_t)qlen;
  if (qlen) memcpy(it->q, q, qlen);
  if (big >= 0) { c->big_used[big] = 1; memcpy(c->big + (size_t)big * MAX_ANSWER, m, len); }
  else memcpy(it->data, m, len);
  int wake = c->qcount++ == 0;
  pthread_mutex_unlock(&c->qlock);
  if (wake) { uint8_t b = 1; (void)!write(c->notify_wr, &b, 1); }
  return 0;
}

/* Leaves Node a notice of a query (question ending at qend) forwarded without it; -1 when the ring is full. */
static int notice(struct dfc *c, int sock, const struct sockaddr_in6 *addr, socklen_t alen, const uint8_t *m, size_t len, size_t qend, uint64_t t0) {
  pthread_mutex_lock(&c->qlock);
  if (c->ncount >= NOTICE_SLOTS) { pthread_mutex_unlock(&c->qlock); return -1; }
  struct notice *n = &c->notices[(c->nhead + c->ncount) % NOTICE_SLOTS];
  n->sock = (uint32_t)sock; n->addr_len = alen; memcpy(&n->addr, addr, alen);
  n->qlen = (uint32_t)keep_query(n->q, m, len, qend); n->t0_ns = t0;
  /* Notices are not urgent (Node also takes them every NOTICE_POLL_MS): a wake-up per query would cost
   * a pipe write, a read and a switch to Node's thread. Woken when the ring is half full. */
  int wake = ++c->ncount == NOTICE_SLOTS / 2 && c->qcount == 0;
  pthread_mutex_unlock(&c->qlock);
  if (wake) { uint8_t b = 1; (void)!write(c->notify_wr, &b, 1); }
  return 0;
}

static uint32_t client_slot(const struct sockaddr_in6 *a, socklen_t alen) {
  return (uint32_t)(fnv((const uint8_t *)a, alen) & (CLIENT_SLOTS - 1));
}

/* Takes a random free upstream id and a pending slot for a query (lock held); rewrites the id in place. -1 when none is free. */
static int admit(struct dfc *c, uint8_t *m, size_t len, int sock, const struct sockaddr_in6 *client, socklen_t alen, uint32_t cslot, uint64_t t0) {
  if (c->nfree == 0) return -1;
  uint16_t id;
  do id = (uint16_t)(next_random(c) >> 48); while (c->id_slot[id] != NO_SLOT); /* at most max_inflight of 65,536 taken */
  uint16_t s = c->free_slots[--c->nfree];
  struct pending *p = &c->pending[s];
  c->id_slot[id] = s;
  p->id = id; p->sock = (uint8_t)sock; memcpy(&p->client, client, alen); p->client_len = alen;
  p->client_id = (uint16_t)((m[0] << 8) | m[1]);
  p->client_slot = (uint16_t)cslot; c->client_load[cslot]++;
  size_t qend = 0;
  p->qhash = question_hash(m, len, &qend);
  p->qlen = (uint16_t)keep_query(p->q, m, len, qend);
  p->t0_ns = t0;
  m[0] = id >> 8; m[1] = id & 0xff;
  c->stats[ST_INFLIGHT]++;
  return s;
}

static void release(struct dfc *c, struct pending *p, uint16_t s) { /* lock held */
  c->id_slot[p->id] = NO_SLOT;
  if (c->client_load[p->client_slot]) c->client_load[p->client_slot]--;
  c->free_slots[c->nfree++] = s;
  c->stats[ST_INFLIGHT]--;
}

/* Whether the bytes at pos are the question's name (offset 12 to qname_end) written out, ASCII case aside. */
static int same_name(const uint8_t *m, size_t len, size_t pos, size_t qname_end) {
  size_t n = qname_end - 12;
  if (pos + n > len) return 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t a = m[pos + i], b = m[12 + i];
    if (a >= 'A' && a <= 'Z') a += 32;
    if (b >= 'A' && b <= 'Z') b += 32;
    if (a != b) return 0;
  }
  return 1;
}

/* An answer the core may pass without Node: every answer record's owner is the question (0xc00c, or its name written out), none a CNAME/DNAME. */
static int plain_answer(const uint8_t *m, size_t len, size_t qend) {
  if (len < 12 || m[4] != 0 || m[5] != 1) return 0;
  size_t qname_end = qend - 4, pos = qend;
  unsigned an = (m[6] << 8) | m[7];
  if (an > MAX_ANSWER_RECORDS) return 0;
  for (unsigned i = 0; i < an; i++) {
    size_t owner_end;
    if (pos + 2 <= len && m[pos] == 0xc0 && m[pos + 1] == 12) owner_end = pos + 2;
    else if (same_name(m, len, pos, qname_end)) owner_end = pos + (qname_end - 12);
    else return 0;
    if (owner_end + 10 > len) return 0;
    unsigned type = (m[owner_end] << 8) | m[owner_end + 1];
    if (type == 5 || type == 39) return 0;
    unsigned rdlen = (m[owner_end + 8] << 8) | m[owner_end + 9];
    pos = owner_end + 10 + rdlen;
    if (pos > len) return 0;
  }
  return 1;
}

static void flush(int fd, struct mmsghdr *mm, int n) {
  int off = 0;
  while (off < n) {
    int r = sendmmsg(fd, mm + off, (unsigned)(n - off), 0);
    if (r < 0) { if (errno == EINTR) continue; break; } /* EAGAIN/ENOBUFS: the rest is lost, as a datagram may be */
    off += r;
  }
}

static void add_tx(struct mmsghdr *mm, struct iovec *iov, int *n, void *buf, size_t len, void *to, socklen_t tolen) {
  iov[*n].iov_base = buf; iov[*n].iov_len = len;
  memset(&mm[*n].msg_hdr, 0, sizeof mm[*n].msg_hdr);
  mm[*n].msg_hdr.msg_name = to; mm[*n].msg_hdr.msg_namelen = tolen;
  mm[*n].msg_hdr.msg_iov = &iov[*n]; mm[*n].msg_hdr.msg_iovlen = 1;
  (*n)++;
}

/* A local answer to query i of this batch, sent back with the batch's replies. */
static void answer_locally(struct dfc *c, int i, int *nloc, const uint8_t *m, size_t len, int rcode) {
  uint8_t name[256]; int opt = 0;
  int nl = plain_query(m, len, name, &opt);
  size_t qend = nl >= 0 ? 12 + (size_t)nl + 4 : 12;
  if (nl < 0) { opt = 0; size_t e = 0; if (len <= MAX_MSG && question_hash(m, len, &e) != 0) qend = e; }
  if (qend > QCOPY) qend = 12;
  size_t n = local_answer(m, qend, opt, rcode, c->local[*nloc]);
  add_tx(c->locm, c->lociov, nloc, c->local[*nloc], n, &c->rxaddr[i], c->rxm[i].msg_hdr.msg_namelen);
}

static void on_queries(struct dfc *c, int sock) {
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      c->rxiov[i].iov_base = c->rx[i]; c->rxiov[i].iov_len = MAX_MSG;
      memset(&c->rxm[i].msg_hdr, 0, sizeof c->rxm[i].msg_hdr);
      c->rxm[i].msg_hdr.msg_name = &c->rxaddr[i]; c->rxm[i].msg_hdr.msg_namelen = sizeof c->rxaddr[i];
      c->rxm[i].msg_hdr.msg_iov = &c->rxiov[i]; c->rxm[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(c->listen_fd[sock], c->rxm, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    uint64_t t0 = now_ns();
    int out = 0, nloc = 0;
    uint8_t name[256];
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < n; i++) {
      c->stats[ST_RX]++;
      size_t len = c->rxm[i].msg_len;
      socklen_t alen = c->rxm[i].msg_hdr.msg_namelen;
      uint8_t *m = c->rx[i];
      if (c->rxm[i].msg_hdr.msg_flags & MSG_TRUNC) { /* larger than any query the decoder takes */
        if (len >= 12 && !(m[2] & 0x80)) { c->stats[ST_TOO_LARGE]++; answer_locally(c, i, &nloc, m, 12, 1); }
        continue;
      }
      int opt;
      int nl = plain_query(m, len, name, &opt);
      int fast = nl >= 0 && cache_has(c, name, nl, fnv(name, (size_t)nl));
      uint32_t cslot = 0;
      if (fast) {
        cslot = client_slot(&c->rxaddr[i], alen);
        if (c->client_load[cslot] >= c->max_per_client) { c->stats[ST_CLIENT_SHED]++; answer_locally(c, i, &nloc, m, len, 2); continue; }
        if (c->nfree == 0) { c->stats[ST_INFLIGHT_FULL]++; answer_locally(c, i, &nloc, m, len, 2); continue; }
        if (notice(c, sock, &c->rxaddr[i], alen, m, len, 12 + (size_t)nl + 4, t0) < 0) { c->stats[ST_NOTICES_FULL]++; fast = 0; }
      }
      if (!fast) {
        if (hand_over(c, KIND_QUERY, sock, &c->rxaddr[i], alen, m, len, NULL, 0, t0) == 0) c->stats[ST_HANDED_QUERIES]++;
        else if (len < 12 || (m[2] & 0x80)) c->stats[ST_QUEUE_FULL_DROPPED]++; /* not a query: never answered */
        else { c->stats[ST_QUEUE_FULL]++; answer_locally(c, i, &nloc, m, len, 2); }
        continue;
      }
      admit(c, m, len, sock, &c->rxaddr[i], alen, cslot, t0);
      c->stats[ST_FAST_FORWARDED]++;
      add_tx(c->txm, c->txiov, &out, m, len, NULL, 0);
    }
    if (nloc) { uint64_t t = now_ns(); for (int k = 0; k < nloc; k++) observe(c, t - t0); }
    pthread_mutex_unlock(&c->lock);
    flush(c->up_fd, c->txm, out);
    flush(c->listen_fd[sock], c->locm, nloc);
    if (n < BATCH) return;
  }
}

/* The batch's replies (c->rep*), sent from the socket each query came in on. */
static void flush_replies(struct dfc *c, int out) {
  for (int s = 0; s < c->nlisten; s++) {
    int k = 0;
    for (int i = 0; i < out; i++) if (c->rep_sock[i] == s) add_tx(c->txm, c->txiov, &k, c->rep_buf[i], c->rep_len[i], &c->rep_to[i], c->rep_tolen[i]);
    flush(c->listen_fd[s], c->txm, k);
  }
}

static void on_answers(struct dfc *c) {
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      c->rxiov[i].iov_base = c->arx[i]; c->rxiov[i].iov_len = MAX_ANSWER;
      memset(&c->rxm[i].msg_hdr, 0, sizeof c->rxm[i].msg_hdr);
      c->rxm[i].msg_hdr.msg_iov = &c->rxiov[i]; c->rxm[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(c->up_fd, c->rxm, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    uint64_t t = now_ns();
    int out = 0;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < n; i++) {
      size_t len = c->rxm[i].msg_len;
      uint8_t *m = c->arx[i];
      if (len < 12 || (c->rxm[i].msg_hdr.msg_flags & MSG_TRUNC)) { c->stats[ST_STRAY]++; continue; }
      uint16_t id = (uint16_t)((m[0] << 8) | m[1]);
      uint16_t s = c->id_slot[id];
      if (s == NO_SLOT) { c->stats[ST_STRAY]++; continue; }
      struct pending *p = &c->pending[s];
      size_t qend = 0;
      /* the question must be the one sent (a late or forged datagram with a reused id is not its answer) */
      if (question_hash(m, len, &qend) != p->qhash) { c->stats[ST_STRAY]++; continue; }
      int plain = plain_answer(m, len, qend);
      m[0] = p->client_id >> 8; m[1] = p->client_id & 0xff;
      memcpy(&c->rep_to[out], &p->client, p->client_len); c->rep_tolen[out] = p->client_len; c->rep_sock[out] = p->sock;
      if (!plain) {
        if (hand_over(c, KIND_ANSWER, p->sock, &p->client, p->client_len, m, len, p->q, p->qlen, p->t0_ns) == 0) {
          c->stats[ST_HANDED_ANSWERS]++; /* Node observes its latency when it answers */
          release(c, p, s);
          continue;
        }
        /* Node cannot check it (its queue is full): SERVFAIL, never an unchecked answer */
        c->stats[ST_ANSWERS_UNCHECKED]++;
        uint8_t name[256]; int opt = 0;
        int nl = plain_query(p->q, p->qlen, name, &opt);
        observe(c, t - p->t0_ns);
        c->rep_buf[out] = c->local[out];
        c->rep_len[out] = local_answer(p->q, nl >= 0 ? 12 + (size_t)nl + 4 : 12, nl >= 0 ? opt : 0, 2, c->local[out]);
        release(c, p, s);
        out++;
        continue;
      }
      observe(c, t - p->t0_ns);
      release(c, p, s);
      c->stats[ST_FAST_ANSWERS]++;
      c->rep_buf[out] = m; c->rep_len[out] = len;
      out++;
    }
    pthread_mutex_unlock(&c->lock);
    flush_replies(c, out);
    if (n < BATCH) return;
  }
}

/* Answers SERVFAIL for queries the upstream never answered within timeout_ms and frees their ids (counted). */
static void sweep(struct dfc *c) {
  uint64_t now = now_ns(), limit = (uint64_t)c->timeout_ms * 1000000ULL;
  uint8_t out[QCOPY + 16];
  pthread_mutex_lock(&c->lock);
  for (uint32_t s = 0; c->stats[ST_INFLIGHT] > 0 && s < c->max_inflight; s++) {
    struct pending *p = &c->pending[s];
    if (c->id_slot[p->id] != s || now - p->t0_ns <= limit) continue;
    c->stats[ST_TIMEOUTS]++;
    uint8_t name[256]; int opt = 0;
    int nl = plain_query(p->q, p->qlen, name, &opt);
    size_t n = local_answer(p->q, nl >= 0 ? 12 + (size_t)nl + 4 : 12, nl >= 0 ? opt : 0, 2, out);
    (void)!sendto(c->listen_fd[p->sock], out, n, 0, (struct sockaddr *)&p->client, p->client_len);
    observe(c, now - p->t0_ns);
    release(c, p, (uint16_t)s);
  }
  pthread_mutex_unlock(&c->lock);
}

static void *loop(void *arg) {
  struct dfc *c = arg;
  struct pollfd fds[MAX_LISTEN + 1];
  for (int s = 0; s < c->nlisten; s++) fds[s] = (struct pollfd){ .fd = c->listen_fd[s], .events = POLLIN };
  fds[c->nlisten] = (struct pollfd){ .fd = c->up_fd, .events = POLLIN };
  uint64_t last_sweep = now_ns();
  while (!c->stop) {
    int r = poll(fds, (nfds_t)c->nlisten + 1, SWEEP_MS);
    if (r > 0) {
      if (fds[c->nlisten].revents & POLLIN) on_answers(c);
      for (int s = 0; s < c->nlisten; s++) if (fds[s].revents & POLLIN) on_queries(c, s);
    }
    if (now_ns() - last_sweep >= SWEEP_MS * 1000000ULL) { sweep(c); last_sweep = now_ns(); }
  }
  return NULL;
}

static int parse_addr(const char *ip, uint16_t port, struct sockaddr_in6 *out, socklen_t *len) {
  memset(out, 0, sizeof *out);
  struct sockaddr_in *v4 = (struct sockaddr_in *)out;
  if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) { v4->sin_family = AF_INET; v4->sin_port = htons(port); *len = sizeof *v4; return AF_INET; }
  if (inet_pton(AF_INET6, ip, &out->sin6_addr) == 1) { out->sin6_family = AF_INET6; out->sin6_port = htons(port); *len = sizeof *out; return AF_INET6; }
  return -1;
}

static void free_core(struct dfc *c) {
  for (int s = 0; s < c->nlisten; s++) if (c->listen_fd[s] >= 0) close(c->listen_fd[s]);
  if (c->up_fd >= 0) close(c->up_fd);
  if (c->notify_rd >= 0) close(c->notify_rd);
  if (c->notify_wr >= 0) close(c->notify_wr);
  free(c->cache); free(c->names); free(c->pending); free(c->id_slot); free(c->free_slots);
  free(c->queue); free(c->big); free(c->notices); free(c);
}

static int open_socket(int family, int rcvbuf) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &rcvbuf, sizeof rcvbuf) < 0 ||
      (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)) { int e = errno; close(fd); errno = e; return -1; }
  return fd;
}

/*
 * Binds the listen addresses (comma-separated IP literals, at most
 * MAX_LISTEN) on one port (0: the first picks, the others take the same),
 * connects the upstream socket and starts the thread; NULL with errno set on
 * failure (EADDRINUSE when a picked port is taken on another address).
 * bounds_ns: the latency histogram's upper bounds.
 */
struct dfc *dfc_open(const char *listen_csv, int port, const char *up_ip, int up_port, int timeout_ms, int max_inflight,
                     int max_per_client, const double *bounds_ms, int nbounds) {
  struct sockaddr_in6 ua; socklen_t ul;
  int uf = parse_addr(up_ip, (uint16_t)up_port, &ua, &ul);
  if (uf < 0 || max_inflight < 1 || max_inflight > 65535 || max_per_client < 1 || nbounds < 0 || nbounds > MAX_BOUNDS || !listen_csv) { errno = EINVAL; return NULL; }
  struct dfc *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->up_fd = c->notify_rd = c->notify_wr = -1;
  c->max_inflight = (uint32_t)max_inflight; c->max_per_client = (uint32_t)max_per_client; c->timeout_ms = (uint32_t)timeout_ms;
  c->nbounds = nbounds;
  for (int i = 0; i < nbounds; i++) c->bounds_ns[i] = (uint64_t)(bounds_ms[i] * 1e6);
  c->cache = calloc(CACHE_SLOTS, sizeof *c->cache);
  c->names = malloc(NAME_ARENA);
  c->pending = calloc((size_t)max_inflight, sizeof *c->pending);
  c->id_slot = malloc(65536 * sizeof *c->id_slot);
  c->free_slots = malloc((size_t)max_inflight * sizeof *c->free_slots);
  c->queue = calloc(QUEUE_SLOTS, sizeof *c->queue);
  c->big = malloc((size_t)BIG_SLOTS * MAX_ANSWER);
  c->notices = calloc(NOTICE_SLOTS, sizeof *c->notices);
  if (!c->cache || !c->names || !c->pending || !c->id_slot || !c->free_slots || !c->queue || !c->big || !c->notices) { free_core(c); errno = ENOMEM; return NULL; }
  memset(c->id_slot, 0xff, 65536 * sizeof *c->id_slot);
  for (int s = 0; s < max_inflight; s++) c->free_slots[s] = (uint16_t)(max_inflight - 1 - s);
  c->nfree = (uint32_t)max_inflight;
  if (getrandom(&c->rng, sizeof c->rng, 0) != sizeof c->rng || c->rng == 0) c->rng = now_ns() | 1;
  const int bufsize = 4 << 20;
  char addr[64];
  const char *p = listen_csv;
  uint16_t bound_port = (uint16_t)port;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == 0 || n >= sizeof addr || c->nlisten == MAX_LISTEN) { free_core(c); errno = EINVAL; return NULL; }
    memcpy(addr, p, n); addr[n] = 0;
    struct sockaddr_in6 la; socklen_t ll;
    int lf = parse_addr(addr, bound_port, &la, &ll);
    if (lf < 0) { free_core(c); errno = EINVAL; return NULL; }
    int fd = open_socket(lf, bufsize);
    if (fd < 0) { int e = errno; free_core(c); errno = e; return NULL; }
    c->listen_fd[c->nlisten++] = fd;
    if (bind(fd, (struct sockaddr *)&la, ll) < 0) { int e = errno; free_core(c); errno = e; return NULL; }
    if (bound_port == 0) {
      struct sockaddr_in6 a; socklen_t l = sizeof a;
      if (getsockname(fd, (struct sockaddr *)&a, &l) < 0) { int e = errno; free_core(c); errno = e; return NULL; }
      bound_port = ntohs(a.sin6_port); /* sin_port and sin6_port sit at the same offset */
    }
    p = end ? end + 1 : p + n;
  }
  if (c->nlisten == 0) { free_core(c); errno = EINVAL; return NULL; }
  int pipefd[2];
  c->up_fd = open_socket(uf, bufsize);
  if (c->up_fd < 0 || connect(c->up_fd, (struct sockaddr *)&ua, ul) < 0 || pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
    int e = errno; free_core(c); errno = e; return NULL;
  }
  c->notify_rd = pipefd[0]; c->notify_wr = pipefd[1];
  pthread_mutex_init(&c->lock, NULL);
  pthread_mutex_init(&c->qlock, NULL);
  int e = pthread_create(&c->thread, NULL, loop, c);
  if (e != 0) { pthread_mutex_destroy(&c->lock); pthread_mutex_destroy(&c->qlock); free_core(c); errno = e; return NULL; }
  return c;
}

int dfc_port(struct dfc *c) {
  struct sockaddr_in6 a; socklen_t l = sizeof a;
  if (getsockname(c->listen_fd[0], (struct sockaddr *)&a, &l) < 0) return -1;
  return ntohs(a.sin6_port);
}

int dfc_notify_fd(struct dfc *c) { return c->notify_rd; }

/* Caches the question name of a query Node allowed; 0, 1 when it does not qualify (compressed), -1 when the cache is full (counted). */
int dfc_allow(struct dfc *c, const uint8_t *m, int len) {
  uint8_t name[256];
  int n = question_name(m, (size_t)len, name);
  if (n < 0) return 1;
  uint64_t h = fnv(name, (size_t)n);
  int r = -1;
  pthread_mutex_lock(&c->lock);
  for (int i = 0; i < CACHE_PROBES; i++) {
    struct cache_entry *e = &c->cache[(h + i) & (CACHE_SLOTS - 1)];
    if (e->len == n && e->hash == h && memcmp(c->names + e->off, name, (size_t)n) == 0) { r = 0; break; }
    if (e->len == 0) {
      if (c->names_used + (uint32_t)n > NAME_ARENA) break;
      memcpy(c->names + c->names_used, name, (size_t)n);
      e->off = c->names_used; e->hash = h; e->len = (uint16_t)n;
      c->names_used += (uint32_t)n;
      r = 0; break;
    }
  }
  if (r < 0) c->stats[ST_CACHE_FULL]++;
  pthread_mutex_unlock(&c->lock);
  return r;
}

/* Empties the allowed cache (a new policy): from its return on, every name goes to Node until it allows it again. */
void dfc_clear(struct dfc *c) {
  pthread_mutex_lock(&c->lock);
  memset(c->cache, 0, CACHE_SLOTS * sizeof *c->cache);
  c->names_used = 0;
  pthread_mutex_unlock(&c->lock);
}

#define TAKE_HEADER 56
/*
 * Copies queued items, then notices, into out (cap bytes), each as
 * kind u32, sock u32, addr_len u32, addr[28], len u32, qlen u32, age_us u32,
 * reserved u32, data[len] padded to 4, query[qlen] padded to 4 (for a
 * notice, data is the query and qlen 0); returns the bytes written. Drains
 * the wake-up pipe first. cap must hold at least one item of the largest size
 * (56 + 65,536 + 320 bytes).
 */
int dfc_take(struct dfc *c, uint8_t *out, int cap) {
  uint8_t drain[64];
  while (read(c->notify_rd, drain, sizeof drain) > 0) {}
  int w = 0;
  uint64_t now = now_ns();
  uint32_t zero = 0;
  pthread_mutex_lock(&c->qlock);
  while (c->qcount > 0) {
    struct item *it = &c->queue[c->qhead];
    int need = TAKE_HEADER + (int)((it->len + 3) & ~3u) + (int)((it->qlen + 3) & ~3u);
    if (w + need > cap) break;
    uint32_t age = (uint32_t)((now - it->t0_ns) / 1000);
    memcpy(out + w, &it->kind, 4); memcpy(out + w + 4, &it->sock, 4); memcpy(out + w + 8, &it->addr_len, 4);
    memcpy(out + w + 12, &it->addr, 28); memcpy(out + w + 40, &it->len, 4); memcpy(out + w + 44, &it->qlen, 4);
    memcpy(out + w + 48, &age, 4); memcpy(out + w + 52, &zero, 4);
    if (it->big >= 0) { memcpy(out + w + TAKE_HEADER, c->big + (size_t)it->big * MAX_ANSWER, it->len); c->big_used[it->big] = 0; }
    else memcpy(out + w + TAKE_HEADER, it->data, it->len);
    memcpy(out + w + TAKE_HEADER + ((it->len + 3) & ~3u), it->q, it->qlen);
    w += need;
    c->qhead = (c->qhead + 1) % QUEUE_SLOTS; c->qcount--;
  }
  while (c->ncount > 0) {
    struct notice *n = &c->notices[c->nhead];
    int need = TAKE_HEADER + (int)((n->qlen + 3) & ~3u);
    if (w + need > cap) break;
    uint32_t kind = KIND_NOTICE, age = (uint32_t)((now - n->t0_ns) / 1000);
    memcpy(out + w, &kind, 4); memcpy(out + w + 4, &n->sock, 4); memcpy(out + w + 8, &n->addr_len, 4);
    memcpy(out + w + 12, &n->addr, 28); memcpy(out + w + 40, &n->qlen, 4); memcpy(out + w + 44, &zero, 4);
    memcpy(out + w + 48, &age, 4); memcpy(out + w + 52, &zero, 4);
    memcpy(out + w + TAKE_HEADER, n->q, n->qlen);
    w += need;
    c->nhead = (c->nhead + 1) % NOTICE_SLOTS; c->ncount--;
  }
  pthread_mutex_unlock(&c->qlock);
  return w;
}

/* Node's answer to a client, from the listening socket its query came in on. */
int dfc_reply(struct dfc *c, int sock, const uint8_t *addr, int alen, const uint8_t *m, int len) {
  if (sock < 0 || sock >= c->nlisten || alen <= 0 || alen > (int)sizeof(struct sockaddr_in6)) { errno = EINVAL; return -1; }
  return sendto(c->listen_fd[sock], m, (size_t)len, 0, (const struct sockaddr *)addr, (socklen_t)alen) < 0 ? -1 : 0;
}

/* The counters (ST_* order), then the latency buckets (nbounds + 1). */
void dfc_stats(struct dfc *c, uint64_t *out) {
  pthread_mutex_lock(&c->lock);
  for (int i = 0; i < ST_COUNT; i++) out[i] = c->stats[i];
  for (int i = 0; i <= c->nbounds; i++) out[ST_COUNT + i] = c->lat[i];
  pthread_mutex_unlock(&c->lock);
}

void dfc_close(struct dfc *c) {
  c->stop = 1;
  pthread_join(c->thread, NULL);
  pthread_mutex_destroy(&c->lock); pthread_mutex_destroy(&c->qlock);
  free_core(c);
}
