// openloop: the open-loop HTTP/1.1 load generator of loadtest/load-gen.ts, in C, for latency runs.
//
// Why C: the Node.js generator pauses for its own garbage collection and JIT (its p99 lateness was
// 0.4-3 ms at 13,000 req/s on this machine), and every such pause lands in every server's p99 as
// queueing. This one allocates nothing while it runs and has no collector. It does what load-gen.ts
// does, no more: each flow offers requests at a fixed rate whatever the server does; a request is due at
// start + k/rate, waits for a free connection (one request per connection at a time, at most
// MAXCONN per flow), and its latency runs from the moment it was due (or was written: LATENCY_FROM
// "sent"). Warm-up requests are sent but not recorded. The accounting is load-gen.ts's: it replays the
// records this program writes (see load-gen-native.ts), so both generators report the same way.
//
// Usage: openloop HOST PORT WARMUP_S DURATION_S DRAIN_MS due|sent spin|sleep OUT_FILE
//                 {RATE MAXCONN LOCAL_ADDRS|- REQUEST_FILE}...
// OUT_FILE gets one 20-byte record (little-endian) per request due after the warm-up that was sent
// and then answered or lost:
//   u32 due (µs after the warm-up), u32 latency µs (to the answer or loss, from `due` or from the
//   write), u32 µs from due to written, u16 status (100-599; 0 = the connection closed with no answer
//   or was refused, 1 = closed mid-answer or another error), u8 flow, u8 1 if latency runs from the
//   write, u32 µs the generator itself was late putting the request in its queue.
// stdout gets one line per flow: "FLOW i offered unsent unanswered connections".

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FLOWS 64
#define MAX_ADDRS 16
#define READ_BUF 65536

typedef struct {
  uint32_t due_us, latency_us, lag_us;
  uint16_t status;
  uint8_t flow, from_sent;
  uint32_t tick_lag_us;
} record_t;
_Static_assert(sizeof(record_t) == 20, "record layout is read by load-gen-native.ts");

typedef struct conn conn_t;

typedef struct {
  double rate;
  int max_conns, open_conns;
  struct in_addr addrs[MAX_ADDRS];
  int n_addrs, addr_turn;
  char *req;
  size_t req_len;
  int64_t *queue; // due times (ns) waiting for a connection: a ring
  uint32_t *queue_lag; // beside each, how late (µs) the loop was to queue it
  size_t q_cap, q_head, q_len;
  int64_t scheduled;
  uint64_t offered, unsent, connections;
  conn_t *idle; // free, connected connections
} flow_t;

enum { C_CONNECTING, C_IDLE, C_BUSY };

struct conn {
  int fd, state, flow;
  int64_t due, sent_at;
  uint32_t tick_lag;
  size_t written;   // bytes of the request written so far
  int got_any;      // bytes of the answer seen
  int connected, connect_err;
  // answer parser
  char buf[READ_BUF];
  size_t len;
  int in_body, chunked, close_after, status;
  int64_t body_left; // content-length left, or of the current chunk; -1 = until close
  int chunk_state;   // 0 size line, 1 data, 2 CRLF after data, 3 trailers
  conn_t *next_idle;
};

static flow_t flows[MAX_FLOWS];
static int n_flows;
static int epfd;
static int64_t t0, end_at, start;
static int from_sent;
static struct sockaddr_in target;
static record_t *records;
static size_t n_records, cap_records;
static uint64_t in_flight[MAX_FLOWS];

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

static void *must(void *p) {
  if (!p) die("malloc");
  return p;
}

static void record(conn_t *c, int status) {
  if (c->due < t0) return;
  if (n_records == cap_records) {
    cap_records = cap_records ? cap_records * 2 : 1 << 16;
    records = must(realloc(records, cap_records * sizeof(record_t)));
  }
  int64_t now = now_ns();
  int64_t from = from_sent ? c->sent_at : c->due;
  record_t *r = &records[n_records++];
  r->due_us = (uint32_t)((c->due - t0) / 1000);
  r->latency_us = (uint32_t)((now - from) / 1000);
  r->lag_us = (uint32_t)((c->sent_at - c->due) / 1000);
  r->status = (uint16_t)status;
  r->flow = (uint8_t)c->flow;
  r->from_sent = (uint8_t)from_sent;
  r->tick_lag_us = c->tick_lag;
}

static void watch(conn_t *c, int op, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(epfd, op, c->fd, &ev) < 0) die("epoll_ctl");
}

static void reset_parser(conn_t *c) {
  c->in_body = c->chunked = c->close_after = c->status = 0;
  c->body_left = 0;
  c->chunk_state = 0;
  c->got_any = 0;
}

static conn_t *open_conn(int fi) {
  flow_t *f = &flows[fi];
  conn_t *c = must(calloc(1, sizeof(conn_t)));
  c->flow = fi;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (f->n_addrs) {
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr = f->addrs[f->addr_turn++ % f->n_addrs]};
    if (bind(c->fd, (struct sockaddr *)&local, sizeof local) < 0) die("bind");
  }
  f->open_conns++;
  f->connections++;
  c->state = C_CONNECTING;
  int rc = connect(c->fd, (struct sockaddr *)&target, sizeof target);
  if (rc < 0 && errno != EINPROGRESS) {
    // Refused at once: the next event closes it, counting its request's loss.
    c->connect_err = errno;
    watch(c, EPOLL_CTL_ADD, EPOLLOUT);
    return c;
  }
  watch(c, EPOLL_CTL_ADD, EPOLLOUT | EPOLLIN | EPOLLRDHUP);
  return c;
}

// Writes what is left of the request; on a partial write, waits for EPOLLOUT.
static int flush_request(conn_t *c) {
  flow_t *f = &flows[c->flow];
  while (c->written < f->req_len) {
    ssize_t n = send(c->fd, f->req + c->written, f->req_len - c->written, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN) {
        watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
        return 0;
      }
      return -1;
    }
    c->written += (size_t)n;
  }
  watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
  return 0;
}

static void close_conn(conn_t *c);

static void send_on(conn_t *c, int64_t due, uint32_t tick_lag) {
  c->due = due;
  c->tick_lag = tick_lag;
  c->sent_at = now_ns();
  c->written = 0;
  reset_parser(c);
  in_flight[c->flow]++;
  if (c->state == C_CONNECTING) {
    c->state = C_BUSY; // written once connected
    return;
  }
  c->state = C_BUSY;
  if (flush_request(c) < 0) close_conn(c);
}

static void dispatch(int fi) {
  flow_t *f = &flows[fi];
  while (f->q_len) {
    conn_t *c = f->idle;
    if (c) f->idle = c->next_idle;
    else if (f->open_conns < f->max_conns) c = open_conn(fi);
    else return;
    int64_t due = f->queue[f->q_head];
    uint32_t lag = f->queue_lag[f->q_head];
    f->q_head = (f->q_head + 1) % f->q_cap;
    f->q_len--;
    send_on(c, due, lag);
  }
}

static void close_conn(conn_t *c) {
  flow_t *f = &flows[c->flow];
  if (c->state == C_BUSY) {
    in_flight[c->flow]--;
    // Nothing of an answer: the server (or the kernel, refusing the handshake) dropped it.
    int dropped = !c->got_any && (c->connected || c->connect_err == ECONNREFUSED);
    record(c, dropped ? 0 : 1);
  }
  if (c->state == C_IDLE) {
    for (conn_t **p = &f->idle; *p; p = &(*p)->next_idle)
      if (*p == c) {
        *p = c->next_idle;
        break;
      }
  }
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  f->open_conns--;
  free(c);
}

// The main loop dispatches waiting requests to the freed connection (never from here: a failed
// send would free the connection under its caller).
static void answered(conn_t *c) {
  flow_t *f = &flows[c->flow];
  in_flight[c->flow]--;
  record(c, c->status);
  c->state = C_IDLE;
  if (c->close_after) {
    close_conn(c);
    return;
  }
  c->next_idle = f->idle;
  f->idle = c;
}

// Case-insensitive header lookup within [p, end): returns the value's start or NULL.
static const char *header(const char *p, const char *end, const char *name) {
  size_t n = strlen(name);
  while (p < end) {
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (!eol) return NULL;
    if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
      p += n + 1;
      while (*p == ' ' || *p == '\t') p++;
      return p;
    }
    p = eol + 2;
  }
  return NULL;
}

// Consumes what the buffer holds; returns -1 on a malformed answer.
static int parse(conn_t *c) {
  size_t at = 0;
  for (;;) {
    if (!c->in_body) {
      char *hend = memmem(c->buf + at, c->len - at, "\r\n\r\n", 4);
      if (!hend) break;
      char *h = c->buf + at;
      if (c->len - at < 12 || memcmp(h, "HTTP/1.", 7) != 0) return -1;
      c->status = atoi(h + 9);
      if (c->status < 100 || c->status > 599) return -1;
      const char *lines = (const char *)memchr(h, '\n', (size_t)(hend + 2 - h)) + 1;
      const char *cl = header(lines, hend + 2, "content-length");
      const char *te = header(lines, hend + 2, "transfer-encoding");
      const char *cn = header(lines, hend + 2, "connection");
      c->close_after = cn && strncasecmp(cn, "close", 5) == 0;
      c->chunked = te && strncasecmp(te, "chunked", 7) == 0;
      c->body_left = c->chunked ? 0 : cl ? atoll(cl) : (c->status == 204 || c->status == 304 || c->status < 200) ? 0 : -1;
      c->chunk_state = 0;
      c->in_body = 1;
      at = (size_t)(hend + 4 - c->buf);
    }
    if (c->chunked) {
      int done = 0;
      while (!done) {
        if (c->chunk_state == 0 || c->chunk_state == 2 || c->chunk_state == 3) {
          char *eol = memmem(c->buf + at, c->len - at, "\r\n", 2);
          if (!eol) break;
          if (c->chunk_state == 0) {
            c->body_left = strtoll(c->buf + at, NULL, 16);
            c->chunk_state = c->body_left ? 1 : 3;
          } else if (c->chunk_state == 2) {
            c->chunk_state = 0;
          } else if (eol == c->buf + at) {
            done = 1; // the blank line after the last chunk (and any trailers)
          }
          at = (size_t)(eol + 2 - c->buf);
        } else {
          size_t take = c->len - at < (size_t)c->body_left ? c->len - at : (size_t)c->body_left;
          at += take;
          c->body_left -= (int64_t)take;
          if (c->body_left) break;
          c->chunk_state = 2;
        }
      }
      if (!done) break;
    } else if (c->body_left > 0) {
      size_t take = c->len - at < (size_t)c->body_left ? c->len - at : (size_t)c->body_left;
      at += take;
      c->body_left -= (int64_t)take;
      if (c->body_left) break;
    } else if (c->body_left < 0) {
      at = c->len; // read to close
      break;
    }
    c->in_body = 0;
    if (c->state != C_BUSY) return -1; // an answer nobody asked for
    int close_after = c->close_after;
    answered(c);
    if (close_after) return 1; // c is gone
  }
  memmove(c->buf, c->buf + at, c->len - at);
  c->len -= at;
  return 0;
}

static void on_event(conn_t *c, uint32_t ev) {
  if (c->state == C_CONNECTING || (c->state == C_BUSY && c->written == 0 && !c->got_any && (ev & EPOLLOUT))) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err || c->connect_err || !(ev & EPOLLOUT)) {
      if (err) c->connect_err = err;
      close_conn(c);
      return;
    }
    // The handshake completed (even if the server closed at once: the read below sees that, and the
    // request counts as dropped, as a server dropping in userland does it).
    c->connected = 1;
    if (c->state == C_CONNECTING) {
      // Connected with nothing to send yet: free for the next due request.
      c->state = C_IDLE;
      flow_t *f = &flows[c->flow];
      c->next_idle = f->idle;
      f->idle = c;
      watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
      return;
    }
  }
  if ((ev & EPOLLOUT) && c->state == C_BUSY && c->written < flows[c->flow].req_len) {
    if (flush_request(c) < 0) {
      close_conn(c);
      return;
    }
  }
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    for (;;) {
      if (c->len == READ_BUF) {
        close_conn(c); // an answer head larger than the buffer: not a server under test
        return;
      }
      ssize_t n = read(c->fd, c->buf + c->len, READ_BUF - c->len);
      if (n > 0) {
        c->len += (size_t)n;
        c->got_any = 1;
        int rc = parse(c);
        if (rc < 0) {
          close_conn(c);
          return;
        }
        if (rc > 0 || c->len < READ_BUF) return; // level-triggered: more comes as another event
        continue;
      }
      if (n < 0 && errno == EAGAIN) return;
      // Closed (or reset): an answer read to the close ends here.
      if (n == 0 && c->in_body && c->body_left < 0 && c->state == C_BUSY) {
        c->in_body = 0;
        c->close_after = 1;
        answered(c);
        return;
      }
      close_conn(c);
      return;
    }
  }
}

static char *read_file(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) die(path);
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *b = must(malloc((size_t)n + 1));
  if (fread(b, 1, (size_t)n, fp) != (size_t)n) die("read");
  fclose(fp);
  *len = (size_t)n;
  return b;
}

int main(int argc, char **argv) {
  if (argc < 13 || (argc - 9) % 4 != 0) {
    fprintf(stderr, "usage: openloop HOST PORT WARMUP_S DURATION_S DRAIN_MS due|sent spin|sleep OUT_FILE {RATE MAXCONN ADDRS|- REQUEST_FILE}...\n");
    return 2;
  }
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &target.sin_addr) != 1) die("host");
  double warmup_s = atof(argv[3]), duration_s = atof(argv[4]);
  int64_t drain_ns = (int64_t)atoll(argv[5]) * 1000000;
  from_sent = strcmp(argv[6], "sent") == 0;
  int spin = strcmp(argv[7], "spin") == 0;
  const char *out = argv[8];
  for (int i = 9; i < argc; i += 4) {
    if (n_flows == MAX_FLOWS) die("too many flows");
    flow_t *f = &flows[n_flows++];
    f->rate = atof(argv[i]);
    f->max_conns = atoi(argv[i + 1]);
    if (strcmp(argv[i + 2], "-") != 0) {
      char *list = strdup(argv[i + 2]);
      for (char *tok = strtok(list, ","); tok && f->n_addrs < MAX_ADDRS; tok = strtok(NULL, ","))
        if (inet_pton(AF_INET, tok, &f->addrs[f->n_addrs++]) != 1) die("local address");
    }
    f->req = read_file(argv[i + 3], &f->req_len);
    // A client gives up on requests it could not send within a second (as load-gen.ts does).
    f->q_cap = (size_t)(f->rate > 100 ? f->rate : 100) + 1;
    f->queue = must(calloc(f->q_cap, sizeof(int64_t)));
    f->queue_lag = must(calloc(f->q_cap, sizeof(uint32_t)));
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");

  start = now_ns();
  t0 = start + (int64_t)(warmup_s * 1e9);
  end_at = t0 + (int64_t)(duration_s * 1e9);
  struct epoll_event evs[256];
  for (int64_t now = start;; now = now_ns()) {
    int64_t until = now < end_at ? now : end_at;
    int64_t next_due = INT64_MAX;
    for (int fi = 0; fi < n_flows; fi++) {
      flow_t *f = &flows[fi];
      double period = 1e9 / f->rate;
      int64_t due = start + (int64_t)((double)f->scheduled * period);
      for (; due <= until; due = start + (int64_t)((double)f->scheduled * period)) {
        if (due >= t0) f->offered++;
        f->scheduled++;
        if (f->q_len == f->q_cap - 1) {
          // The oldest waiting request is abandoned.
          if (f->queue[f->q_head] >= t0) f->unsent++;
          f->q_head = (f->q_head + 1) % f->q_cap;
          f->q_len--;
        }
        f->queue[(f->q_head + f->q_len) % f->q_cap] = due;
        f->queue_lag[(f->q_head + f->q_len) % f->q_cap] = (uint32_t)((now - due) / 1000);
        f->q_len++;
      }
      if (due < next_due) next_due = due;
      dispatch(fi);
    }
    if (now >= end_at) break;
    // spin: poll without sleeping (µs-precise, the core stays busy); sleep: until the next request
    // falls due or an answer arrives.
    struct timespec wait = {0, 0};
    if (!spin) {
      int64_t w = next_due - now_ns();
      if (w > 0) wait = (struct timespec){(time_t)(w / 1000000000), (long)(w % 1000000000)};
    }
    int n = epoll_pwait2(epfd, evs, 256, &wait, NULL);
    if (n < 0 && errno != EINTR) die("epoll_pwait2");
    for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
  }
  // Requests still waiting for a connection are never sent; answers on their way get the drain,
  // then whatever is in flight is unanswered.
  for (int fi = 0; fi < n_flows; fi++) {
    flow_t *f = &flows[fi];
    for (; f->q_len; f->q_len--, f->q_head = (f->q_head + 1) % f->q_cap)
      if (f->queue[f->q_head] >= t0) f->unsent++;
  }
  int64_t drain_end = now_ns() + drain_ns;
  for (;;) {
    uint64_t busy = 0;
    for (int fi = 0; fi < n_flows; fi++) busy += in_flight[fi];
    if (!busy || now_ns() >= drain_end) break;
    int n = epoll_wait(epfd, evs, 256, 1);
    for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
  }
  FILE *fp = fopen(out, "wb");
  if (!fp) die(out);
  if (n_records && fwrite(records, sizeof(record_t), n_records, fp) != n_records) die("write");
  fclose(fp);
  for (int fi = 0; fi < n_flows; fi++) {
    flow_t *f = &flows[fi];
    printf("FLOW %d %llu %llu %llu %llu\n", fi, (unsigned long long)f->offered, (unsigned long long)f->unsent,
           (unsigned long long)in_flight[fi], (unsigned long long)f->connections);
  }
  return 0;
}
