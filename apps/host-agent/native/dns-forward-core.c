// cgfence DNS forwarding core (issue 19, benchmark prototype; not in the agent's path).
//
// A UDP forwarder that runs its socket loop on a thread of its own
// (pthread) with batched receive and send (recvmmsg/sendmmsg), and forwards
// without Node only what needs no decision:
//   - a query whose question name is in the allowed-name cache Node filled
//     (dfc_allow), within the same bounds the JavaScript decoder keeps
//     (dns-query.ts QUERY_CAPS: one question, no answer/authority records, at
//     most one additional and only an OPT, 4 KiB);
//   - an answer whose answer-section records all have the question as owner
//     (the 0xc00c pointer or the name written out) and no CNAME/DNAME: the chain check
//     (dns-answer.ts) could only find the asked, already allowed, name.
// Everything else (a new name, a listed name, anything odd, any other
// answer) is queued for Node (dfc_take), which decides with the real policy
// code and replies (dfc_reply) or forwards (dfc_forward). A pipe becomes
// readable when the queue goes from empty to non-empty.
//
// Every cap is fixed at compile time: CACHE_SLOTS allowed names in
// NAME_ARENA bytes (about 11 MiB in all), 65,536
// queries in flight (one per upstream id), QUEUE_SLOTS items waiting for Node
// of which BIG_SLOTS over 4 KiB (beyond: dropped and counted), BATCH
// datagrams per system call.
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_MSG 4096
#define MAX_ANSWER 65536
#define CACHE_SLOTS (1 << 17) /* power of two; allowed names, wire form, lower case */
#define NAME_ARENA (8 << 20) /* their bytes; full: no more names cached until the next policy */
#define CACHE_PROBES 16
#define QUEUE_SLOTS 1024
#define BIG_SLOTS 16 /* items over MAX_MSG (answers up to 64 KiB) waiting for Node at once: 1 MiB */
#define MAX_ANSWER_RECORDS 256

enum { KIND_QUERY = 1, KIND_ANSWER = 2 };
enum {
  ST_RX_QUERIES, ST_FAST_FORWARDED, ST_HANDED_QUERIES, ST_FAST_ANSWERS, ST_HANDED_ANSWERS,
  ST_QUEUE_DROPS, ST_TIMEOUTS, ST_STRAY_ANSWERS, ST_INFLIGHT_FULL, ST_COUNT
};

struct cache_entry { uint64_t hash; uint32_t off; uint16_t len; };
struct pending {
  struct sockaddr_in6 client; socklen_t client_len;
  uint16_t client_id; uint8_t used; uint64_t qhash; uint64_t sent_ms;
};
struct item { uint32_t kind; uint32_t addr_len; struct sockaddr_in6 addr; uint32_t len; int big; uint8_t data[MAX_MSG]; };

struct dfc {
  int client_fd, up_fd, notify_rd, notify_wr;
  uint32_t timeout_ms;
  pthread_t thread; volatile int stop;
  pthread_mutex_t lock; /* cache, pending, next_id */
  struct cache_entry *cache;
  uint8_t *names; uint32_t names_used;
  struct pending *pending; /* 65536 */
  uint16_t next_id;
  pthread_mutex_t qlock; /* queue */
  struct item *queue; uint32_t qhead, qcount;
  uint8_t *big; uint8_t big_used[BIG_SLOTS];
  uint64_t stats[ST_COUNT];
  /* receive / send batches (used by the core thread only) */
  uint8_t rx[BATCH][MAX_MSG];
  uint8_t arx[BATCH][MAX_ANSWER]; /* an upstream answer may be up to 64 KiB (EDNS) */
  struct sockaddr_in6 rxaddr[BATCH];
  struct iovec rxiov[BATCH], txiov[BATCH];
  struct mmsghdr rxm[BATCH], txm[BATCH];
};

static uint64_t now_ms(void) {
  struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
  return h;
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
    for (uint8_t i = 1; i <= l; i++) { uint8_t c = m[pos + i]; out[n++] = (c >= 'A' && c <= 'Z') ? c + 32 : c; }
    pos += 1 + l;
  }
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
 * that ends the message. Returns the name length (lower-cased into name), or -1.
 */
static int plain_query(const uint8_t *m, size_t len, uint8_t *name) {
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
  return end + 11 + rdlen == len ? n : -1;
}

/*
 * Queues a datagram for Node; wakes it when the queue was empty. Up to
 * MAX_MSG bytes are held in the queue slot, longer ones (answers) in one of
 * BIG_SLOTS buffers; with none free, dropped and counted.
 */
static void hand_over(struct dfc *c, uint32_t kind, const struct sockaddr_in6 *addr, socklen_t alen, const uint8_t *m, size_t len) {
  if (len > MAX_ANSWER) { c->stats[ST_QUEUE_DROPS]++; return; }
  pthread_mutex_lock(&c->qlock);
  int big = -1;
  if (len > MAX_MSG) {
    for (int b = 0; b < BIG_SLOTS; b++) if (!c->big_used[b]) { big = b; break; }
    if (big < 0) { pthread_mutex_unlock(&c->qlock); c->stats[ST_QUEUE_DROPS]++; return; }
  }
  if (c->qcount >= QUEUE_SLOTS) { pthread_mutex_unlock(&c->qlock); c->stats[ST_QUEUE_DROPS]++; return; }
  struct item *it = &c->queue[(c->qhead + c->qcount) % QUEUE_SLOTS];
  it->kind = kind; it->addr_len = alen; memcpy(&it->addr, addr, alen); it->len = (uint32_t)len; it->big = big;
  if (big >= 0) { c->big_used[big] = 1; memcpy(c->big + (size_t)big * MAX_ANSWER, m, len); }
  else memcpy(it->data, m, len);
  int wake = c->qcount++ == 0;
  pthread_mutex_unlock(&c->qlock);
  if (wake) { uint8_t b = 1; (void)!write(c->notify_wr, &b, 1); }
}

/* Takes an upstream id for a query from client (lock held); rewrites the id in place. -1 when all 65,536 are in flight. */
static int admit(struct dfc *c, uint8_t *m, size_t len, const struct sockaddr_in6 *client, socklen_t alen, int name_len) {
  for (int tries = 0; tries < 65536; tries++) {
    uint16_t id = c->next_id++;
    struct pending *p = &c->pending[id];
    if (p->used) continue;
    p->used = 1; memcpy(&p->client, client, alen); p->client_len = alen;
    p->client_id = (uint16_t)((m[0] << 8) | m[1]);
    p->qhash = fnv(m + 12, (size_t)name_len + 4);
    p->sent_ms = now_ms();
    m[0] = id >> 8; m[1] = id & 0xff;
    (void)len;
    return id;
  }
  c->stats[ST_INFLIGHT_FULL]++;
  return -1;
}

/* Whether the bytes at pos are the question's name (offset 12 to qend) written out, ASCII case aside. */
static int same_name(const uint8_t *m, size_t len, size_t pos, size_t qend) {
  size_t n = qend - 12;
  if (pos + n > len) return 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t a = m[pos + i], b = m[12 + i];
    if (a >= 'A' && a <= 'Z') a += 32;
    if (b >= 'A' && b <= 'Z') b += 32;
    if (a != b) return 0;
  }
  return 1;
}

/*
 * An answer the core may pass without Node: its question matches what was
 * sent (hash of the name as sent and type/class) and every answer record's
 * owner is the question (0xc00c, or its name written out) with a type other
 * than CNAME/DNAME.
 */
static int plain_answer(const uint8_t *m, size_t len, uint64_t qhash) {
  if (len < 12 || m[4] != 0 || m[5] != 1) return 0;
  size_t pos = 12;
  for (;;) { /* the question name, uncompressed */
    if (pos >= len) return 0;
    uint8_t l = m[pos];
    if (l == 0) { pos++; break; }
    if (l & 0xc0) return 0;
    pos += 1 + l;
  }
  size_t qend = pos; /* just past the question name's root label */
  if (pos + 4 > len || fnv(m + 12, pos + 4 - 12) != qhash) return 0;
  pos += 4;
  unsigned an = (m[6] << 8) | m[7];
  if (an > MAX_ANSWER_RECORDS) return 0;
  for (unsigned i = 0; i < an; i++) {
    /* the owner: a pointer to the question, or the question's name written out (ASCII case aside) */
    size_t owner_end;
    if (pos + 2 <= len && m[pos] == 0xc0 && m[pos + 1] == 12) owner_end = pos + 2;
    else if (same_name(m, len, pos, qend)) owner_end = pos + (qend - 12);
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

static void flush(int fd, struct dfc *c, int n) {
  int off = 0;
  while (off < n) {
    int r = sendmmsg(fd, c->txm + off, n - off, 0);
    if (r < 0) { if (errno == EINTR) continue; break; } /* EAGAIN/ENOBUFS: the rest is lost, as a datagram may be */
    off += r;
  }
}

static void on_queries(struct dfc *c) {
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      c->rxiov[i].iov_base = c->rx[i]; c->rxiov[i].iov_len = MAX_MSG;
      memset(&c->rxm[i].msg_hdr, 0, sizeof c->rxm[i].msg_hdr);
      c->rxm[i].msg_hdr.msg_name = &c->rxaddr[i]; c->rxm[i].msg_hdr.msg_namelen = sizeof c->rxaddr[i];
      c->rxm[i].msg_hdr.msg_iov = &c->rxiov[i]; c->rxm[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(c->client_fd, c->rxm, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    int out = 0;
    uint8_t name[256];
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < n; i++) {
      c->stats[ST_RX_QUERIES]++;
      size_t len = c->rxm[i].msg_len;
      socklen_t alen = c->rxm[i].msg_hdr.msg_namelen;
      if (c->rxm[i].msg_hdr.msg_flags & MSG_TRUNC) continue; /* larger than any query the decoder takes */
      int nl = plain_query(c->rx[i], len, name);
      if (nl < 0 || !cache_has(c, name, nl, fnv(name, nl))) {
        c->stats[ST_HANDED_QUERIES]++;
        pthread_mutex_unlock(&c->lock);
        hand_over(c, KIND_QUERY, &c->rxaddr[i], alen, c->rx[i], len);
        pthread_mutex_lock(&c->lock);
        continue;
      }
      if (admit(c, c->rx[i], len, &c->rxaddr[i], alen, nl) < 0) continue;
      c->stats[ST_FAST_FORWARDED]++;
      c->txiov[out].iov_base = c->rx[i]; c->txiov[out].iov_len = len;
      memset(&c->txm[out].msg_hdr, 0, sizeof c->txm[out].msg_hdr);
      c->txm[out].msg_hdr.msg_iov = &c->txiov[out]; c->txm[out].msg_hdr.msg_iovlen = 1;
      out++;
    }
    pthread_mutex_unlock(&c->lock);
    flush(c->up_fd, c, out);
    if (n < BATCH) return;
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
    int out = 0;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < n; i++) {
      size_t len = c->rxm[i].msg_len;
      uint8_t *m = c->arx[i];
      if (len < 12 || (c->rxm[i].msg_hdr.msg_flags & MSG_TRUNC)) { c->stats[ST_STRAY_ANSWERS]++; continue; }
      uint16_t id = (uint16_t)((m[0] << 8) | m[1]);
      struct pending *p = &c->pending[id];
      if (!p->used) { c->stats[ST_STRAY_ANSWERS]++; continue; }
      int plain = plain_answer(m, len, p->qhash);
      p->used = 0;
      m[0] = p->client_id >> 8; m[1] = p->client_id & 0xff;
      if (!plain) {
        c->stats[ST_HANDED_ANSWERS]++;
        pthread_mutex_unlock(&c->lock);
        hand_over(c, KIND_ANSWER, &p->client, p->client_len, m, len);
        pthread_mutex_lock(&c->lock);
        continue;
      }
      c->stats[ST_FAST_ANSWERS]++;
      c->txiov[out].iov_base = m; c->txiov[out].iov_len = len;
      memset(&c->txm[out].msg_hdr, 0, sizeof c->txm[out].msg_hdr);
      c->txm[out].msg_hdr.msg_name = &p->client; c->txm[out].msg_hdr.msg_namelen = p->client_len;
      c->txm[out].msg_hdr.msg_iov = &c->txiov[out]; c->txm[out].msg_hdr.msg_iovlen = 1;
      out++;
    }
    pthread_mutex_unlock(&c->lock);
    flush(c->client_fd, c, out);
    if (n < BATCH) return;
  }
}

/* Frees the ids of queries the upstream never answered within timeout_ms (counted; the client retries). */
static void sweep(struct dfc *c) {
  uint64_t now = now_ms();
  pthread_mutex_lock(&c->lock);
  for (uint32_t id = 0; id < 65536; id++) {
    struct pending *p = &c->pending[id];
    if (p->used && now - p->sent_ms > c->timeout_ms) { p->used = 0; c->stats[ST_TIMEOUTS]++; }
  }
  pthread_mutex_unlock(&c->lock);
}

static void *loop(void *arg) {
  struct dfc *c = arg;
  struct pollfd fds[2] = { { .fd = c->client_fd, .events = POLLIN }, { .fd = c->up_fd, .events = POLLIN } };
  uint64_t last_sweep = now_ms();
  while (!c->stop) {
    int r = poll(fds, 2, 100);
    if (r > 0) {
      if (fds[1].revents & POLLIN) on_answers(c);
      if (fds[0].revents & POLLIN) on_queries(c);
    }
    if (now_ms() - last_sweep >= 500) { sweep(c); last_sweep = now_ms(); }
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

/* Opens the two sockets and starts the thread; NULL with errno set on failure. */
struct dfc *dfc_open(const char *listen_ip, int listen_port, const char *up_ip, int up_port, int timeout_ms) {
  struct sockaddr_in6 la, ua; socklen_t ll, ul;
  int lf = parse_addr(listen_ip, (uint16_t)listen_port, &la, &ll), uf = parse_addr(up_ip, (uint16_t)up_port, &ua, &ul);
  if (lf < 0 || uf < 0) { errno = EINVAL; return NULL; }
  struct dfc *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->cache = calloc(CACHE_SLOTS, sizeof *c->cache);
  c->names = malloc(NAME_ARENA);
  c->pending = calloc(65536, sizeof *c->pending);
  c->queue = calloc(QUEUE_SLOTS, sizeof *c->queue);
  c->big = malloc((size_t)BIG_SLOTS * MAX_ANSWER);
  int pipefd[2] = { -1, -1 };
  c->client_fd = socket(lf, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  c->up_fd = socket(uf, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int rcvbuf = 4 << 20;
  if (!c->cache || !c->names || !c->big || !c->pending || !c->queue || c->client_fd < 0 || c->up_fd < 0 ||
      setsockopt(c->client_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0 ||
      setsockopt(c->up_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0 ||
      bind(c->client_fd, (struct sockaddr *)&la, ll) < 0 || connect(c->up_fd, (struct sockaddr *)&ua, ul) < 0 ||
      pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
    int e = errno;
    if (c->client_fd >= 0) close(c->client_fd);
    if (c->up_fd >= 0) close(c->up_fd);
    free(c->cache); free(c->names); free(c->pending); free(c->queue); free(c->big); free(c);
    errno = e;
    return NULL;
  }
  c->notify_rd = pipefd[0]; c->notify_wr = pipefd[1];
  c->timeout_ms = (uint32_t)timeout_ms;
  pthread_mutex_init(&c->lock, NULL);
  pthread_mutex_init(&c->qlock, NULL);
  if ((errno = pthread_create(&c->thread, NULL, loop, c)) != 0) {
    int e = errno;
    close(c->client_fd); close(c->up_fd); close(pipefd[0]); close(pipefd[1]);
    free(c->cache); free(c->names); free(c->pending); free(c->queue); free(c->big); free(c);
    errno = e;
    return NULL;
  }
  return c;
}

int dfc_port(struct dfc *c) {
  struct sockaddr_in6 a; socklen_t l = sizeof a;
  if (getsockname(c->client_fd, (struct sockaddr *)&a, &l) < 0) return -1;
  return ntohs(a.sin6_port); /* sin_port and sin6_port sit at the same offset */
}

int dfc_notify_fd(struct dfc *c) { return c->notify_rd; }

/* Adds a lower-case wire-form name to the allowed cache; 0, or -1 when its probe window or the name arena is full. */
int dfc_allow(struct dfc *c, const uint8_t *name, int n) {
  if (n <= 0 || n > 255) return -1;
  uint64_t h = fnv(name, n);
  int r = -1;
  pthread_mutex_lock(&c->lock);
  for (int i = 0; i < CACHE_PROBES; i++) {
    struct cache_entry *e = &c->cache[(h + i) & (CACHE_SLOTS - 1)];
    if (e->len == n && e->hash == h && memcmp(c->names + e->off, name, n) == 0) { r = 0; break; }
    if (e->len == 0) {
      if (c->names_used + (uint32_t)n > NAME_ARENA) break;
      memcpy(c->names + c->names_used, name, n);
      e->off = c->names_used; e->hash = h; e->len = (uint16_t)n;
      c->names_used += (uint32_t)n;
      r = 0; break;
    }
  }
  pthread_mutex_unlock(&c->lock);
  return r;
}

/* Empties the allowed cache (a new policy). */
void dfc_clear(struct dfc *c) {
  pthread_mutex_lock(&c->lock);
  memset(c->cache, 0, CACHE_SLOTS * sizeof *c->cache);
  c->names_used = 0;
  pthread_mutex_unlock(&c->lock);
}

/*
 * Copies up to max queued items into out (cap bytes), each as
 * kind u32, addr_len u32, addr[28], len u32, data[len] padded to 4;
 * returns the number of bytes written. Drains the wake-up pipe first.
 */
int dfc_take(struct dfc *c, uint8_t *out, int cap) {
  uint8_t drain[64];
  while (read(c->notify_rd, drain, sizeof drain) > 0) {}
  int w = 0;
  pthread_mutex_lock(&c->qlock);
  while (c->qcount > 0) {
    struct item *it = &c->queue[c->qhead];
    int need = 40 + (int)((it->len + 3) & ~3u);
    if (w + need > cap) break;
    memcpy(out + w, &it->kind, 4); memcpy(out + w + 4, &it->addr_len, 4);
    memcpy(out + w + 8, &it->addr, 28); memcpy(out + w + 36, &it->len, 4);
    if (it->big >= 0) { memcpy(out + w + 40, c->big + (size_t)it->big * MAX_ANSWER, it->len); c->big_used[it->big] = 0; }
    else memcpy(out + w + 40, it->data, it->len);
    w += need;
    c->qhead = (c->qhead + 1) % QUEUE_SLOTS; c->qcount--;
  }
  pthread_mutex_unlock(&c->qlock);
  return w;
}

/* Node's verdict "forward": the query goes upstream through the core (its answer comes back the usual way). */
int dfc_forward(struct dfc *c, const uint8_t *addr, int alen, uint8_t *m, int len) {
  if (len < 12 + 5 || alen <= 0 || alen > (int)sizeof(struct sockaddr_in6)) return -1;
  uint8_t name[256];
  int nl = question_name(m, (size_t)len, name);
  if (nl < 0) return -1; /* a compressed question: Node forwards such queries itself in the real proxy */
  pthread_mutex_lock(&c->lock);
  int id = admit(c, m, (size_t)len, (const struct sockaddr_in6 *)addr, (socklen_t)alen, nl);
  pthread_mutex_unlock(&c->lock);
  if (id < 0) return -1;
  return send(c->up_fd, m, (size_t)len, 0) < 0 ? -1 : 0;
}

/* Node's verdict "answer": the reply goes to the client from the listening socket. */
int dfc_reply(struct dfc *c, const uint8_t *addr, int alen, const uint8_t *m, int len) {
  return sendto(c->client_fd, m, (size_t)len, 0, (const struct sockaddr *)addr, (socklen_t)alen) < 0 ? -1 : 0;
}

void dfc_stats(struct dfc *c, uint64_t *out) {
  for (int i = 0; i < ST_COUNT; i++) out[i] = c->stats[i];
}

void dfc_close(struct dfc *c) {
  c->stop = 1;
  pthread_join(c->thread, NULL);
  close(c->client_fd); close(c->up_fd); close(c->notify_rd); close(c->notify_wr);
  pthread_mutex_destroy(&c->lock); pthread_mutex_destroy(&c->qlock);
  free(c->cache); free(c->names); free(c->pending); free(c->queue); free(c->big); free(c);
}
