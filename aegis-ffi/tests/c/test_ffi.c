/* C tests of libaegis: every shared vector (converted by vectors_to_text.py, strictly per
 * tests/vectors/README.md "Schema (v2)") through aegis_engine_options_set_json and
 * aegis_evaluate_json byte for byte, then bad-input cases, the configuration document,
 * the last-error JSON, controls, threads, the collector option, and the collector end to
 * end against a real OpenTelemetry collector (rotel) when with_rotel.py runs this program
 * (env AEGIS_TEST_OTLP_ENDPOINT, AEGIS_TEST_ROTEL_OUT, AEGIS_TEST_TMP; without them that
 * part is skipped, saying so).
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

#define OR_NULL(s) ((s) ? (s) : "(null)")

/* aegis_engine_options_set_json with a NUL-terminated document. */
static aegis_status set_json(aegis_engine_options *o, const char *json, char **err) {
  return aegis_engine_options_set_json(o, json, strlen(json), err);
}

/* ---------------------------------------------------------------- the last error, parsed */

/* One load error of aegis_last_error_json(). */
typedef struct {
  long column;
  char *file;
  char *help; /* NULL when the JSON has none */
  long line;
  char *message;
} err_loc;

/* aegis_last_error_json(), parsed. */
typedef struct {
  char *code;
  err_loc errors[32];
  int nerrors;
  char *field;
  char *message;
} err_info;

typedef struct {
  const char *p;
  int ok;
} json_reader;

static int jr_lit(json_reader *j, const char *s) {
  size_t n = strlen(s);
  if (j->ok && strncmp(j->p, s, n) == 0) {
    j->p += n;
    return 1;
  }
  j->ok = 0;
  return 0;
}

static int jr_hex4(json_reader *j, unsigned long *out) {
  unsigned long v = 0;
  for (int i = 0; i < 4; i++) {
    char c = j->p[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return j->ok = 0;
    v = v * 16 + (unsigned long)d;
  }
  j->p += 4;
  *out = v;
  return 1;
}

/* A JSON string, escapes decoded to UTF-8 (malloc'ed; NULL and !ok on a mistake). */
static char *jr_string(json_reader *j) {
  if (!jr_lit(j, "\"")) return NULL;
  char *out = malloc(strlen(j->p) + 1); /* the decoded text is never longer */
  char *o = out;
  while (out && *j->p && *j->p != '"') {
    unsigned char c = (unsigned char)*j->p++;
    if (c < 0x20) break;
    if (c != '\\') {
      *o++ = (char)c;
      continue;
    }
    unsigned long cp = 0;
    switch (*j->p++) {
      case '"': *o++ = '"'; continue;
      case '\\': *o++ = '\\'; continue;
      case '/': *o++ = '/'; continue;
      case 'b': *o++ = '\b'; continue;
      case 'f': *o++ = '\f'; continue;
      case 'n': *o++ = '\n'; continue;
      case 'r': *o++ = '\r'; continue;
      case 't': *o++ = '\t'; continue;
      case 'u':
        if (!jr_hex4(j, &cp)) break;
        if (cp >= 0xd800 && cp < 0xdc00) {
          unsigned long lo = 0;
          if (!jr_lit(j, "\\u") || !jr_hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff) break;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          break;
        }
        if (cp < 0x80) {
          *o++ = (char)cp;
        } else if (cp < 0x800) {
          *o++ = (char)(0xc0 | (cp >> 6));
          *o++ = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
          *o++ = (char)(0xe0 | (cp >> 12));
          *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
          *o++ = (char)(0x80 | (cp & 0x3f));
        } else {
          *o++ = (char)(0xf0 | (cp >> 18));
          *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
          *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
          *o++ = (char)(0x80 | (cp & 0x3f));
        }
        continue;
      default: break;
    }
    j->ok = 0;
    break;
  }
  if (!out || !j->ok || *j->p != '"') {
    free(out);
    j->ok = 0;
    return NULL;
  }
  j->p++;
  *o = '\0';
  return out;
}

static long jr_int(json_reader *j) {
  long v = 0;
  if (!j->ok || *j->p < '0' || *j->p > '9') return j->ok = 0;
  while (*j->p >= '0' && *j->p <= '9') v = v * 10 + (*j->p++ - '0');
  return v;
}

static void err_info_free(err_info *e) {
  free(e->code);
  free(e->field);
  free(e->message);
  for (int i = 0; i < e->nerrors; i++) {
    free(e->errors[i].file);
    free(e->errors[i].help);
    free(e->errors[i].message);
  }
  memset(e, 0, sizeof *e);
}

/* Parses `json` strictly as the canonical §17 shape
 * {"code":…,"errors":[{"column":…,"file":…[,"help":…],"line":…,"message":…}…],"field":…,"message":…}.
 * Returns 1 when it is exactly that (free *e with err_info_free either way). */
static int parse_error_json(const char *json, err_info *e) {
  memset(e, 0, sizeof *e);
  if (!json) return 0;
  json_reader j = {json, 1};
  jr_lit(&j, "{\"code\":");
  e->code = jr_string(&j);
  jr_lit(&j, ",\"errors\":[");
  while (j.ok && *j.p != ']') {
    if (e->nerrors > 0) jr_lit(&j, ",");
    if (e->nerrors == 32) j.ok = 0;
    if (!j.ok) break;
    err_loc *l = &e->errors[e->nerrors++];
    jr_lit(&j, "{\"column\":");
    l->column = jr_int(&j);
    jr_lit(&j, ",\"file\":");
    l->file = jr_string(&j);
    if (j.ok && strncmp(j.p, ",\"help\":", 8) == 0) {
      jr_lit(&j, ",\"help\":");
      l->help = jr_string(&j);
    }
    jr_lit(&j, ",\"line\":");
    l->line = jr_int(&j);
    jr_lit(&j, ",\"message\":");
    l->message = jr_string(&j);
    jr_lit(&j, "}");
  }
  jr_lit(&j, "],\"field\":");
  e->field = jr_string(&j);
  jr_lit(&j, ",\"message\":");
  e->message = jr_string(&j);
  jr_lit(&j, "}");
  return j.ok && *j.p == '\0';
}

/* Checks that this thread's last error is a well-formed §17 object with this code and,
 * unless NULL, this field and exactly this message; the rest of the arguments say where. */
#define CHECK_LAST_ERROR(code_, field_, message_, ...)                                                     \
  do {                                                                                                      \
    err_info le_;                                                                                           \
    const char *lj_ = aegis_last_error_json();                                                              \
    const char *want_field_ = (field_), *want_message_ = (message_);                                       \
    int ok_ = parse_error_json(lj_, &le_) && strcmp(le_.code, (code_)) == 0 &&                              \
              (!want_field_ || strcmp(le_.field, want_field_) == 0) &&                                      \
              (!want_message_ || strcmp(le_.message, want_message_) == 0);                                  \
    CHECK(ok_, "last error %s, want code %s field %s message %s", OR_NULL(lj_), (code_), OR_NULL(want_field_), \
          OR_NULL(want_message_));                                                                          \
    if (!ok_) {                                                                                             \
      fprintf(stderr, "  in: ");                                                                            \
      fprintf(stderr, __VA_ARGS__);                                                                         \
      fputc('\n', stderr);                                                                                  \
    }                                                                                                       \
    err_info_free(&le_);                                                                                    \
  } while (0)

/* ---------------------------------------------------------------- vector file reader */

typedef struct {
  char *data[6];
  size_t len[6];
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
  if (count < 0 || count > 6) {
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

/* The fields each tag has (vectors_to_text.py). */
static int record_fields(char tag) {
  switch (tag) {
    case 'C': case 'Z': return 0;
    case 'N': case 'O': case 'G': case 'E': return 1;
    case 'X': case 'F': case 'V': case 'M': return 2;
    case 'P': case 'L': case 'K': return 3;
    case 'R': return 4;
    case 'Q': return 5;
  }
  return -1;
}

/* ---------------------------------------------------------------- vectors */

/* The runner's audit callback (`audit_callback: true`): keeps the last record, fails when told. */
typedef struct {
  int calls;
  int fail;
  char *last;
} vector_cb;

static int vector_callback(void *user, const char *record_json, size_t len) {
  vector_cb *s = user;
  s->calls++;
  free(s->last);
  s->last = malloc(len + 1);
  if (s->last) {
    memcpy(s->last, record_json, len);
    s->last[len] = '\0';
  }
  return s->fail;
}

typedef struct {
  int vectors, steps, not_applicable;
} vector_counts;

static int run_vectors(const char *path, vector_counts *n) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  record r;
  char name[256] = "";
  aegis_engine_options *opts = NULL;
  aegis_engine *engine = NULL;
  vector_cb cb = {0, 0, NULL};
  int callback = 0;
  err_info load = {0};
  int load_next = 0;
  static char load_msg[65536];
  while (read_record(f, &r)) {
    char *err = NULL;
    char *out = NULL;
    aegis_status st;
    int before = cb.calls;
    if (record_fields(r.tag) != r.count) {
      fprintf(stderr, "record %c has %d fields\n", r.tag, r.count);
      exit(2);
    }
    switch (r.tag) {
      case 'N':
        snprintf(name, sizeof name, "%s", r.data[0]);
        opts = aegis_engine_options_new();
        callback = 0;
        n->vectors++;
        break;
      case 'O':
        st = aegis_engine_options_set_json(opts, r.data[0], r.len[0], &err);
        CHECK(st == AEGIS_OK, "%s: options %s: %s", name, r.data[0], OR_NULL(err));
        break;
      case 'C':
        callback = 1;
        st = aegis_engine_options_add_audit_callback(opts, vector_callback, &cb, &err);
        CHECK(st == AEGIS_OK, "%s: callback: %s", name, OR_NULL(err));
        break;
      case 'P': {
        long want_errors = atol(r.data[2]);
        st = aegis_engine_from_yaml_with(r.data[0], r.len[0], opts, &engine, &err);
        if (want_errors == 0) {
          CHECK(st == AEGIS_OK, "%s: load: %s", name, OR_NULL(err));
          if (st == AEGIS_OK) {
            char *hash = NULL;
            CHECK(aegis_engine_policy_hash(engine, &hash, NULL) == AEGIS_OK, "%s: hash", name);
            CHECK(hash && strcmp(hash, r.data[1]) == 0, "%s: policy hash %s != %s", name, OR_NULL(hash), r.data[1]);
            aegis_string_free(hash);
          }
          break;
        }
        /* a load that must fail: one structured entry per error, and error_out lists them */
        CHECK(st == AEGIS_POLICY_ERROR && engine == NULL, "%s: load should fail", name);
        CHECK(parse_error_json(aegis_last_error_json(), &load) && strcmp(load.code, "policy_invalid") == 0 &&
                  load.nerrors == want_errors,
              "%s: want %ld load errors in %s", name, want_errors, OR_NULL(aegis_last_error_json()));
        snprintf(load_msg, sizeof load_msg, "%s", OR_NULL(err));
        load_next = 0;
        break;
      }
      case 'L': {
        n->steps++;
        const err_loc *l = load_next < load.nerrors ? &load.errors[load_next] : NULL;
        load_next++;
        /* the vector's message is a substring of `MESSAGE[ — HELP]` */
        char text[4096] = "";
        if (l) snprintf(text, sizeof text, "%s%s%s", l->message, l->help ? " — " : "", l->help ? l->help : "");
        CHECK(l && strcmp(l->file, "<yaml>") == 0 && l->line == atol(r.data[0]) && l->column == atol(r.data[1]) &&
                  strstr(text, r.data[2]),
              "%s: load error %d is not <yaml>:%s:%s containing %s (got %s:%ld:%ld: %s)", name, load_next, r.data[0],
              r.data[1], r.data[2], l ? l->file : "-", l ? l->line : 0, l ? l->column : 0, text);
        /* error_out: one line `<yaml>:LINE:COL: error: MESSAGE...` per error, in order */
        char prefix[64];
        snprintf(prefix, sizeof prefix, "<yaml>:%s:%s: error: ", r.data[0], r.data[1]);
        int found = 0;
        for (char *line = load_msg; line && *line;) {
          char *nl = strchr(line, '\n');
          size_t len = nl ? (size_t)(nl - line) : strlen(line);
          char saved = line[len];
          line[len] = '\0';
          if (strncmp(line, prefix, strlen(prefix)) == 0 && strstr(line, r.data[2])) found = 1;
          line[len] = saved;
          line = nl ? nl + 1 : NULL;
        }
        CHECK(found, "%s: no line %s%s in error_out:\n%s", name, prefix, r.data[2], load_msg);
        break;
      }
      case 'R':
        n->steps++;
        st = aegis_evaluate_json(engine, r.data[1], r.len[1], &out, &err);
        CHECK(st == AEGIS_OK, "%s / %s: status %d: %s", name, r.data[0], (int)st, OR_NULL(err));
        CHECK(out && strlen(out) == r.len[2] && memcmp(out, r.data[2], r.len[2]) == 0,
              "%s / %s:\n  got  %s\n  want %s", name, r.data[0], OR_NULL(out), r.data[2]);
        if (callback) {
          CHECK(cb.calls == before + 1, "%s / %s: the callback got %d records", name, r.data[0], cb.calls - before);
          CHECK(cb.last && strcmp(cb.last, r.data[3]) == 0, "%s / %s: callback record\n  got  %s\n  want %s", name,
                r.data[0], OR_NULL(cb.last), r.data[3]);
        }
        break;
      case 'X':
        n->steps++;
        out = (char *)1;
        st = aegis_evaluate_json(engine, r.data[1], r.len[1], &out, &err);
        CHECK(st == AEGIS_INVALID_REQUEST && out == NULL && err, "%s / %s: status %d", name, r.data[0], (int)st);
        CHECK_LAST_ERROR("request_invalid", NULL, err, "%s / %s", name, r.data[0]);
        CHECK(cb.calls == before, "%s / %s: a refused request reached the callback", name, r.data[0]);
        break;
      case 'F':
        n->steps++;
        cb.fail = 1;
        out = (char *)1;
        st = aegis_evaluate_json(engine, r.data[1], r.len[1], &out, &err);
        cb.fail = 0;
        CHECK(st == AEGIS_IO_ERROR && out == NULL && err, "%s / %s: status %d", name, r.data[0], (int)st);
        CHECK_LAST_ERROR("audit_failed", "", err, "%s / %s", name, r.data[0]);
        CHECK(cb.calls == before + 1, "%s / %s: the callback got %d records", name, r.data[0], cb.calls - before);
        break;
      case 'K':
        n->steps++;
        st = aegis_engine_kill(engine, r.data[0], r.data[1], r.data[2], &err);
        CHECK(st == AEGIS_OK, "%s: kill: %s", name, OR_NULL(err));
        break;
      case 'V': {
        bool revived = false;
        n->steps++;
        st = aegis_engine_revive(engine, r.data[0], r.data[1], &revived, &err);
        CHECK(st == AEGIS_OK, "%s: revive: %s", name, OR_NULL(err));
        break;
      }
      case 'M':
        /* marks: the session's live marks, as canonical JSON, byte for byte */
        n->steps++;
        out = NULL;
        st = aegis_engine_marks(engine, r.data[0], &out, &err);
        CHECK(st == AEGIS_OK, "%s: marks %s: %s", name, r.data[0], OR_NULL(err));
        CHECK(out && strlen(out) == r.len[1] && memcmp(out, r.data[1], r.len[1]) == 0,
              "%s: marks %s:\n  got  %s\n  want %s", name, r.data[0], OR_NULL(out), r.data[1]);
        CHECK(cb.calls == before, "%s: marks %s wrote a record", name, r.data[0]);
        break;
      case 'E': {
        bool cleared = true;
        n->steps++;
        st = aegis_engine_clear_marks(engine, r.data[0], &cleared, &err);
        CHECK(st == AEGIS_OK, "%s: clear_marks %s: %s", name, r.data[0], OR_NULL(err));
        CHECK(cb.calls == before, "%s: clear_marks %s wrote a record", name, r.data[0]);
        break;
      }
      case 'G':
        /* a guarded-tool step: C has no guarded-tool helper (README "Guarded-tool steps") */
        n->not_applicable++;
        break;
      case 'Q': {
        /* a configuration error: refused by set_json (or, had it passed, by the constructor) */
        n->steps++;
        aegis_engine_options *o = aegis_engine_options_new();
        aegis_engine *e = NULL;
        st = aegis_engine_options_set_json(o, r.data[0], r.len[0], &err);
        if (st == AEGIS_OK) {
          st = aegis_engine_from_yaml_with(r.data[4], r.len[4], o, &e, &err);
          CHECK(e == NULL, "%s: %s made an engine", name, r.data[0]);
          aegis_engine_free(e);
        }
        CHECK(st == AEGIS_CONFIG_INVALID, "%s: %s: status %d", name, r.data[0], (int)st);
        CHECK(err && strcmp(err, r.data[3]) == 0, "%s: %s:\n  error_out %s\n  want      %s", name, r.data[0],
              OR_NULL(err), r.data[3]);
        CHECK_LAST_ERROR(r.data[1], r.data[2], r.data[3], "%s: %s", name, r.data[0]);
        aegis_engine_options_free(o);
        break;
      }
      case 'Z':
        aegis_engine_free(engine);
        aegis_engine_options_free(opts);
        engine = NULL;
        opts = NULL;
        CHECK(load_next == load.nerrors, "%s: %d load errors checked of %d", name, load_next, load.nerrors);
        err_info_free(&load);
        load_next = 0;
        free(cb.last);
        cb = (vector_cb){0, 0, NULL};
        break;
      default:
        fprintf(stderr, "unknown tag %c\n", r.tag);
        exit(2);
    }
    aegis_string_free(err);
    if (out != (char *)1) aegis_string_free(out);
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
  CHECK(aegis_engine_options_set_json(NULL, "{}", 2, NULL) == AEGIS_NULL_PARAMETER, "opt null");
  CHECK_LAST_ERROR("invalid_argument", "options", "`options` is NULL", "set_json(NULL)");
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

/* ---------------------------------------------------------------- collector */

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
  CHECK(set_json(o, "{\"audit\":\"/tmp/x\",\"fsync\":\"sometimes\"}", &err) == AEGIS_CONFIG_INVALID, "fsync");
  CHECK(err && strcmp(err, "`fsync` must be \"always\", \"batch\" or \"never\", not \"sometimes\"") == 0, "fsync: %s",
        OR_NULL(err));
  aegis_string_free(err);
  CHECK(set_json(o, "{\"signing_key\":\"k1\",\"signing_key_id\":\"ops\",\"approval_key\":\"ak\"}", NULL) == AEGIS_OK,
        "keys");
  CHECK(aegis_engine_options_add_audit_callback(o, audit_cb, &s, NULL) == AEGIS_OK, "cb");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_OK, "load: %s", OR_NULL(err));
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, &out, NULL) == AEGIS_OK && out && strstr(out, "\"kid\":\"ops\""),
        "signed: %s", OR_NULL(out));
  aegis_string_free(out);
  CHECK(s.calls == 1, "callback called once: %d", s.calls);
  /* approval round trip */
  CHECK(aegis_evaluate_json(e, REQ_BIG, sizeof REQ_BIG - 1, &out, NULL) == AEGIS_OK && out, "approval");
  char id[128] = "";
  const char *p = out ? strstr(out, "\"approval\":{\"approvers\":[\"boss\"],\"id\":\"") : NULL;
  CHECK(p != NULL, "approval id in %s", OR_NULL(out));
  if (p) {
    p += strlen("\"approval\":{\"approvers\":[\"boss\"],\"id\":\"");
    size_t n = strcspn(p, "\"");
    if (n < sizeof id) memcpy(id, p, n), id[n] = '\0';
  }
  aegis_string_free(out);
  char *token = NULL;
  CHECK(aegis_engine_grant(e, id, "boss", 3600, &token, &err) == AEGIS_OK && token, "grant: %s", OR_NULL(err));
  if (token) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "{\"agent\":\"a\",\"tool\":\"pay\",\"params\":{\"amount\":500},\"time\":\"2026-01-05T10:00:00Z\",\"approval\":\"%s\"}",
                     token);
    (void)n;
    /* the grant is issued at the system clock; the request time is in 2026 — the token may
       be accepted or rejected by exp, but the call must succeed and stay well-formed. */
    CHECK(aegis_evaluate(e, req, strlen(req), &oc, &err) == AEGIS_OK, "with grant: %s", OR_NULL(err));
  }
  aegis_string_free(token);
  /* a failing callback fails the evaluation closed */
  s.fail = 1;
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, &out, &err) == AEGIS_IO_ERROR && out == NULL && err, "cb fail");
  CHECK_LAST_ERROR("audit_failed", "", err, "failing callback");
  aegis_string_free(err);
  aegis_engine_free(e);

  /* an audit file that cannot be opened */
  CHECK(set_json(o, "{\"audit\":\"/nonexistent/dir/audit.jsonl\",\"fsync\":\"never\"}", NULL) == AEGIS_OK, "af");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_IO_ERROR && e == NULL, "audit open");
  CHECK_LAST_ERROR("audit_failed", "", err, "audit open");
  aegis_string_free(err);
  aegis_engine_options_free(o);

  /* from_path on the finance bundle, reload */
  CHECK(aegis_engine_from_path(policy_dir, &e, &err) == AEGIS_OK, "from_path %s: %s", policy_dir, OR_NULL(err));
  if (e) {
    CHECK(aegis_engine_reload(e, &err) == AEGIS_OK, "reload: %s", OR_NULL(err));
    aegis_string_free(err);
    err = NULL;
  }
  aegis_string_free(err);
  aegis_engine_free(e);
}

/* ---------------------------------------------------------------- the configuration document */

/* Evaluates REQ on a new engine made with `doc` and returns the decision line (free it). */
static char *decide_with(const char *doc, const char *req) {
  aegis_engine_options *o = aegis_engine_options_new();
  aegis_engine *e = NULL;
  char *out = NULL, *err = NULL;
  CHECK(set_json(o, doc, &err) == AEGIS_OK, "%s: %s", doc, OR_NULL(err));
  aegis_string_free(err);
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, NULL) == AEGIS_OK, "%s: load", doc);
  if (e) CHECK(aegis_evaluate_json(e, req, strlen(req), &out, NULL) == AEGIS_OK, "%s: evaluate", doc);
  aegis_engine_free(e);
  aegis_engine_options_free(o);
  return out;
}

/* Sets `doc` on a new builder and checks the refusal: config_invalid, this field, a
 * message starting with `prefix` (the whole message when `exact`). */
static void refused(const char *doc, const char *field, const char *prefix, int exact) {
  aegis_engine_options *o = aegis_engine_options_new();
  char *err = NULL;
  CHECK(set_json(o, doc, &err) == AEGIS_CONFIG_INVALID, "%s: not refused", doc);
  CHECK(err && (exact ? strcmp(err, prefix) == 0 : strncmp(err, prefix, strlen(prefix)) == 0),
        "%s:\n  message %s\n  want    %s%s", doc, OR_NULL(err), prefix, exact ? "" : "…");
  CHECK_LAST_ERROR("config_invalid", field, err, "%s", doc);
  aegis_string_free(err);
  aegis_engine_options_free(o);
}

/* An approval id of the right form (apr_ and 32 hex digits). */
static const char APPROVAL_ID[] = "apr_0123456789abcdef0123456789abcdef";

static void test_config(void) {
  aegis_engine_options *o = aegis_engine_options_new();
  aegis_engine *e = NULL;
  char *err = NULL, *out = NULL;

  /* the acceptance example: exactly the core's message and JSON */
  static const char FSNYC[] = "{\"fsnyc\":\"always\"}";
  CHECK(aegis_engine_options_set_json(o, FSNYC, sizeof FSNYC - 1, &err) == AEGIS_CONFIG_INVALID, "fsnyc");
  CHECK(err && strcmp(err, "unknown option `fsnyc` (did you mean `fsync`?)") == 0, "fsnyc: %s", OR_NULL(err));
  CHECK(aegis_last_error_json() &&
            strcmp(aegis_last_error_json(),
                   "{\"code\":\"config_invalid\",\"errors\":[],\"field\":\"fsnyc\",\"message\":\"unknown option `fsnyc` "
                   "(did you mean `fsync`?)\"}") == 0,
        "fsnyc json: %s", OR_NULL(aegis_last_error_json()));
  aegis_string_free(err);
  refused("{\"request_max_bytes\":\"big\"}", "request_max_bytes",
          "`request_max_bytes` must be an integer number of bytes from 1 to 67108864, not \"big\"", 1);
  refused("{\"colour\":1}", "colour", "unknown option `colour`; the options are audit, fsync, rotate_bytes,", 0);
  refused("{\"requestMaxBytes\":5}", "requestMaxBytes", "unknown option `requestMaxBytes`", 0);
  refused("{\"fsync\":\"batch\"}", "fsync", "`fsync` sets how the audit file is written; give `audit` too (a file path)", 1);
  refused("{\"signing_key_id\":\"ops\"}", "signing_key_id", "`signing_key_id` names the signing key; give `signing_key` too", 1);
  refused("{\"approval_key\":{\"base64\":\"\"}}", "approval_key", "`approval_key` is empty;", 0);
  refused("{\"approval_key\":{\"base64\":\"***\"}}", "approval_key", "`approval_key`: not valid base64", 0);
  refused("{\"inbox\":\"sqlite:///x\"}", "inbox", "`inbox` is not supported yet (the approvals inbox, §12); leave it out", 1);
  refused("{\"state_timeout_ms\":5}", "state_timeout_ms", "`state_timeout_ms` sets how the fleet's store is used; give `state` too (a Redis URL)", 1);
  refused("{\"state\":\"http://127.0.0.1\"}", "state", "`state` must be \"memory\" or a Redis URL", 0);
  refused("{\"audit\":\"\"}", "audit", "`audit` must be a file path", 0);
  refused("{\"audit\":\"a\\u0000b\"}", "audit", "`audit` must be a file path", 0);
  /* not a JSON object: the core's messages, no field */
  refused("{\"fsync\":", "", "the options are not valid JSON", 0);
  refused("[]", "", "the options are a JSON object, not a", 0);
  refused("{\"a\":1,\"a\":2}", "", "the options are not valid JSON", 0);
  refused("", "", "the options are not valid JSON", 0);
  /* bad arguments at the boundary */
  static const char BAD_UTF8[] = "{\"audit\":\"\xff\"}";
  CHECK(aegis_engine_options_set_json(o, BAD_UTF8, sizeof BAD_UTF8 - 1, &err) == AEGIS_INVALID_UTF8 && err, "utf8");
  CHECK_LAST_ERROR("invalid_argument", "json", err, "utf8");
  aegis_string_free(err);
  CHECK(aegis_engine_options_set_json(o, NULL, 2, &err) == AEGIS_NULL_PARAMETER && err, "NULL json");
  CHECK_LAST_ERROR("invalid_argument", "json", "`json` is NULL", "NULL json");
  aegis_string_free(err);
  err = NULL;

  /* keys: a string is its UTF-8 bytes; {"base64": …} any bytes — the same key, the same signature */
  char *a = decide_with("{\"signing_key\":\"k1\"}", REQ);
  char *b = decide_with("{\"signing_key\":{\"base64\":\"azE=\"}}", REQ);
  CHECK(a && b && strstr(a, "\"sig\":\"") && strcmp(a, b) == 0, "base64 key:\n  %s\n  %s", OR_NULL(a), OR_NULL(b));
  aegis_string_free(a);
  aegis_string_free(b);
  /* null is an option not given */
  a = decide_with("{\"signing_key\":null,\"approval_key\":null}", REQ);
  CHECK(a && !strstr(a, "\"sig\""), "null key: %s", OR_NULL(a));
  aegis_string_free(a);
  /* request limits */
  static const char DEEP[] = "{\"agent\":\"a\",\"tool\":\"pay\",\"params\":{\"amount\":5,\"x\":{\"y\":{\"z\":1}}}}";
  CHECK(set_json(o, "{\"request_max_bytes\":256,\"request_max_depth\":2,\"max_limit_counters\":5}", &err) == AEGIS_OK,
        "limits: %s", OR_NULL(err));
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, NULL) == AEGIS_OK, "load");
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, &out, NULL) == AEGIS_OK, "small request");
  aegis_string_free(out);
  out = NULL;
  CHECK(aegis_evaluate_json(e, DEEP, sizeof DEEP - 1, &out, &err) == AEGIS_INVALID_REQUEST && out == NULL, "deep");
  CHECK_LAST_ERROR("request_invalid", NULL, err, "deep");
  CHECK(err && strstr(err, "nesting deeper than"), "deep: %s", OR_NULL(err));
  aegis_string_free(err);
  err = NULL;
  char long_req[512];
  snprintf(long_req, sizeof long_req, "{\"agent\":\"a\",\"tool\":\"pay\",\"params\":{\"amount\":5,\"note\":\"%0300d\"}}", 0);
  CHECK(aegis_evaluate_json(e, long_req, strlen(long_req), &out, &err) == AEGIS_INVALID_REQUEST, "long");
  CHECK_LAST_ERROR("request_invalid", "", "invalid request: request is 358 bytes; the limit is 256", "long");
  aegis_string_free(err);
  err = NULL;
  aegis_engine_free(e);
  e = NULL;

  /* a second call replaces the whole document; a refused one keeps the previous */
  CHECK(set_json(o, "{\"signing_key\":\"k\"}", NULL) == AEGIS_OK, "sk");
  CHECK(set_json(o, "{\"signing_key\":\"k\",\"fsnyc\":1}", NULL) == AEGIS_CONFIG_INVALID, "refused");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, NULL) == AEGIS_OK, "load");
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, &out, NULL) == AEGIS_OK && out && strstr(out, "\"sig\":\""),
        "the refused document left the signing key: %s", OR_NULL(out));
  aegis_string_free(out);
  out = NULL;
  aegis_engine_free(e);
  e = NULL;
  CHECK(set_json(o, "{\"approval_key\":\"ak\"}", NULL) == AEGIS_OK, "ak");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, NULL) == AEGIS_OK, "load");
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, &out, NULL) == AEGIS_OK && out && !strstr(out, "\"sig\""),
        "replaced, not merged: %s", OR_NULL(out));
  aegis_string_free(out);
  out = NULL;
  char *tok = NULL;
  CHECK(aegis_engine_grant(e, APPROVAL_ID, "boss", 60, &tok, NULL) == AEGIS_OK && tok, "approval key in force");
  aegis_string_free(tok);
  aegis_engine_free(e);
  e = NULL;
  CHECK(set_json(o, "{}", NULL) == AEGIS_OK, "{}");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, NULL) == AEGIS_OK, "load");
  tok = (char *)1;
  CHECK(aegis_engine_grant(e, APPROVAL_ID, "boss", 60, &tok, NULL) == AEGIS_INVALID_ARGUMENT && tok == NULL, "{} resets");
  aegis_engine_free(e);
  e = NULL;

  /* with a callback added, the file options need `audit` as a path too (the message says so) */
  cb_state s = {0, 0};
  CHECK(aegis_engine_options_add_audit_callback(o, audit_cb, &s, NULL) == AEGIS_OK, "cb");
  CHECK(set_json(o, "{\"rotate_bytes\":4096}", &err) == AEGIS_CONFIG_INVALID, "rotate without a file");
  CHECK(err && strcmp(err, "`rotate_bytes` sets how the audit file is written; `audit` is a callback here; give `audit` "
                           "as a file path") == 0,
        "callback message: %s", OR_NULL(err));
  aegis_string_free(err);
  err = NULL;
  /* a file and a callback: the record goes to both, the file first */
  char dir[] = "/tmp/aegis-c-config-XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  char doc[256], audit[128];
  snprintf(audit, sizeof audit, "%s/audit.jsonl", dir);
  snprintf(doc, sizeof doc, "{\"audit\":\"%s\",\"fsync\":\"never\",\"rotate_bytes\":1048576}", audit);
  CHECK(set_json(o, doc, &err) == AEGIS_OK, "file and callback: %s", OR_NULL(err));
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_OK, "load: %s", OR_NULL(err));
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, &out, NULL) == AEGIS_OK, "evaluate");
  aegis_string_free(out);
  out = NULL;
  CHECK(s.calls == 1, "callback: %d", s.calls);
  aegis_engine_free(e);
  e = NULL;
  size_t len = 0;
  char *text = slurp(audit, &len);
  CHECK(text && len > 0 && strchr(text, '\n') == text + len - 1, "one record in the file: %s", OR_NULL(text));
  free(text);
  remove(audit);
  rmdir(dir);
  aegis_engine_options_free(o);
}

/* ---------------------------------------------------------------- the last error */

typedef struct {
  const char *seen; /* aegis_last_error_json() on a fresh thread */
} thread_probe;

static void *probe_last_error(void *arg) {
  thread_probe *p = arg;
  p->seen = aegis_last_error_json();
  return NULL;
}

static void test_last_error(void) {
  aegis_engine *e = NULL;
  char *err = NULL;

  /* three errors in a bundle: three entries, each with its location; error_out lists them */
  static const char THREE[] =
      "aegis: 1\nrules:\n  - id: a\n    outcome: alow\n  - id: b\n    outcome: dney\n    colour: red\n";
  CHECK(aegis_engine_from_yaml(THREE, sizeof THREE - 1, &e, &err) == AEGIS_POLICY_ERROR && e == NULL, "three");
  err_info info;
  CHECK(parse_error_json(aegis_last_error_json(), &info) && strcmp(info.code, "policy_invalid") == 0 &&
            info.nerrors == 3 && strcmp(info.field, "") == 0,
        "three: %s", OR_NULL(aegis_last_error_json()));
  static const long want[3][2] = {{4, 14}, {6, 14}, {7, 5}};
  for (int i = 0; i < info.nerrors && i < 3; i++) {
    CHECK(info.errors[i].line == want[i][0] && info.errors[i].column == want[i][1] &&
              strcmp(info.errors[i].file, "<yaml>") == 0 && info.errors[i].message[0],
          "error %d at %ld:%ld", i, info.errors[i].line, info.errors[i].column);
  }
  CHECK(info.nerrors == 3 && info.errors[0].help && strstr(info.errors[0].help, "allow"), "help of the first error");
  CHECK(info.nerrors == 3 && strstr(info.message, "(and 2 more)"), "message: %s", OR_NULL(info.message));
  err_info_free(&info);
  CHECK(err && strncmp(err, "<yaml>:4:14: error: ", 20) == 0 && strstr(err, "\n<yaml>:6:14: error: ") &&
            strstr(err, "\n<yaml>:7:5: error: "),
        "error_out lists every error: %s", OR_NULL(err));

  /* lifetime: functions that return no status leave it; the next status-returning call replaces it */
  const char *j = aegis_last_error_json();
  aegis_string_free(err);
  aegis_engine_free(NULL);
  aegis_engine_options_free(aegis_engine_options_new());
  (void)aegis_version();
  CHECK(aegis_last_error_json() == j && j && strstr(j, "policy_invalid"), "still the load error: %s", OR_NULL(j));
  /* per thread: another thread has its own (none) */
  thread_probe p = {(const char *)1};
  pthread_t t;
  pthread_create(&t, NULL, probe_last_error, &p);
  pthread_join(t, NULL);
  CHECK(p.seen == NULL, "another thread sees no error");
  CHECK(aegis_engine_from_yaml(POLICY, sizeof POLICY - 1, &e, NULL) == AEGIS_OK, "load");
  CHECK(aegis_last_error_json() == NULL, "a success clears it");

  /* every failing call sets it, with the argument at fault as `field` */
  char *out = NULL;
  CHECK(aegis_engine_kill(NULL, "agent", "a", NULL, NULL) == AEGIS_NULL_PARAMETER, "kill NULL");
  CHECK_LAST_ERROR("invalid_argument", "engine", "`engine` is NULL", "kill NULL");
  CHECK(aegis_evaluate_json(e, REQ, sizeof REQ - 1, NULL, NULL) == AEGIS_NULL_PARAMETER, "no out");
  CHECK_LAST_ERROR("invalid_argument", "decision_json_out", NULL, "no out");
  CHECK(aegis_engine_kill(e, "agent", "\xff", NULL, NULL) == AEGIS_INVALID_UTF8, "kill utf8");
  CHECK_LAST_ERROR("invalid_argument", "id", NULL, "kill utf8");
  CHECK(aegis_engine_kill(e, "planet", "x", NULL, NULL) == AEGIS_INVALID_ARGUMENT, "bad scope");
  CHECK_LAST_ERROR("invalid_argument", "", "unknown kill scope `planet` (agent, tool, session, all)", "bad scope");
  CHECK(aegis_engine_grant(e, "x", "y", 60, &out, NULL) == AEGIS_INVALID_ARGUMENT && out == NULL, "no key");
  CHECK_LAST_ERROR("invalid_argument", "", NULL, "no key");
  CHECK(aegis_engine_reload(e, NULL) == AEGIS_POLICY_ERROR, "reload of a yaml engine");
  CHECK_LAST_ERROR("policy_invalid", "", NULL, "reload");
  CHECK(aegis_engine_reload_yaml(e, THREE, sizeof THREE - 1, &err) == AEGIS_POLICY_ERROR, "reload three");
  CHECK(parse_error_json(aegis_last_error_json(), &info) && info.nerrors == 3, "reload: three entries");
  err_info_free(&info);
  aegis_string_free(err);
  err = NULL;
  CHECK(aegis_engine_collector_flush(e, 1, NULL) == AEGIS_NO_COLLECTOR, "no collector");
  CHECK_LAST_ERROR("invalid_argument", "", NULL, "no collector");
  static const char BAD[] = "{\"agent\":\"a\",\"tool\":\"pay\",\"AGENT\":\"admin\"}";
  CHECK(aegis_evaluate(e, BAD, sizeof BAD - 1, (aegis_outcome[]){AEGIS_OUTCOME_DENY}, NULL) == AEGIS_INVALID_REQUEST,
        "bad request");
  CHECK_LAST_ERROR("request_invalid", "AGENT", NULL, "bad request");
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

static void test_collector_options(void) {
  aegis_engine_options *o = aegis_engine_options_new();
  aegis_engine *e = NULL;
  char *err = NULL;
  char *out = (char *)1;
  static const char GOOD[] = "\"collector\":{\"endpoint\":\"http://127.0.0.1:9\",\"request_timeout_ms\":200,\"max_backoff_ms\":50}";
  static const char TYPO[] = "\"collector\":{\"endpoint\":\"http://127.0.0.1:4318\",\"endpiont\":\"x\"}";
  static const char FTP[] = "\"collector\":{\"endpoint\":\"ftp://x\"}";
  char doc[512];
#define WITH_FILE(settings) (snprintf(doc, sizeof doc, "{\"audit\":\"/tmp/aegis-c-unused.jsonl\",%s}", settings), doc)

  /* the collector's settings are checked when the document is set: config_invalid, field
     `collector`, the aegis-ship message (an unknown key names the closest one) */
  CHECK(set_json(o, WITH_FILE(TYPO), &err) == AEGIS_CONFIG_INVALID, "typo");
  CHECK(err && strcmp(err, "invalid collector configuration: unknown option `endpiont` (did you mean `endpoint`?)") == 0,
        "typo message: %s", OR_NULL(err));
  CHECK_LAST_ERROR("config_invalid", "collector", err, "typo");
  aegis_string_free(err);
  CHECK(set_json(o, WITH_FILE(FTP), &err) == AEGIS_CONFIG_INVALID, "ftp");
  CHECK(err && strstr(err, "invalid collector configuration: `endpoint` must be an http:// or https:// URL"),
        "ftp message: %s", OR_NULL(err));
  aegis_string_free(err);
  CHECK(set_json(o, WITH_FILE("\"collector\":[]"), &err) == AEGIS_CONFIG_INVALID && err, "not an object");
  CHECK_LAST_ERROR("config_invalid", "collector", "`collector` must be an object, not []", "not an object");
  aegis_string_free(err);
  err = NULL;

  /* a collector needs an audit FILE: none, then a callback only */
  snprintf(doc, sizeof doc, "{%s}", GOOD);
  CHECK(set_json(o, doc, &err) == AEGIS_CONFIG_INVALID, "no audit file");
  CHECK(err && strcmp(err, "`collector` ships the audit file; give `audit` too (a file path)") == 0,
        "no audit file message: %s", OR_NULL(err));
  CHECK_LAST_ERROR("config_invalid", "collector", err, "no audit file");
  aegis_string_free(err);
  cb_state s = {0, 0};
  CHECK(aegis_engine_options_add_audit_callback(o, audit_cb, &s, NULL) == AEGIS_OK, "cb");
  CHECK(set_json(o, doc, &err) == AEGIS_CONFIG_INVALID, "callback sink");
  CHECK(err && strcmp(err, "`collector` ships the audit file; `audit` is a callback here; give `audit` as a file path") == 0,
        "callback sink message: %s", OR_NULL(err));
  aegis_string_free(err);
  err = NULL;
  /* nothing was stored: the builder makes an engine without a collector */
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_OK, "load: %s", OR_NULL(err));
  CHECK(aegis_engine_collector_flush(e, 10, NULL) == AEGIS_NO_COLLECTOR, "no collector");
  aegis_engine_free(e);
  e = NULL;
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
  snprintf(doc, sizeof doc, "{\"audit\":\"%s\",\"fsync\":\"never\",%s}", audit, GOOD);
  CHECK(set_json(o, doc, &err) == AEGIS_OK, "good: %s", OR_NULL(err));
  /* a rejected document keeps the previous one */
  CHECK(set_json(o, WITH_FILE(FTP), NULL) == AEGIS_CONFIG_INVALID, "ftp again");
#undef WITH_FILE
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_OK, "load: %s", OR_NULL(err));
  aegis_engine_options_free(o);
  aegis_outcome oc;
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK && oc == AEGIS_OUTCOME_ALLOW, "evaluate");
  CHECK(aegis_engine_collector_flush(e, 300, &err) == AEGIS_COLLECTOR_ERROR && err, "flush to nowhere");
  CHECK(err && strstr(err, "flush timed out"), "flush message: %s", OR_NULL(err));
  aegis_string_free(err);
  CHECK(aegis_engine_collector_metrics(e, &out, NULL) == AEGIS_OK && out, "metrics");
  CHECK(json_number(out, "pending") == 1 && json_number(out, "shipped") == 0 && strstr(out, "\"last_error\":\""),
        "metrics: %s", OR_NULL(out));
  aegis_string_free(out);
  CHECK(aegis_engine_collector_close(e, 100, &out, &err) == AEGIS_COLLECTOR_ERROR && err && out, "close fails");
  CHECK(json_number(out, "pending") == 1, "final metrics: %s", OR_NULL(out));
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
  char path[512], audit[512], audit2[512], config[2048];
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
  int n = snprintf(config, sizeof config,
                   "{\"audit\":\"%s\",\"fsync\":\"batch\",\"collector\":{\"endpoint\":\"%s\",\"batch_age_ms\":50,"
                   "\"service_name\":\"c-test\"}}",
                   audit, endpoint);
  CHECK(aegis_engine_options_set_json(o, config, (size_t)n, &err) == AEGIS_OK, "collector: %s", OR_NULL(err));
  aegis_string_free(err);
  CHECK(aegis_engine_from_path_with(policy_dir, o, &e, &err) == AEGIS_OK && e, "load: %s", OR_NULL(err));
  aegis_string_free(err);
  if (!e) {
    aegis_engine_options_free(o);
    free(reqs_text);
    return;
  }
  for (int i = 0; i < N; i++) {
    const char *r = reqs[i % nreqs];
    CHECK(aegis_evaluate_json(e, r, strlen(r), &out, &err) == AEGIS_OK, "evaluate %d: %s", i, OR_NULL(err));
    aegis_string_free(out);
    aegis_string_free(err);
  }
  CHECK(aegis_engine_collector_flush(e, 10000, &err) == AEGIS_OK, "flush: %s", OR_NULL(err));
  aegis_string_free(err);
  CHECK(aegis_engine_collector_metrics(e, &out, NULL) == AEGIS_OK && out, "metrics");
  CHECK(json_number(out, "shipped") == N && json_number(out, "pending") == 0 && strstr(out, "\"last_error\":null"),
        "metrics after flush: %s", OR_NULL(out));
  CHECK(json_number(out, "seq") == N - 1, "cursor at the last record: %s", OR_NULL(out));
  aegis_string_free(out);
  int missing = wait_received(rotel_out, audit, 0, N, 10000);
  CHECK(missing == 0, "%d of %d records not received by rotel (see %s)", missing, N, rotel_out);

  /* close: final metrics; twice; metrics and flush after close */
  CHECK(aegis_engine_collector_close(e, -1, &out, &err) == AEGIS_OK && out, "close: %s", OR_NULL(err));
  CHECK(json_number(out, "shipped") == N && json_number(out, "pending") == 0, "final metrics: %s", OR_NULL(out));
  aegis_string_free(out);
  aegis_string_free(err);
  CHECK(aegis_engine_collector_close(e, 0, NULL, NULL) == AEGIS_OK, "close twice");
  CHECK(aegis_engine_collector_metrics(e, &out, NULL) == AEGIS_OK && json_number(out, "shipped") == N,
        "metrics after close: %s", OR_NULL(out));
  aegis_string_free(out);
  CHECK(aegis_engine_collector_flush(e, 1000, NULL) == AEGIS_OK, "flush after close, nothing pending");
  /* evaluate still records after close; nothing ships it any more */
  CHECK(aegis_evaluate_json(e, reqs[0], strlen(reqs[0]), &out, NULL) == AEGIS_OK, "evaluate after close");
  aegis_string_free(out);
  CHECK(aegis_engine_collector_flush(e, 200, &err) == AEGIS_COLLECTOR_ERROR && err && strstr(err, "shipping has stopped"),
        "flush after close, one pending: %s", OR_NULL(err));
  aegis_string_free(err);
  aegis_engine_free(e);

  /* aegis_engine_free closes the collector with a final attempt (close_timeout_ms): with
     rotel paused (SIGSTOP) while the records are written, one-record requests queue up,
     and once it is resumed the final attempt delivers them all (a collector merely dropped
     would deliver at most the one in flight). */
  n = snprintf(config, sizeof config,
               "{\"audit\":\"%s\",\"fsync\":\"never\",\"collector\":{\"endpoint\":\"%s\",\"batch\":1,"
               "\"close_timeout_ms\":60000,\"service_name\":\"c-test\"}}",
               audit2, endpoint);
  CHECK(aegis_engine_options_set_json(o, config, (size_t)n, NULL) == AEGIS_OK, "collector 2");
  CHECK(aegis_engine_from_path_with(policy_dir, o, &e, &err) == AEGIS_OK && e, "load 2: %s", OR_NULL(err));
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
  aegis_status inner_eval, inner_kill, inner_head, inner_reload;
  int inner_kill_audit_failed;   /* the inner kill's last error had code audit_failed */
  int inner_reload_audit_failed; /* so had the inner reload's: not policy_invalid */
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
    s->inner_kill_audit_failed = last_error_has("\"code\":\"audit_failed\"");
    uint64_t seq = 0;
    char *head = NULL;
    s->inner_head = aegis_engine_chain_head(s->engine, &seq, &head, NULL);
    aegis_string_free(head);
    s->inner_reload = aegis_engine_reload_yaml(s->engine, POLICY, sizeof POLICY - 1, NULL);
    s->inner_reload_audit_failed = last_error_has("\"code\":\"audit_failed\"");
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
  CHECK(set_json(o, "{\"approval_key\":\"\"}", &err) == AEGIS_CONFIG_INVALID && err, "empty approval key");
  CHECK_LAST_ERROR("config_invalid", "approval_key", err, "empty approval key");
  aegis_string_free(err);
  CHECK(set_json(o, "{\"signing_key\":\"k\"}", NULL) == AEGIS_OK, "sk");
  CHECK(aegis_last_error_json() == NULL, "no last error after a success");
  CHECK(set_json(o, "{\"signing_key\":\"\"}", NULL) == AEGIS_CONFIG_INVALID, "empty signing key");
  CHECK_LAST_ERROR("config_invalid", "signing_key", NULL, "empty signing key");
  CHECK(set_json(o, "{\"signing_key\":\"k\",\"signing_key_id\":\"\"}", NULL) == AEGIS_CONFIG_INVALID, "empty kid");
  CHECK(set_json(o, "{\"signing_key\":\"k\",\"signing_key_id\":\"ops\\u0001x\"}", NULL) == AEGIS_CONFIG_INVALID,
        "control char kid");
  CHECK_LAST_ERROR("config_invalid", "signing_key_id", NULL, "control char kid");
  char long_kid[400];
  snprintf(long_kid, sizeof long_kid, "{\"signing_key\":\"k\",\"signing_key_id\":\"%0257d\"}", 0);
  CHECK(set_json(o, long_kid, NULL) == AEGIS_CONFIG_INVALID, "kid of 257 bytes");
  CHECK_LAST_ERROR("config_invalid", "signing_key_id", NULL, "kid of 257 bytes");
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
        OR_NULL(aegis_last_error_json()));

  /* a callback failing after the file sink wrote: the call fails, the chain stays whole */
  char dir[] = "/tmp/aegis-c16-XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  char audit[128];
  snprintf(audit, sizeof audit, "%s/audit.jsonl", dir);
  reentry_state s = {0};
  o = aegis_engine_options_new();
  char doc[256];
  snprintf(doc, sizeof doc, "{\"audit\":\"%s\",\"fsync\":\"never\"}", audit);
  CHECK(set_json(o, doc, NULL) == AEGIS_OK, "af");
  CHECK(aegis_engine_options_add_audit_callback(o, reentry_cb, &s, NULL) == AEGIS_OK, "cb");
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e, &err) == AEGIS_OK, "load: %s", OR_NULL(err));
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
  CHECK(err && strstr(err, "called back into its engine"), "re-entry message: %s", OR_NULL(err));
  aegis_string_free(err);
  err = NULL;
  CHECK(s.inner_eval == AEGIS_IO_ERROR, "inner evaluate refused: %d", (int)s.inner_eval);
  /* a control call from inside the callback: audit_failed, as in Python and Node */
  CHECK(s.inner_kill == AEGIS_IO_ERROR && s.inner_kill_audit_failed, "inner kill refused: %d", (int)s.inner_kill);
  CHECK(s.inner_head == AEGIS_IO_ERROR, "inner chain head refused: %d", (int)s.inner_head);
  CHECK(s.inner_reload == AEGIS_IO_ERROR && s.inner_reload_audit_failed, "inner reload refused as audit_failed: %d",
        (int)s.inner_reload);
  s.reenter = 0;
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK, "after re-entry");
  CHECK(aegis_evaluate(e, REQ, sizeof REQ - 1, &oc, NULL) == AEGIS_OK && oc == AEGIS_OUTCOME_ALLOW,
        "the inner kill did not take effect");

  /* one audit file per engine: a second engine on it fails (audit_failed) */
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e2, &err) == AEGIS_IO_ERROR && e2 == NULL,
        "second engine on the file");
  CHECK(err && strstr(err, "in use by another engine"), "lock message: %s", OR_NULL(err));
  CHECK(last_error_has("\"code\":\"audit_failed\""), "lock code");
  aegis_string_free(err);
  err = NULL;
  aegis_engine_free(e);
  e = NULL;
  /* records 0, 1 (the failed callback's: in the file, chained), 2, 3 (the re-entrant call's), 4, 5 */
  check_chain(audit, 6);
  /* once the first is freed the file is free; the chain resumes at the next seq */
  s.engine = NULL;
  CHECK(aegis_engine_from_yaml_with(POLICY, sizeof POLICY - 1, o, &e2, &err) == AEGIS_OK, "reopen: %s", OR_NULL(err));
  CHECK(aegis_engine_chain_head(e2, &seq, &head, NULL) == AEGIS_OK && seq == 6, "resumed at %llu", (unsigned long long)seq);
  aegis_string_free(head);
  CHECK(aegis_engine_chain_head(e2, NULL, &head, NULL) == AEGIS_NULL_PARAMETER && head == NULL, "chain_head NULL");
  aegis_engine_free(e2);
  aegis_engine_options_free(o);
  remove(audit);
  rmdir(dir);
}

/* ---------------------------------------------------------------- session marks (SPEC §10) */

static const char MARKS_POLICY[] =
    "aegis: 1\n"
    "rules:\n"
    "  - id: hr-reads\n"
    "    match: {tool: files, action: read}\n"
    "    outcome: allow\n"
    "    marks: [pii]\n"
    "  - id: web-fetch\n"
    "    match: {tool: browser, action: fetch}\n"
    "    outcome: allow\n"
    "    marks: [{label: untrusted, ttl: 2h}]\n"
    "  - id: lethal-trifecta\n"
    "    match: {tool: send_email}\n"
    "    when: {session.marks: {contains_all: [pii, untrusted]}}\n"
    "    outcome: deny\n"
    "  - id: mail\n"
    "    match: {tool: send_email}\n"
    "    outcome: allow\n";

/* Requests in the future (2030): their marks are live at the engine's clock now. */
#define MARKS_AT "\"time\":\"2030-01-01T00:00:00Z\""
static const char HR_READ[] = "{\"agent\":\"a\",\"tool\":\"files\",\"action\":\"read\",\"session\":\"s-1\"," MARKS_AT "}";
static const char WEB_FETCH[] = "{\"agent\":\"a\",\"tool\":\"browser\",\"action\":\"fetch\",\"session\":\"s-1\"," MARKS_AT "}";
static const char SEND[] = "{\"agent\":\"a\",\"tool\":\"send_email\",\"session\":\"s-1\"," MARKS_AT "}";

/* aegis_engine_marks(e, session) is AEGIS_OK with exactly `want`. */
static void check_marks(const aegis_engine *e, const char *session, const char *want, const char *where) {
  char *out = (char *)1, *err = (char *)1;
  aegis_status st = aegis_engine_marks(e, session, &out, &err);
  CHECK(st == AEGIS_OK && err == NULL && aegis_last_error_json() == NULL, "%s: marks %s: status %d: %s", where, session,
        (int)st, st == AEGIS_OK ? "" : OR_NULL(err));
  CHECK(st == AEGIS_OK && out && strcmp(out, want) == 0, "%s: marks %s: got %s, want %s", where, session,
        st == AEGIS_OK ? OR_NULL(out) : "-", want);
  if (st == AEGIS_OK) {
    aegis_string_free(out);
  } else {
    aegis_string_free(err);
  }
}

/* Evaluates `req` and checks that the decision line contains `want` (e.g. the record's marks). */
static void check_decision(const aegis_engine *e, const char *req, const char *want, const char *where) {
  char *out = NULL, *err = NULL;
  CHECK(aegis_evaluate_json(e, req, strlen(req), &out, &err) == AEGIS_OK && out && strstr(out, want), "%s: %s in %s (%s)",
        where, want, OR_NULL(out), OR_NULL(err));
  aegis_string_free(out);
  aegis_string_free(err);
}

/* A control call refused before it reaches the core (or by it): this status, no output,
 * error_out set, and the last error with this code, field and message. */
#define CHECK_REFUSED(call_, status_, out_, field_, message_)                                                   \
  do {                                                                                                           \
    char *err_ = NULL;                                                                                           \
    aegis_status st_ = (call_);                                                                                  \
    CHECK(st_ == (status_) && (out_) && err_ && strcmp(err_, (message_)) == 0, "%s: status %d, error_out %s",    \
          #call_, (int)st_, OR_NULL(err_));                                                                      \
    CHECK_LAST_ERROR("invalid_argument", (field_), (message_), "%s", #call_);                                    \
    aegis_string_free(err_);                                                                                     \
  } while (0)

typedef struct {
  aegis_engine *engine;
  aegis_status inner_marks, inner_clear;
  int inner_marks_audit_failed, inner_clear_audit_failed;
  char *inner_out;
} marks_reentry;

static int marks_reentry_cb(void *user, const char *line, size_t len) {
  marks_reentry *m = user;
  (void)line;
  (void)len;
  if (m->engine) {
    m->inner_out = (char *)1;
    m->inner_marks = aegis_engine_marks(m->engine, "s-1", &m->inner_out, NULL);
    m->inner_marks_audit_failed = last_error_has("\"code\":\"audit_failed\"");
    bool cleared = true;
    m->inner_clear = aegis_engine_clear_marks(m->engine, "s-1", &cleared, NULL);
    m->inner_clear_audit_failed = last_error_has("\"code\":\"audit_failed\"") && !cleared;
  }
  return 0;
}

/* "YYYY-MM-DDTHH:MM:SSZ", `ago` seconds before now. */
static void time_ago(char *buf, size_t n, long ago) {
  time_t t = time(NULL) - ago;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void test_marks(void) {
  aegis_engine *e = NULL;
  char *err = NULL, *out = NULL;
  bool cleared = false;
  CHECK(aegis_engine_from_yaml(MARKS_POLICY, sizeof MARKS_POLICY - 1, &e, &err) == AEGIS_OK && e, "marks load: %s",
        OR_NULL(err));
  aegis_string_free(err);
  err = NULL;
  if (!e) return;

  /* none yet; a marking call; the record's marks; then marks() */
  check_marks(e, "s-1", "[]", "fresh");
  check_decision(e, HR_READ, "\"marks\":[\"pii\"],\"outcome\":\"allow\"", "hr read");
  check_marks(e, "s-1", "[\"pii\"]", "after hr read");
  check_decision(e, WEB_FETCH, "\"marks\":[\"pii\",\"untrusted\"],\"outcome\":\"allow\"", "web fetch");
  check_marks(e, "s-1", "[\"pii\",\"untrusted\"]", "after web fetch");
  check_marks(e, "s-2", "[]", "another session");
  check_decision(e, SEND, "\"rules\":[\"lethal-trifecta\"]", "the trifecta");
  /* a call that touches no marks reads none: aegis_evaluate works alike */
  aegis_outcome oc = AEGIS_OUTCOME_ALLOW;
  CHECK(aegis_evaluate(e, SEND, sizeof SEND - 1, &oc, NULL) == AEGIS_OK && oc == AEGIS_OUTCOME_DENY, "trifecta outcome");

  /* marks survive a reload */
  CHECK(aegis_engine_reload_yaml(e, MARKS_POLICY, sizeof MARKS_POLICY - 1, NULL) == AEGIS_OK, "reload");
  check_marks(e, "s-1", "[\"pii\",\"untrusted\"]", "after reload");

  /* clear: whether it had live ones; error_out reset to NULL on success */
  err = (char *)1;
  CHECK(aegis_engine_clear_marks(e, "s-1", &cleared, &err) == AEGIS_OK && cleared && err == NULL, "clear");
  check_marks(e, "s-1", "[]", "after clear");
  cleared = true;
  CHECK(aegis_engine_clear_marks(e, "s-1", &cleared, NULL) == AEGIS_OK && !cleared, "clear twice");
  cleared = true;
  CHECK(aegis_engine_clear_marks(e, "never-seen", &cleared, NULL) == AEGIS_OK && !cleared, "clear an unknown session");
  check_decision(e, SEND, "\"rules\":[\"mail\"]", "mail after clear");
  /* cleared_out may be NULL */
  check_decision(e, HR_READ, "\"marks\":[\"pii\"]", "hr read again");
  CHECK(aegis_engine_clear_marks(e, "s-1", NULL, NULL) == AEGIS_OK, "clear, cleared_out NULL");
  check_marks(e, "s-1", "[]", "after clear with cleared_out NULL");

  /* NULL arguments: AEGIS_NULL_PARAMETER, out set to NULL, field naming the argument */
  out = (char *)1;
  CHECK_REFUSED(aegis_engine_marks(e, NULL, &out, &err_), AEGIS_NULL_PARAMETER, out == NULL, "session",
                "`session` is NULL");
  CHECK_REFUSED(aegis_engine_marks(e, "s-1", NULL, &err_), AEGIS_NULL_PARAMETER, 1, "marks_json_out",
                "`marks_json_out` is NULL");
  out = (char *)1;
  CHECK_REFUSED(aegis_engine_marks(NULL, "s-1", &out, &err_), AEGIS_NULL_PARAMETER, out == NULL, "engine",
                "`engine` is NULL");
  cleared = true;
  CHECK_REFUSED(aegis_engine_clear_marks(e, NULL, &cleared, &err_), AEGIS_NULL_PARAMETER, !cleared, "session",
                "`session` is NULL");
  cleared = true;
  CHECK_REFUSED(aegis_engine_clear_marks(NULL, "s-1", &cleared, &err_), AEGIS_NULL_PARAMETER, !cleared, "engine",
                "`engine` is NULL");
  CHECK(aegis_engine_marks(NULL, NULL, NULL, NULL) == AEGIS_NULL_PARAMETER, "marks all NULL");
  CHECK(aegis_engine_clear_marks(NULL, NULL, NULL, NULL) == AEGIS_NULL_PARAMETER, "clear_marks all NULL");

  /* non-UTF-8: AEGIS_INVALID_UTF8 (invalid_argument, field session), never replaced */
  out = (char *)1;
  CHECK_REFUSED(aegis_engine_marks(e, "s-\xff", &out, &err_), AEGIS_INVALID_UTF8, out == NULL, "session",
                "`session` is not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 2");
  cleared = true;
  CHECK_REFUSED(aegis_engine_clear_marks(e, "s-\xc3\x28", &cleared, &err_), AEGIS_INVALID_UTF8, !cleared, "session",
                "`session` is not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 2");

  /* names the core refuses (as kill does): AEGIS_INVALID_ARGUMENT, the core's message */
  out = (char *)1;
  CHECK_REFUSED(aegis_engine_marks(e, "", &out, &err_), AEGIS_INVALID_ARGUMENT, out == NULL, "",
                "`session` must not be empty");
  cleared = true;
  CHECK_REFUSED(aegis_engine_clear_marks(e, "", &cleared, &err_), AEGIS_INVALID_ARGUMENT, !cleared, "",
                "`session` must not be empty");
  CHECK_REFUSED(aegis_engine_marks(e, "s\x01x", &out, &err_), AEGIS_INVALID_ARGUMENT, out == NULL, "",
                "`session` contains a control character");
  char long_session[300];
  memset(long_session, 's', 257);
  long_session[257] = '\0';
  CHECK_REFUSED(aegis_engine_marks(e, long_session, &out, &err_), AEGIS_INVALID_ARGUMENT, out == NULL, "",
                "`session` is 257 bytes; the limit is 256");
  long_session[256] = '\0';
  check_marks(e, long_session, "[]", "a session of 256 bytes");
  aegis_engine_free(e);
  e = NULL;

  /* options: max_sessions (a full table denies a call that would mark a new session) */
  aegis_engine_options *o = aegis_engine_options_new();
  CHECK(set_json(o, "{\"max_sessions\":1}", &err) == AEGIS_OK, "max_sessions: %s", OR_NULL(err));
  aegis_string_free(err);
  err = NULL;
  CHECK(aegis_engine_from_yaml_with(MARKS_POLICY, sizeof MARKS_POLICY - 1, o, &e, NULL) == AEGIS_OK && e, "load 1");
  if (e) {
    check_decision(e, HR_READ, "\"marks\":[\"pii\"]", "one session");
    static const char OTHER[] = "{\"agent\":\"a\",\"tool\":\"files\",\"action\":\"read\",\"session\":\"s-2\"," MARKS_AT "}";
    check_decision(e, OTHER, "\"outcome\":\"deny\",\"reason\"", "table full: deny");
    check_decision(e, OTHER, "\"rules\":[\"state:full\"]", "table full: state:full");
    check_marks(e, "s-2", "[]", "nothing stored for s-2");
    CHECK(aegis_engine_clear_marks(e, "s-1", &cleared, NULL) == AEGIS_OK && cleared, "clear makes room");
    check_decision(e, OTHER, "\"marks\":[\"pii\"],\"outcome\":\"allow\"", "room again");
    aegis_engine_free(e);
    e = NULL;
  }
  CHECK(set_json(o, "{\"max_sessions\":0}", &err) == AEGIS_CONFIG_INVALID && err, "max_sessions 0");
  CHECK_LAST_ERROR("config_invalid", "max_sessions", err, "max_sessions 0");
  aegis_string_free(err);
  err = NULL;

  /* marks_ttl: a mark without ttl lives that long from its request's time */
  char at[32], req[256];
  time_ago(at, sizeof at, 60);
  snprintf(req, sizeof req, "{\"agent\":\"a\",\"tool\":\"files\",\"action\":\"read\",\"session\":\"s-1\",\"time\":\"%s\"}", at);
  CHECK(set_json(o, "{\"marks_ttl\":\"1s\"}", &err) == AEGIS_OK, "marks_ttl: %s", OR_NULL(err));
  aegis_string_free(err);
  err = NULL;
  CHECK(aegis_engine_from_yaml_with(MARKS_POLICY, sizeof MARKS_POLICY - 1, o, &e, NULL) == AEGIS_OK && e, "load ttl");
  if (e) {
    check_decision(e, req, "\"marks\":[\"pii\"]", "a minute ago, 1s ttl: recorded");
    check_marks(e, "s-1", "[]", "a minute ago, 1s ttl: expired now");
    cleared = true;
    CHECK(aegis_engine_clear_marks(e, "s-1", &cleared, NULL) == AEGIS_OK && !cleared, "only expired marks: not cleared");
    aegis_engine_free(e);
    e = NULL;
  }
  CHECK(set_json(o, "{}", NULL) == AEGIS_OK, "defaults");
  CHECK(aegis_engine_from_yaml_with(MARKS_POLICY, sizeof MARKS_POLICY - 1, o, &e, NULL) == AEGIS_OK && e, "load 24h");
  if (e) {
    check_decision(e, req, "\"marks\":[\"pii\"]", "a minute ago, 24h default");
    check_marks(e, "s-1", "[\"pii\"]", "a minute ago, 24h default: live");
    aegis_engine_free(e);
    e = NULL;
  }
  CHECK(set_json(o, "{\"marks_ttl\":\"0h\"}", &err) == AEGIS_CONFIG_INVALID && err, "marks_ttl 0h");
  CHECK_LAST_ERROR("config_invalid", "marks_ttl", err, "marks_ttl 0h");
  aegis_string_free(err);
  err = NULL;
  aegis_engine_options_free(o);

  /* from inside the engine's own audit callback: refused as audit_failed, no effect */
  marks_reentry m = {0};
  o = aegis_engine_options_new();
  CHECK(aegis_engine_options_add_audit_callback(o, marks_reentry_cb, &m, NULL) == AEGIS_OK, "cb");
  CHECK(aegis_engine_from_yaml_with(MARKS_POLICY, sizeof MARKS_POLICY - 1, o, &e, NULL) == AEGIS_OK && e, "load cb");
  aegis_engine_options_free(o);
  if (e) {
    check_decision(e, HR_READ, "\"marks\":[\"pii\"]", "before the re-entrant call");
    m.engine = e;
    /* the outer call fails as any re-entrant callback makes it (audit_failed) */
    CHECK(aegis_evaluate_json(e, HR_READ, sizeof HR_READ - 1, &out, &err) == AEGIS_IO_ERROR && out == NULL && err &&
              strstr(err, "called back into its engine"),
          "the outer call fails: %s", OR_NULL(err));
    aegis_string_free(err);
    err = NULL;
    m.engine = NULL;
    CHECK(m.inner_marks == AEGIS_IO_ERROR && m.inner_marks_audit_failed && m.inner_out == NULL,
          "inner marks refused: %d", (int)m.inner_marks);
    CHECK(m.inner_clear == AEGIS_IO_ERROR && m.inner_clear_audit_failed, "inner clear refused: %d", (int)m.inner_clear);
    check_marks(e, "s-1", "[\"pii\"]", "the inner clear had no effect");
    aegis_engine_free(e);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s VECTORS.txt POLICY_DIR\n", argv[0]);
    return 2;
  }
  vector_counts n = {0, 0, 0};
  if (run_vectors(argv[1], &n) != 0) return 2;
  int vector_failures = failures;
  test_bad_input();
  test_options(argv[2]);
  test_config();
  test_last_error();
  test_threads();
  test_issue16();
  test_marks();
  test_collector_options();
  test_collector_e2e(argv[2]);
  printf("aegis C tests: %d vectors, %d vector steps (%d failed), %d guarded-tool steps not applicable in C; "
         "%d checks, %d failed\n",
         n.vectors, n.steps, vector_failures, n.not_applicable, checks, failures);
  return failures == 0 ? 0 : 1;
}
