/* C tests of libaegis: every shared vector (converted by vectors_to_text.py) through
 * aegis_evaluate_json byte for byte, then bad-input cases, options, controls, threads,
 * the collector option, and the collector end to end against a real OpenTelemetry
 * collector (rotel) when with_rotel.py runs this program (env AEGIS_TEST_OTLP_ENDPOINT,
 * AEGIS_TEST_ROTEL_OUT, AEGIS_TEST_TMP; without them that part is skipped, saying so).
 * Usage: test_ffi VECTORS.txt POLICY_DIR   (POLICY_DIR: policies/finance)
 * Built with -Wall -Wextra -Werror; run under valgrind by `make -f aegis-ffi/ffi.mk c-test`. */
#include "aegis.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                              \
  do {                                                                                \
    checks++;                                                                         \
    if (!(cond)) {                                                                    \
      failures++;                                                                     \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                 \
      fprintf(stderr, __VA_ARGS__);                                                   \
      fputc('\n', stderr);                                                            \
    }                                                                                 \
  } while (0)

/* ---------------------------------------------------------------- vector file reader */

typedef struct {
  char *data[4];
  size_t len[4];
  int count;
  char tag;
} record;

static void record_clear(record *r) {
  for (int i = 0; i < r->count; i++) free(r->data[i]);
  r->count = 0;
}

/* Returns 1 on a record, 0 at EOF, exits on malformed input. */
static int read_record(FILE *f, record *r) {
  char line[64];
  char tag;
  int count;
  r->count = 0;
  if (!fgets(line, sizeof line, f)) return 0;
  if (sscanf(line, "%c %d", &tag, &count) != 2) {
    fprintf(stderr, "bad record line %s\n", line);
    exit(2);
  }
  if (count < 0 || count > 4) {
    fprintf(stderr, "bad record count %d\n", count);
    exit(2);
  }
  r->tag = tag;
  for (int i = 0; i < count; i++) {
    size_t len;
    if (!fgets(line, sizeof line, f) || sscanf(line, "%zu", &len) != 1) {
      fprintf(stderr, "bad field length\n");
      exit(2);
    }
    char *buf = malloc(len + 1);
    if (!buf || fread(buf, 1, len, f) != len || fgetc(f) != '\n') {
      fprintf(stderr, "truncated field\n");
      exit(2);
    }
    buf[len] = '\0';
    r->data[i] = buf;
    r->len[i] = len;
    r->count = i + 1;
  }
  return 1;
}

/* ---------------------------------------------------------------- vectors */

static int run_vectors(const char *path, int *vectors_out, int *steps_out) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  record r;
  char name[256] = "";
  aegis_engine_options *opts = NULL;
  aegis_engine *engine = NULL;
  int load_failed = 0;
  static char load_msg[65536];
  while (read_record(f, &r)) {
    char *err = NULL;
    aegis_status st;
    switch (r.tag) {
      case 'N':
        snprintf(name, sizeof name, "%s", r.data[0]);
        opts = aegis_engine_options_new();
        (*vectors_out)++;
        break;
      case 'O':
        if (strcmp(r.data[0], "signing_key") == 0)
          st = aegis_engine_options_set_signing_key(opts, (const uint8_t *)r.data[1], r.len[1], &err);
        else if (strcmp(r.data[0], "approval_key") == 0)
          st = aegis_engine_options_set_approval_key(opts, (const uint8_t *)r.data[1], r.len[1], &err);
        else
          st = aegis_engine_options_set_signing_key_id(opts, r.data[1], &err);
        CHECK(st == AEGIS_OK, "%s: option %s: %s", name, r.data[0], err ? err : "");
        break;
      case 'P':
        st = aegis_engine_from_yaml_with(r.data[0], r.len[0], opts, &engine, &err);
        load_failed = st != AEGIS_OK;
        if (r.len[1] > 0) {
          CHECK(st == AEGIS_OK, "%s: load: %s", name, err ? err : "");
          if (st == AEGIS_OK) {
            char *hash = NULL;
            CHECK(aegis_engine_policy_hash(engine, &hash, NULL) == AEGIS_OK, "%s: hash", name);
            CHECK(hash && strcmp(hash, r.data[1]) == 0, "%s: policy hash %s != %s", name, hash, r.data[1]);
            aegis_string_free(hash);
          }
        } else {
          CHECK(st == AEGIS_POLICY_ERROR && engine == NULL, "%s: load should fail", name);
          snprintf(load_msg, sizeof load_msg, "%s", err ? err : "");
        }
        break;
      case 'L': {
        /* one error line `<yaml>:LINE:COL: error: MESSAGE...` containing the substring */
        char prefix[64];
        (*steps_out)++;
        snprintf(prefix, sizeof prefix, "<yaml>:%s:%s: error: ", r.data[0], r.data[1]);
        int found = 0;
        for (char *line = load_msg; line && *line;) {
          char *nl = strchr(line, '\n');
          size_t n = nl ? (size_t)(nl - line) : strlen(line);
          char saved = line[n];
          line[n] = '\0';
          if (strncmp(line, prefix, strlen(prefix)) == 0 && strstr(line, r.data[2])) found = 1;
          line[n] = saved;
          line = nl ? nl + 1 : NULL;
        }
        CHECK(load_failed && found, "%s: no load error %s%s in:\n%s", name, prefix, r.data[2], load_msg);
        break;
      }
      case 'R': {
        char *out = NULL;
        (*steps_out)++;
        st = aegis_evaluate_json(engine, r.data[1], r.len[1], &out, &err);
        CHECK(st == AEGIS_OK, "%s / %s: status %d: %s", name, r.data[0], (int)st, err ? err : "");
        CHECK(out && strlen(out) == r.len[2] && memcmp(out, r.data[2], r.len[2]) == 0,
              "%s / %s:\n  got  %s\n  want %s", name, r.data[0], out ? out : "(null)", r.data[2]);
        aegis_string_free(out);
        break;
      }
      case 'X': {
        char *out = (char *)1;
        (*steps_out)++;
        st = aegis_evaluate_json(engine, r.data[1], r.len[1], &out, &err);
        CHECK(st == AEGIS_INVALID_REQUEST, "%s / %s: status %d", name, r.data[0], (int)st);
        CHECK(out == NULL, "%s / %s: out not NULL", name, r.data[0]);
        CHECK(err != NULL, "%s / %s: no message", name, r.data[0]);
        break;
      }
      case 'K':
        (*steps_out)++;
        st = aegis_engine_kill(engine, r.data[0], r.data[1], r.data[2], &err);
        CHECK(st == AEGIS_OK, "%s: kill: %s", name, err ? err : "");
        break;
      case 'V': {
        bool revived = false;
        (*steps_out)++;
        st = aegis_engine_revive(engine, r.data[0], r.data[1], &revived, &err);
        CHECK(st == AEGIS_OK, "%s: revive: %s", name, err ? err : "");
        break;
      }
      case 'Z':
        aegis_engine_free(engine);
        aegis_engine_options_free(opts);
        engine = NULL;
        opts = NULL;
        break;
      default:
        fprintf(stderr, "unknown tag %c\n", r.tag);
        exit(2);
    }
    aegis_string_free(err);
    record_clear(&r);
  }
  fclose(f);
  return 0;
}

/* ---------------------------------------------------------------- bad input */

static const char POLICY[] =
    "aegis: 1\n"
    "rules:\n"
    "  - id: small\n"
    "    match: {tool: pay}\n"
    "    when: {params.amount: {lte: 100}}\n"
    "    outcome: allow\n"
    "  - id: big\n"
    "    match: {tool: pay}\n"
    "    when: {params.amount: {gt: 100}}\n"
    "    outcome: require_approval\n"
    "    approvers: [boss]\n";

static const char REQ[] = "{\"agent\":\"a\",\"tool\":\"pay\",\"params\":{\"amount\":5},\"time\":\"2026-01-05T10:00:00Z\"}";
static const char REQ_BIG[] = "{\"agent\":\"a\",\"tool\":\"pay\",\"params\":{\"amount\":500},\"time\":\"2026-01-05T10:00:00Z\"}";

static void test_bad_input(void) {
  aegis_engine *e = NULL;
  char *err = NULL;
  char *out = NULL;
  aegis_outcome oc = AEGIS_OUTCOME_DENY;

  /* NULL frees */
  aegis_string_free(NULL);
  aegis_engine_free(NULL);
  aegis_engine_options_free(NULL);

  /* NULL everywhere, with and without error_out */
  CHECK(aegis_engine_from_yaml(NULL, 3, &e, &err) == AEGIS_NULL_PARAMETER && e == NULL && err, "null yaml");
  aegis_string_free(err);
  CHECK(aegis_engine_from_yaml(POLICY, sizeof POLICY - 1, NULL, NULL) == AEGIS_NULL_PARAMETER, "null out");
  CHECK(aegis_engine_from_path(NULL, &e, NULL) == AEGIS_NULL_PARAMETER, "null path");
  CHECK(aegis_evaluate_json(NULL, REQ, sizeof REQ - 1, &out, NULL) == AEGIS_NULL_PARAMETER && out == NULL, "null engine");
  CHECK(aegis_evaluate(NULL, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_NULL_PARAMETER, "null engine 2");
  CHECK(aegis_engine_kill(NULL, "agent", "a", NULL, NULL) == AEGIS_NULL_PARAMETER, "kill null");
  CHECK(aegis_engine_revive(NULL, "agent", "a", NULL, NULL) == AEGIS_NULL_PARAMETER, "revive null");
  CHECK(aegis_engine_reload(NULL, NULL) == AEGIS_NULL_PARAMETER, "reload null");
  CHECK(aegis_engine_policy_hash(NULL, &out, NULL) == AEGIS_NULL_PARAMETER, "hash null");
  CHECK(aegis_engine_grant(NULL, "x", "y", 1, &out, NULL) == AEGIS_NULL_PARAMETER, "grant null");
  CHECK(aegis_engine_options_set_signing_key(NULL, (const uint8_t *)"k", 1, NULL) == AEGIS_NULL_PARAMETER, "opt null");
  CHECK(aegis_engine_options_add_audit_callback(NULL, NULL, NULL, NULL) == AEGIS_NULL_PARAMETER, "cb null");

  /* invalid UTF-8 in the bundle */
  CHECK(aegis_engine_from_yaml("aegis: 1\n# \xff\xfe\n", 14, &e, &err) == AEGIS_INVALID_UTF8 && e == NULL, "utf8 yaml");
  aegis_string_free(err);
  /* a broken bundle */
  CHECK(aegis_engine_from_yaml("aegis: 1\nrules: [{id: x, outcome: maybe}]\n", 43, &e, &err) == AEGIS_POLICY_ERROR && e == NULL, "policy err");
  CHECK(err && strstr(err, "<yaml>:") != NULL, "load message names <yaml>: %s", err ? err : "");
  aegis_string_free(err);
  CHECK(aegis_engine_from_path("/nonexistent/aegis", &e, &err) == AEGIS_POLICY_ERROR && e == NULL, "missing path");
  aegis_string_free(err);

  CHECK(aegis_engine_from_yaml(POLICY, sizeof POLICY - 1, &e, &err) == AEGIS_OK && e && err == NULL, "load: %s", err ? err : "");

  /* evaluate: NULL out-params */
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, NULL, NULL) == AEGIS_NULL_PARAMETER, "null decision_out");
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, NULL, NULL) == AEGIS_NULL_PARAMETER, "null outcome_out");
  CHECK(aegis_evaluate_json(e, NULL, 10, &out, NULL) == AEGIS_NULL_PARAMETER, "null request");
  /* invalid UTF-8 request */
  static const char bad[] = "{\"agent\":\"\xc3\x28\",\"tool\":\"pay\"}";
  CHECK(aegis_evaluate_json(e, bad, sizeof bad - 1, &out, &err) == AEGIS_INVALID_UTF8 && out == NULL, "utf8 req");
  aegis_string_free(err);
  /* truncated JSON (a prefix of a valid request) */
  for (size_t n = 0; n < sizeof REQ - 1; n += 7) {
    CHECK(aegis_evaluate_json(e, REQ, n, &out, &err) == AEGIS_INVALID_REQUEST && out == NULL && err, "truncated at %zu", n);
    aegis_string_free(err);
  }
  /* an embedded NUL inside the given length */
  static const char nul[] = "{\"agent\":\"a\0b\",\"tool\":\"pay\"}";
  CHECK(aegis_evaluate_json(e, nul, sizeof nul - 1, &out, &err) == AEGIS_INVALID_REQUEST, "nul in req");
  aegis_string_free(err);
  /* a huge input: 8 MiB of params */
  {
    size_t n = 8u << 20;
    char *huge = malloc(n + 200);
    int k = snprintf(huge, 200, "{\"agent\":\"a\",\"tool\":\"pay\",\"params\":{\"blob\":\"");
    memset(huge + k, 'x', n);
    memcpy(huge + k + n, "\"}}", 3);
    aegis_status st = aegis_evaluate_json(e, huge, k + n + 3, &out, &err);
    CHECK(st == AEGIS_INVALID_REQUEST && out == NULL, "huge: %d", (int)st);
    aegis_string_free(err);
    aegis_string_free(out);
    free(huge);
  }
  /* a valid request, outcome only; error_out reset to NULL on success */
  err = (char *)1;
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, &err) == AEGIS_OK && oc == AEGIS_OUTCOME_ALLOW && err == NULL, "allow");
  CHECK(aegis_evaluate(e, REQ_BIG, sizeof REQ_BIG - 1, &oc, NULL) == AEGIS_OK && oc == AEGIS_OUTCOME_REQUIRE_APPROVAL, "approval");

  /* controls: bad arguments */
  CHECK(aegis_engine_kill(e, "planet", "x", NULL, &err) == AEGIS_INVALID_ARGUMENT && err, "bad scope");
  aegis_string_free(err);
  CHECK(aegis_engine_kill(e, "all", "x", NULL, &err) == AEGIS_INVALID_ARGUMENT, "all needs *");
  aegis_string_free(err);
  CHECK(aegis_engine_kill(e, "agent", "\xff", NULL, &err) == AEGIS_INVALID_UTF8, "kill utf8");
  aegis_string_free(err);
  CHECK(aegis_engine_kill(e, "agent", "a", "compromised", NULL) == AEGIS_OK, "kill");
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK && oc == AEGIS_OUTCOME_DENY, "killed");
  bool revived = false;
  CHECK(aegis_engine_revive(e, "agent", "a", &revived, NULL) == AEGIS_OK && revived, "revive");
  CHECK(aegis_engine_revive(e, "agent", "a", &revived, NULL) == AEGIS_OK && !revived, "revive twice");
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK && oc == AEGIS_OUTCOME_ALLOW, "revived");
  CHECK(aegis_engine_grant(e, "x", "boss", 60, &out, &err) == AEGIS_INVALID_ARGUMENT && out == NULL, "no approval key");
  aegis_string_free(err);
  CHECK(aegis_engine_reload(e, &err) == AEGIS_POLICY_ERROR, "reload of a yaml engine");
  aegis_string_free(err);
  CHECK(aegis_engine_reload_yaml(e, "aegis: 1\n", 9, &err) == AEGIS_OK, "reload_yaml: %s", err ? err : "");
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK && oc == AEGIS_OUTCOME_DENY, "empty bundle denies");
  aegis_engine_free(e);
}

/* ---------------------------------------------------------------- options, callbacks */

typedef struct {
  int calls;
  int fail;
} cb_state;

static int audit_cb(void *user, const char *line, size_t len) {
  cb_state *s = user;
  s->calls++;
  if (strlen(line) != len || line[0] != '{') return 99;
  return s->fail;
}

static void test_options(const char *policy_dir) {
  aegis_engine_options *o = aegis_engine_options_new();
  cb_state s = {0, 0};
  char *err = NULL;
  char *out = NULL;
  aegis_outcome oc;
  aegis_engine *e = NULL;
  CHECK(aegis_engine_options_set_audit_file(o, "/tmp/x", 7, &err) == AEGIS_INVALID_ARGUMENT, "fsync");
  aegis_string_free(err);
  CHECK(aegis_engine_options_set_signing_key(o, (const uint8_t *)"k1", 2, NULL) == AEGIS_OK, "sk");
  CHECK(aegis_engine_options_set_signing_key_id(o, "ops", NULL) == AEGIS_OK, "kid");
  CHECK(aegis_engine_options_set_approval_key(o, (const uint8_t *)"ak", 2, NULL) == AEGIS_OK, "ak");
  CHECK(aegis_engine_options_add_audit_callback(o, audit_cb, &s, NULL) == AEGIS_OK, "cb");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_OK, "load: %s", err ? err : "");
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, &out, NULL) == AEGIS_OK && out && strstr(out, "\"kid\":\"ops\""), "signed: %s", out ? out : "");
  aegis_string_free(out);
  CHECK(s.calls == 1, "callback called once: %d", s.calls);
  /* approval round trip */
  CHECK(aegis_evaluate_json(e, REQ_BIG, sizeof REQ_BIG - 1, &out, NULL) == AEGIS_OK && out, "approval");
  char id[128] = "";
  const char *p = out ? strstr(out, "\"approval\":{\"approvers\":[\"boss\"],\"id\":\"") : NULL;
  CHECK(p != NULL, "approval id in %s", out ? out : "");
  if (p) {
    p += strlen("\"approval\":{\"approvers\":[\"boss\"],\"id\":\"");
    size_t n = strcspn(p, "\"");
    if (n < sizeof id) memcpy(id, p, n), id[n] = '\0';
  }
  aegis_string_free(out);
  char *token = NULL;
  CHECK(aegis_engine_grant(e, id, "boss", 3600, &token, &err) == AEGIS_OK && token, "grant: %s", err ? err : "");
  if (token) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "{\"agent\":\"a\",\"tool\":\"pay\",\"params\":{\"amount\":500},\"time\":\"2026-01-05T10:00:00Z\",\"approval\":\"%s\"}",
                     token);
    (void)n;
    /* the grant is issued at the system clock; the request time is in 2026 — the token may
       be accepted or rejected by exp, but the call must succeed and stay well-formed. */
    CHECK(aegis_evaluate(e, req, strlen(req), &oc, &err) == AEGIS_OK, "with grant: %s", err ? err : "");
  }
  aegis_string_free(token);
  /* a failing callback fails the evaluation closed */
  s.fail = 1;
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, &out, &err) == AEGIS_IO_ERROR && out == NULL && err, "cb fail");
  aegis_string_free(err);
  aegis_engine_free(e);

  /* an audit file that cannot be opened */
  CHECK(aegis_engine_options_set_audit_file(o, "/nonexistent/dir/audit.jsonl", AEGIS_FSYNC_NEVER, NULL) == AEGIS_OK, "af");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_IO_ERROR && e == NULL, "audit open");
  aegis_string_free(err);
  aegis_engine_options_free(o);

  /* from_path on the finance bundle, reload */
  CHECK(aegis_engine_from_path(policy_dir, &e, &err) == AEGIS_OK, "from_path %s: %s", policy_dir, err ? err : "");
  if (e) {
    CHECK(aegis_engine_reload(e, &err) == AEGIS_OK, "reload: %s", err ? err : "");
    aegis_string_free(err);
    err = NULL;
  }
  aegis_string_free(err);
  aegis_engine_free(e);
}

/* ---------------------------------------------------------------- threads */

static void *worker(void *arg) {
  aegis_engine *e = arg;
  long bad = 0;
  for (int i = 0; i < 200; i++) {
    char *out = NULL;
    if (aegis_evaluate_json(e, REQ, sizeof REQ - 1, &out, NULL) != AEGIS_OK || !out) bad++;
    aegis_string_free(out);
  }
  return (void *)bad;
}

static void test_threads(void) {
  aegis_engine *e = NULL;
  CHECK(aegis_engine_from_yaml(POLICY, sizeof POLICY - 1, &e, NULL) == AEGIS_OK, "load");
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, e);
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(t[i], &r);
    CHECK(r == NULL, "thread %d had failures", i);
  }
  aegis_engine_free(e);
}

/* ---------------------------------------------------------------- collector */

/* The exact message for a collector without an audit file (aegis_ship::collector::NEEDS_AUDIT_FILE). */
static const char NEEDS_AUDIT_FILE[] =
    "invalid collector configuration: `collector` needs `audit` to be a file path (the shipper reads the durable "
    "audit file)";

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Reads a whole file (NUL-terminated; free()); NULL if it cannot be read. */
static char *slurp(const char *path, size_t *len_out) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len - 1 == 0) {
      char *more = realloc(buf, cap * 2);
      if (!more) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = more;
      cap *= 2;
    }
  }
  fclose(f);
  if (!buf) return NULL;
  buf[len] = '\0';
  if (len_out) *len_out = len;
  return buf;
}

/* Splits `text` in place into lines (without '\n'); returns how many (at most `max`). */
static int split_lines(char *text, char **lines, int max) {
  int n = 0;
  for (char *p = text; p && *p && n < max;) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    if (*p) lines[n++] = p;
    p = nl ? nl + 1 : NULL;
  }
  return n;
}

/* The number after `"key":` in a metrics object, or -1. */
static long long json_number(const char *json, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = json ? strstr(json, pat) : NULL;
  long long v;
  if (!p || sscanf(p + strlen(pat), "%lld", &v) != 1) return -1;
  return v;
}

/* Copies a record's `hash` (64 hex) into out[65]; 0 if not found. */
static int record_hash(const char *line, char *out) {
  const char *p = strstr(line, "\"hash\":\"");
  if (!p || strlen(p + 8) < 64) return 0;
  memcpy(out, p + 8, 64);
  out[64] = '\0';
  return 1;
}

/* Polls rotel's output (at most `wait_ms`) until every line of `audit` shows up as a
 * received log record: `-> aegis.hash: Str(<hash>)` and `Body: Str(<exact line>)`.
 * Returns the number of records missing. */
static int wait_received(const char *rotel_out, const char *audit, int first, int count, long wait_ms) {
  char *text = slurp(audit, NULL);
  static char *lines[256];
  int n = text ? split_lines(text, lines, 256) : 0;
  int missing = count;
  CHECK(n >= first + count, "%s has %d lines, want %d", audit, n, first + count);
  for (long waited = 0;; waited += 200) {
    char *got = slurp(rotel_out, NULL);
    missing = 0;
    for (int i = first; i < first + count && i < n; i++) {
      char hash[65], pat[128];
      size_t blen = strlen(lines[i]) + 16;
      char *body = malloc(blen);
      int ok = record_hash(lines[i], hash) && body;
      if (ok) {
        snprintf(pat, sizeof pat, "-> aegis.hash: Str(%s)", hash);
        snprintf(body, blen, "Body: Str(%s)\n", lines[i]);
        ok = got && strstr(got, pat) && strstr(got, body);
      }
      free(body);
      if (!ok) missing++;
    }
    free(got);
    if (missing == 0 || waited >= wait_ms) break;
    sleep_ms(200);
  }
  free(text);
  return missing;
}

static void test_collector_options(void) {
  aegis_engine_options *o = aegis_engine_options_new();
  aegis_engine *e = NULL;
  char *err = NULL;
  char *out = (char *)1;
  static const char GOOD[] = "{\"endpoint\":\"http://127.0.0.1:9\",\"request_timeout_ms\":200,\"max_backoff_ms\":50}";
  static const char TYPO[] = "{\"endpoint\":\"http://127.0.0.1:4318\",\"endpiont\":\"x\"}";
  static const char FTP[] = "{\"endpoint\":\"ftp://x\"}";
  static const char BAD_UTF8[] = "{\"endpoint\":\"http://\xff\"}";

  CHECK(aegis_engine_options_set_collector(NULL, GOOD, sizeof GOOD - 1, NULL) == AEGIS_NULL_PARAMETER, "null options");
  /* an unknown key: the aegis-ship message, naming the closest key */
  CHECK(aegis_engine_options_set_collector(o, TYPO, sizeof TYPO - 1, &err) == AEGIS_INVALID_ARGUMENT, "typo");
  CHECK(err && strcmp(err, "invalid collector configuration: unknown option `endpiont` (did you mean `endpoint`?)") == 0,
        "typo message: %s", err ? err : "(null)");
  aegis_string_free(err);
  CHECK(aegis_engine_options_set_collector(o, FTP, sizeof FTP - 1, &err) == AEGIS_INVALID_ARGUMENT, "ftp");
  CHECK(err && strstr(err, "invalid collector configuration: `endpoint` must be an http:// or https:// URL"),
        "ftp message: %s", err ? err : "(null)");
  aegis_string_free(err);
  CHECK(aegis_engine_options_set_collector(o, "[]", 2, &err) == AEGIS_INVALID_ARGUMENT && err, "not an object");
  aegis_string_free(err);
  CHECK(aegis_engine_options_set_collector(o, BAD_UTF8, sizeof BAD_UTF8 - 1, &err) == AEGIS_INVALID_UTF8 && err, "utf8");
  aegis_string_free(err);
  CHECK(aegis_engine_options_set_collector(o, NULL, 99, &err) == AEGIS_OK && err == NULL, "NULL clears");

  /* a collector needs an audit FILE: none, then a callback only */
  CHECK(aegis_engine_options_set_collector(o, GOOD, sizeof GOOD - 1, &err) == AEGIS_OK, "good: %s", err ? err : "");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_INVALID_ARGUMENT && e == NULL,
        "no audit sink");
  CHECK(err && strcmp(err, NEEDS_AUDIT_FILE) == 0, "no audit sink message: %s", err ? err : "(null)");
  aegis_string_free(err);
  cb_state s = {0, 0};
  CHECK(aegis_engine_options_add_audit_callback(o, audit_cb, &s, NULL) == AEGIS_OK, "cb");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_INVALID_ARGUMENT && e == NULL,
        "callback sink");
  CHECK(err && strcmp(err, NEEDS_AUDIT_FILE) == 0, "callback sink message: %s", err ? err : "(null)");
  aegis_string_free(err);
  aegis_engine_options_free(o);

  /* no collector: a stable status */
  CHECK(aegis_engine_from_yaml(POLICY, sizeof POLICY - 1, &e, NULL) == AEGIS_OK, "load");
  CHECK(aegis_engine_collector_metrics(e, &out, &err) == AEGIS_NO_COLLECTOR && out == NULL && err, "no collector metrics");
  aegis_string_free(err);
  CHECK(aegis_engine_collector_flush(e, 10, NULL) == AEGIS_NO_COLLECTOR, "no collector flush");
  out = (char *)1;
  CHECK(aegis_engine_collector_close(e, -1, &out, NULL) == AEGIS_NO_COLLECTOR && out == NULL, "no collector close");
  CHECK(aegis_engine_collector_metrics(e, NULL, NULL) == AEGIS_NULL_PARAMETER, "null metrics_out");
  aegis_engine_free(e);
  CHECK(aegis_engine_collector_metrics(NULL, &out, NULL) == AEGIS_NULL_PARAMETER, "null engine metrics");
  CHECK(aegis_engine_collector_flush(NULL, 10, NULL) == AEGIS_NULL_PARAMETER, "null engine flush");
  CHECK(aegis_engine_collector_close(NULL, -1, NULL, NULL) == AEGIS_NULL_PARAMETER, "null engine close");

  /* a collector nobody listens to: flush times out, close reports what is left */
  char dir[] = "/tmp/aegis-c-collector-XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(0, "mkdtemp");
    return;
  }
  char audit[128], cursor[160];
  snprintf(audit, sizeof audit, "%s/audit.jsonl", dir);
  snprintf(cursor, sizeof cursor, "%s.ship-cursor", audit);
  o = aegis_engine_options_new();
  CHECK(aegis_engine_options_set_audit_file(o, audit, AEGIS_FSYNC_NEVER, NULL) == AEGIS_OK, "af");
  CHECK(aegis_engine_options_set_collector(o, GOOD, sizeof GOOD - 1, NULL) == AEGIS_OK, "good");
  /* a rejected setting keeps the previous one */
  CHECK(aegis_engine_options_set_collector(o, FTP, sizeof FTP - 1, NULL) == AEGIS_INVALID_ARGUMENT, "ftp again");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_OK, "load: %s", err ? err : "");
  aegis_engine_options_free(o);
  aegis_outcome oc;
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK && oc == AEGIS_OUTCOME_ALLOW, "evaluate");
  CHECK(aegis_engine_collector_flush(e, 300, &err) == AEGIS_COLLECTOR_ERROR && err, "flush to nowhere");
  CHECK(err && strstr(err, "flush timed out"), "flush message: %s", err ? err : "(null)");
  aegis_string_free(err);
  CHECK(aegis_engine_collector_metrics(e, &out, NULL) == AEGIS_OK && out, "metrics");
  CHECK(json_number(out, "pending") == 1 && json_number(out, "shipped") == 0 && strstr(out, "\"last_error\":\""),
        "metrics: %s", out ? out : "(null)");
  aegis_string_free(out);
  CHECK(aegis_engine_collector_close(e, 100, &out, &err) == AEGIS_COLLECTOR_ERROR && err && out, "close fails");
  CHECK(json_number(out, "pending") == 1, "final metrics: %s", out ? out : "(null)");
  aegis_string_free(out);
  aegis_string_free(err);
  CHECK(aegis_engine_collector_close(e, 100, NULL, &err) == AEGIS_COLLECTOR_ERROR && err, "close twice: same outcome");
  aegis_string_free(err);
  /* the engine keeps deciding and recording after the collector is closed */
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK, "evaluate after close");
  aegis_engine_free(e);
  remove(audit);
  remove(cursor);
  rmdir(dir);
}

/* End to end: 20 decisions shipped by the engine's collector to rotel (with_rotel.py). */
static void test_collector_e2e(const char *policy_dir) {
  const char *endpoint = getenv("AEGIS_TEST_OTLP_ENDPOINT");
  const char *rotel_out = getenv("AEGIS_TEST_ROTEL_OUT");
  const char *tmp = getenv("AEGIS_TEST_TMP");
  const char *rotel_pid_s = getenv("AEGIS_TEST_ROTEL_PID");
  pid_t rotel_pid = rotel_pid_s ? (pid_t)atol(rotel_pid_s) : 0;
  if (!endpoint || !rotel_out || !tmp || rotel_pid <= 0) {
    printf("SKIP collector end-to-end: no collector (AEGIS_ROTEL unset; run through with_rotel.py after `make ship-rotel`)\n");
    return;
  }
  enum { N = 20 };
  char path[512], audit[512], audit2[512], config[512];
  snprintf(path, sizeof path, "%s/requests.jsonl", policy_dir);
  snprintf(audit, sizeof audit, "%s/audit.jsonl", tmp);
  snprintf(audit2, sizeof audit2, "%s/audit2.jsonl", tmp);
  char *reqs_text = slurp(path, NULL);
  static char *reqs[64];
  int nreqs = reqs_text ? split_lines(reqs_text, reqs, 64) : 0;
  CHECK(nreqs > 0, "no requests in %s", path);
  if (nreqs == 0) {
    free(reqs_text);
    return;
  }

  aegis_engine_options *o = aegis_engine_options_new();
  aegis_engine *e = NULL;
  char *err = NULL;
  char *out = NULL;
  int n = snprintf(config, sizeof config, "{\"endpoint\":\"%s\",\"batch_age_ms\":50,\"service_name\":\"c-test\"}", endpoint);
  CHECK(aegis_engine_options_set_audit_file(o, audit, AEGIS_FSYNC_BATCH, NULL) == AEGIS_OK, "af");
  CHECK(aegis_engine_options_set_collector(o, config, (size_t)n, &err) == AEGIS_OK, "collector: %s", err ? err : "");
  aegis_string_free(err);
  CHECK(aegis_engine_from_path_with(policy_dir, o, &e, &err) == AEGIS_OK && e, "load: %s", err ? err : "");
  aegis_string_free(err);
  if (!e) {
    aegis_engine_options_free(o);
    free(reqs_text);
    return;
  }
  for (int i = 0; i < N; i++) {
    const char *r = reqs[i % nreqs];
    CHECK(aegis_evaluate_json(e, r, strlen(r), &out, &err) == AEGIS_OK, "evaluate %d: %s", i, err ? err : "");
    aegis_string_free(out);
    aegis_string_free(err);
  }
  CHECK(aegis_engine_collector_flush(e, 10000, &err) == AEGIS_OK, "flush: %s", err ? err : "");
  aegis_string_free(err);
  CHECK(aegis_engine_collector_metrics(e, &out, NULL) == AEGIS_OK && out, "metrics");
  CHECK(json_number(out, "shipped") == N && json_number(out, "pending") == 0 && strstr(out, "\"last_error\":null"),
        "metrics after flush: %s", out ? out : "(null)");
  CHECK(json_number(out, "seq") == N - 1, "cursor at the last record: %s", out ? out : "(null)");
  aegis_string_free(out);
  int missing = wait_received(rotel_out, audit, 0, N, 10000);
  CHECK(missing == 0, "%d of %d records not received by rotel (see %s)", missing, N, rotel_out);

  /* close: final metrics; twice; metrics and flush after close */
  CHECK(aegis_engine_collector_close(e, -1, &out, &err) == AEGIS_OK && out, "close: %s", err ? err : "");
  CHECK(json_number(out, "shipped") == N && json_number(out, "pending") == 0, "final metrics: %s", out ? out : "(null)");
  aegis_string_free(out);
  aegis_string_free(err);
  CHECK(aegis_engine_collector_close(e, 0, NULL, NULL) == AEGIS_OK, "close twice");
  CHECK(aegis_engine_collector_metrics(e, &out, NULL) == AEGIS_OK && json_number(out, "shipped") == N,
        "metrics after close: %s", out ? out : "(null)");
  aegis_string_free(out);
  CHECK(aegis_engine_collector_flush(e, 1000, NULL) == AEGIS_OK, "flush after close, nothing pending");
  /* evaluate still records after close; nothing ships it any more */
  CHECK(aegis_evaluate_json(e, reqs[0], strlen(reqs[0]), &out, NULL) == AEGIS_OK, "evaluate after close");
  aegis_string_free(out);
  CHECK(aegis_engine_collector_flush(e, 200, &err) == AEGIS_COLLECTOR_ERROR && err && strstr(err, "shipping has stopped"),
        "flush after close, one pending: %s", err ? err : "(null)");
  aegis_string_free(err);
  aegis_engine_free(e);

  /* aegis_engine_free closes the collector with a final attempt (close_timeout_ms): with
     rotel paused (SIGSTOP) while the records are written, one-record requests queue up,
     and once it is resumed the final attempt delivers them all (a collector merely dropped
     would deliver at most the one in flight). */
  n = snprintf(config, sizeof config,
               "{\"endpoint\":\"%s\",\"batch\":1,\"close_timeout_ms\":60000,\"service_name\":\"c-test\"}", endpoint);
  CHECK(aegis_engine_options_set_audit_file(o, audit2, AEGIS_FSYNC_NEVER, NULL) == AEGIS_OK, "af2");
  CHECK(aegis_engine_options_set_collector(o, config, (size_t)n, NULL) == AEGIS_OK, "collector 2");
  CHECK(aegis_engine_from_path_with(policy_dir, o, &e, &err) == AEGIS_OK && e, "load 2: %s", err ? err : "");
  aegis_string_free(err);
  aegis_engine_options_free(o);
  CHECK(kill(rotel_pid, SIGSTOP) == 0, "SIGSTOP rotel");
  for (int i = 0; i < N && e; i++) {
    /* other requests than the first engine's: its records (fixed times) must not match these */
    const char *r = reqs[(i + 7) % nreqs];
    CHECK(aegis_evaluate_json(e, r, strlen(r), &out, NULL) == AEGIS_OK, "evaluate 2/%d", i);
    aegis_string_free(out);
  }
  CHECK(kill(rotel_pid, SIGCONT) == 0, "SIGCONT rotel");
  aegis_engine_free(e);
  missing = wait_received(rotel_out, audit2, 0, N, 10000);
  CHECK(missing == 0, "aegis_engine_free did not deliver %d of %d records", missing, N);
  printf("collector end-to-end: %d + %d records shipped to rotel at %s\n", N, N, endpoint);
  free(reqs_text);
}

/* ---------------------------------------------------------------- issue 16 */

/* The §17 code in aegis_last_error_json (NULL-safe). */
static int last_error_has(const char *needle) {
  const char *j = aegis_last_error_json();
  return j != NULL && strstr(j, needle) != NULL;
}

typedef struct {
  aegis_engine *engine; /* set after construction: the callback calls back into it */
  int calls;
  int fail;
  int reenter;
  aegis_status inner_eval, inner_kill;
} reentry_state;

static int reentry_cb(void *user, const char *line, size_t len) {
  reentry_state *s = user;
  (void)line;
  (void)len;
  s->calls++;
  if (s->reenter && s->engine) {
    char *out = NULL, *err = NULL;
    s->inner_eval = aegis_evaluate_json(s->engine, REQ, sizeof REQ - 1, &out, &err);
    aegis_string_free(out);
    aegis_string_free(err);
    s->inner_kill = aegis_engine_kill(s->engine, "agent", "x", NULL, NULL);
  }
  return s->fail;
}

/* Checks that the JSONL file at `path` holds `want` records, seq 0.., each `prev` the
 * `hash` before it (what `aegis audit verify` checks of the chain). */
static void check_chain(const char *path, int want) {
  char *text = slurp(path, NULL);
  CHECK(text != NULL, "read %s", path);
  if (!text) return;
  char prev[65];
  memset(prev, '0', 64);
  prev[64] = '\0';
  int n = 0;
  for (char *line = text; *line; n++) {
    char *nl = strchr(line, '\n');
    CHECK(nl != NULL, "line %d has no newline", n);
    if (!nl) break;
    *nl = '\0';
    char want_seq[32], want_prev[80];
    snprintf(want_seq, sizeof want_seq, "\"seq\":%d,", n);
    snprintf(want_prev, sizeof want_prev, "\"prev\":\"%s\"", prev);
    CHECK(strstr(line, want_seq) != NULL, "line %d: want %s in %s", n, want_seq, line);
    CHECK(strstr(line, want_prev) != NULL, "line %d: want %s in %s", n, want_prev, line);
    const char *h = strstr(line, "\"hash\":\"");
    CHECK(h != NULL, "line %d has a hash", n);
    if (h) memcpy(prev, h + 8, 64);
    line = nl + 1;
  }
  CHECK(n == want, "%s has %d records, want %d", path, n, want);
  free(text);
}

static void test_issue16(void) {
  aegis_engine_options *o = aegis_engine_options_new();
  aegis_engine *e = NULL, *e2 = NULL;
  char *err = NULL, *out = NULL;
  aegis_outcome oc;

  /* empty keys and bad key ids: AEGIS_CONFIG_INVALID, code config_invalid, the field named */
  CHECK(aegis_engine_options_set_approval_key(o, (const uint8_t *)"x", 0, &err) == AEGIS_CONFIG_INVALID && err,
        "empty approval key");
  CHECK(last_error_has("\"code\":\"config_invalid\"") && last_error_has("\"field\":\"approval_key\""), "json: %s",
        aegis_last_error_json() ? aegis_last_error_json() : "(null)");
  aegis_string_free(err);
  CHECK(aegis_engine_options_set_signing_key(o, (const uint8_t *)"k", 1, NULL) == AEGIS_OK, "sk");
  CHECK(aegis_last_error_json() == NULL, "no last error after a success");
  CHECK(aegis_engine_options_set_signing_key(o, (const uint8_t *)"", 0, NULL) == AEGIS_CONFIG_INVALID, "empty signing key");
  CHECK(last_error_has("\"field\":\"signing_key\""), "signing_key field");
  CHECK(aegis_engine_options_set_signing_key_id(o, "", NULL) == AEGIS_CONFIG_INVALID, "empty kid");
  CHECK(aegis_engine_options_set_signing_key_id(o, "ops\x01x", NULL) == AEGIS_CONFIG_INVALID, "control char kid");
  CHECK(last_error_has("\"field\":\"signing_key_id\""), "kid field");
  /* the builder kept the signing key "k": records are signed */
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, NULL) == AEGIS_OK, "load");
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, &out, NULL) == AEGIS_OK && out && strstr(out, "\"sig\":\""), "signed");
  aegis_string_free(out);
  out = NULL;
  /* an approval key set empty is not "no key but grants verified with the empty key": no key at all */
  char *tok = NULL;
  CHECK(aegis_engine_grant(e, "apr_x", "mallory", 60, &tok, NULL) == AEGIS_INVALID_ARGUMENT && tok == NULL, "no key");
  /* non-UTF-8 over the C ABI: AEGIS_INVALID_UTF8, code invalid_argument */
  CHECK(aegis_evaluate_json(e, "{\"agent\":\"\xff\"}", 12, &out, NULL) == AEGIS_INVALID_UTF8 && out == NULL, "utf8 req");
  CHECK(last_error_has("\"code\":\"invalid_argument\""), "utf8 code");
  CHECK(aegis_engine_kill(e, "agent", "bo\xfft", NULL, NULL) == AEGIS_INVALID_UTF8, "utf8 kill");
  /* a request error names its field */
  static const char UNKNOWN[] = "{\"agent\":\"a\",\"tool\":\"pay\",\"AGENT\":\"admin\"}";
  CHECK(aegis_evaluate_json(e, UNKNOWN, sizeof UNKNOWN - 1, &out, NULL) == AEGIS_INVALID_REQUEST, "AGENT");
  CHECK(last_error_has("\"code\":\"request_invalid\"") && last_error_has("\"field\":\"AGENT\""), "AGENT json");
  static const char DUP[] = "{\"agent\":\"a\",\"tool\":\"pay\",\"params\":{\"amount\":900},\"params\":{\"amount\":5}}";
  CHECK(aegis_evaluate_json(e, DUP, sizeof DUP - 1, &out, NULL) == AEGIS_INVALID_REQUEST, "duplicate params");
  static const char BIG[] = "{\"agent\":\"a\",\"tool\":\"pay\",\"params\":{\"amount\":9007199254740993}}";
  CHECK(aegis_evaluate_json(e, BIG, sizeof BIG - 1, &out, NULL) == AEGIS_INVALID_REQUEST, "2^53+1");
  CHECK(last_error_has("params.amount"), "2^53+1 path");
  aegis_engine_free(e);
  e = NULL;
  aegis_engine_options_free(o);

  /* load errors stay structured in the JSON */
  CHECK(aegis_engine_from_yaml("aegis: 1\nrules:\n  - id: a\n    outcome: alow\n", 41, &e, NULL) == AEGIS_POLICY_ERROR,
        "bad policy");
  CHECK(last_error_has("\"code\":\"policy_invalid\"") && last_error_has("\"line\":4"), "policy json: %s",
        aegis_last_error_json() ? aegis_last_error_json() : "(null)");

  /* a callback failing after the file sink wrote: the call fails, the chain stays whole */
  char dir[] = "/tmp/aegis-c16-XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  char audit[128];
  snprintf(audit, sizeof audit, "%s/audit.jsonl", dir);
  reentry_state s = {0};
  o = aegis_engine_options_new();
  CHECK(aegis_engine_options_set_audit_file(o, audit, AEGIS_FSYNC_NEVER, NULL) == AEGIS_OK, "af");
  CHECK(aegis_engine_options_add_audit_callback(o, reentry_cb, &s, NULL) == AEGIS_OK, "cb");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_OK, "load: %s", err ? err : "");
  s.engine = e;
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK, "record 0");
  s.fail = 1;
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, &err) == AEGIS_IO_ERROR && err, "failing callback");
  CHECK(last_error_has("\"code\":\"audit_failed\""), "audit_failed");
  aegis_string_free(err);
  err = NULL;
  s.fail = 0;
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK, "record 2");
  uint64_t seq = 0;
  char *head = NULL;
  CHECK(aegis_engine_chain_head(e, &seq, &head, NULL) == AEGIS_OK && seq == 3 && head && strlen(head) == 64,
        "chain head %llu", (unsigned long long)seq);
  aegis_string_free(head);
  head = NULL;

  /* a callback calling back into its engine: refused inside, the outer call fails, no deadlock */
  s.reenter = 1;
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, &out, &err) == AEGIS_IO_ERROR && out == NULL, "re-entrant callback");
  CHECK(err && strstr(err, "called back into its engine"), "re-entry message: %s", err ? err : "(null)");
  aegis_string_free(err);
  err = NULL;
  CHECK(s.inner_eval == AEGIS_IO_ERROR, "inner evaluate refused: %d", (int)s.inner_eval);
  CHECK(s.inner_kill == AEGIS_INVALID_ARGUMENT, "inner kill refused: %d", (int)s.inner_kill);
  s.reenter = 0;
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK, "after re-entry");
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK && oc == AEGIS_OUTCOME_ALLOW,
        "the inner kill did not take effect");

  /* one audit file per engine: a second engine on it fails (audit_failed) */
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e2, &err) == AEGIS_IO_ERROR && e2 == NULL,
        "second engine on the file");
  CHECK(err && strstr(err, "in use by another engine"), "lock message: %s", err ? err : "(null)");
  CHECK(last_error_has("\"code\":\"audit_failed\""), "lock code");
  aegis_string_free(err);
  err = NULL;
  aegis_engine_free(e);
  e = NULL;
  /* records 0, 1 (the failed callback's: in the file, chained), 2, 3 (the re-entrant call's), 4, 5 */
  check_chain(audit, 6);
  /* once the first is freed the file is free; the chain resumes at the next seq */
  s.engine = NULL;
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e2, &err) == AEGIS_OK, "reopen: %s", err ? err : "");
  CHECK(aegis_engine_chain_head(e2, &seq, &head, NULL) == AEGIS_OK && seq == 6, "resumed at %llu", (unsigned long long)seq);
  aegis_string_free(head);
  CHECK(aegis_engine_chain_head(e2, NULL, &head, NULL) == AEGIS_NULL_PARAMETER && head == NULL, "chain_head NULL");
  aegis_engine_free(e2);
  aegis_engine_options_free(o);
  remove(audit);
  rmdir(dir);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s VECTORS.txt POLICY_DIR\n", argv[0]);
    return 2;
  }
  int vectors = 0, steps = 0;
  if (run_vectors(argv[1], &vectors, &steps) != 0) return 2;
  int vector_failures = failures;
  test_bad_input();
  test_options(argv[2]);
  test_threads();
  test_issue16();
  test_collector_options();
  test_collector_e2e(argv[2]);
  printf("aegis C tests: %d vectors, %d vector steps (%d failed); %d checks, %d failed\n", vectors, steps,
         vector_failures, checks, failures);
  return failures == 0 ? 0 : 1;
}
