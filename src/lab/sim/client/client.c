/*
 * kha-sim-client: what a simulated tool on a lab host runs. It hands the call (argv, env, pid, uid) to the
 * host's resident sim server (src/lab/sim/server.ts) over a unix socket and relays stdout, stderr, stdin (only
 * when the tool asks for it) and the exit code, so a command costs well under a millisecond of CPU here
 * instead of a Node start-up. Plain C: with 53 hosts on 2 cores, even a Go runtime's start-up showed.
 *
 *   kha-sim-client --wrapper SCRIPT [ARGS...]   as the interpreter of a wrapper script (#!... --wrapper):
 *                                               the tool is the script's name; without a server the script
 *                                               itself runs under /bin/sh (its last line starts the tool)
 *   kha-sim-client NODE MAIN TOOL [ARGS...]     explicit; without a server: NODE MAIN TOOL ARGS...
 *   kha-sim-client --make-socket PATH           binds a unix socket file and leaves it (a daemon's socket)
 *
 * Frames both ways: 1 byte kind, 4 bytes big-endian length, payload (see server.ts).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_SOCKET "/run/kha-sim-server.sock"

static char **alone_argv;
static const char *alone_path;

static void run_alone(void) {
  execv(alone_path, alone_argv);
  fprintf(stderr, "kha-sim-client: exec %s: %s\n", alone_path, strerror(errno));
  exit(127);
}

struct buf {
  char *p;
  size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (b->len + n + 1 > cap) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) {
      fputs("kha-sim-client: out of memory\n", stderr);
      exit(70);
    }
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string: quotes, backslashes and control characters escaped; other bytes as they are. */
static void put_json(struct buf *b, const char *s, size_t n) {
  put(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      put(b, e, 2);
    } else if (c < 0x20) {
      char e[7];
      snprintf(e, sizeof e, "\\u%04x", c);
      put(b, e, 6);
    } else {
      put(b, (const char *)&s[i], 1);
    }
  }
  put(b, "\"", 1);
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

static int send_frame(int fd, char kind, const void *p, uint32_t n) {
  unsigned char h[5] = {(unsigned char)kind, (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n};
  if (write_all(fd, h, 5) < 0) return -1;
  return n ? write_all(fd, p, n) : 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--make-socket") == 0) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (strlen(argv[2]) >= sizeof a.sun_path || s < 0) return 1;
    strcpy(a.sun_path, argv[2]);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 1) < 0) {
      fprintf(stderr, "kha-sim-client: %s: %s\n", argv[2], strerror(errno));
      return 1;
    }
    return 0;
  }

  char **tool_args; /* argv of the tool: name first */
  int tool_argc;
  const char *tool_name;
  if (argc >= 3 && strcmp(argv[1], "--wrapper") == 0) {
    const char *slash = strrchr(argv[2], '/');
    tool_name = slash ? slash + 1 : argv[2];
    tool_args = argv + 3;
    tool_argc = argc - 3;
    alone_path = "/bin/sh";
    alone_argv = calloc((size_t)argc + 1, sizeof(char *));
    alone_argv[0] = "sh";
    for (int i = 2; i < argc; i++) alone_argv[i - 1] = argv[i];
  } else if (argc >= 4) {
    tool_name = argv[3];
    tool_args = argv + 4;
    tool_argc = argc - 4;
    alone_path = argv[1];
    alone_argv = argv + 1;
  } else {
    fputs("usage: kha-sim-client --wrapper SCRIPT [ARGS...] | NODE MAIN TOOL [ARGS...] | --make-socket PATH\n", stderr);
    return 2;
  }

  const char *no = getenv("KHA_SIM_NO_SERVER");
  if (no && strcmp(no, "1") == 0) run_alone();
  const char *path = getenv("KHA_SIM_SOCKET");
  if (!path || !*path) path = DEFAULT_SOCKET;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) run_alone();
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  /* No server (or not ours to use: the socket is root's): run the tool as a process of its own. */
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) run_alone();

  struct buf h = {0};
  puts_(&h, "{\"argv\":[");
  put_json(&h, tool_name, strlen(tool_name));
  for (int i = 0; i < tool_argc; i++) {
    put(&h, ",", 1);
    put_json(&h, tool_args[i], strlen(tool_args[i]));
  }
  puts_(&h, "],\"env\":{");
  int first = 1;
  for (char **e = environ; *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq || eq == *e) continue;
    if (!first) put(&h, ",", 1);
    first = 0;
    put_json(&h, *e, (size_t)(eq - *e));
    put(&h, ":", 1);
    put_json(&h, eq + 1, strlen(eq + 1));
  }
  char tail[96];
  snprintf(tail, sizeof tail, "},\"pid\":%d,\"uid\":%d,\"tty\":%s}", (int)getpid(), (int)getuid(), isatty(0) ? "true" : "false");
  puts_(&h, tail);
  /* The server went away between connect and send: nothing ran yet, so run the tool here. */
  if (send_frame(fd, 'h', h.p, (uint32_t)h.len) < 0) run_alone();

  int stdin_sent = 0;
  char *payload = NULL;
  size_t payload_cap = 0;
  for (;;) {
    unsigned char fh[5];
    if (read_all(fd, fh, 5) < 0) {
      fprintf(stderr, "kha-sim-client: the sim server closed the call to %s without an exit code\n", tool_name);
      return 70;
    }
    uint32_t n = ((uint32_t)fh[1] << 24) | ((uint32_t)fh[2] << 16) | ((uint32_t)fh[3] << 8) | fh[4];
    if (n + 1 > payload_cap) {
      payload_cap = n + 1;
      payload = realloc(payload, payload_cap);
      if (!payload) return 70;
    }
    if (n && read_all(fd, payload, n) < 0) {
      fputs("kha-sim-client: truncated frame from the sim server\n", stderr);
      return 70;
    }
    payload[n] = 0;
    switch (fh[0]) {
      case 'o':
        write_all(1, payload, n);
        break;
      case 'e':
        write_all(2, payload, n);
        break;
      case 'i':
        /* The tool blocks until it has all of stdin, so reading it to the end here is safe. */
        if (!stdin_sent) {
          stdin_sent = 1;
          char in[65536];
          for (;;) {
            ssize_t r = read(0, in, sizeof in);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            if (send_frame(fd, 'i', in, (uint32_t)r) < 0) break;
          }
          send_frame(fd, 'I', NULL, 0);
        }
        break;
      case 'x':
        return atoi(payload);
      default:
        break;
    }
  }
}
