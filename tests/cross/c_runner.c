/* C runner of the cross-binding check (see run.py). Reads a policy file and a file of
 * cases, one per line as NAME<TAB>REQUEST-JSON, and prints per case
 * NAME<TAB>OK<TAB>DECISION-LINE or NAME<TAB>ERR<TAB>STATUS. Every case gets a fresh
 * engine. Build: cc -I aegis-ffi/include c_runner.c target/release/libaegis.a -lpthread -ldl -lm */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis.h"

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    free(buf);
    return NULL;
  }
  fclose(f);
  buf[n] = '\0';
  *len = (size_t)n;
  return buf;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: cross_c POLICY CASES\n");
    return 2;
  }
  size_t plen = 0;
  char *policy = slurp(argv[1], &plen);
  FILE *cases = fopen(argv[2], "rb");
  if (!policy || !cases) {
    fprintf(stderr, "cross_c: cannot read the inputs\n");
    return 2;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, cases)) > 0) {
    if (line[n - 1] == '\n') line[--n] = '\0';
    char *tab = strchr(line, '\t');
    if (!tab) continue;
    *tab = '\0';
    const char *json = tab + 1;
    aegis_engine *e = NULL;
    char *err = NULL;
    if (aegis_engine_from_yaml(policy, plen, &e, &err) != AEGIS_OK) {
      fprintf(stderr, "cross_c: policy: %s\n", err ? err : "?");
      return 1;
    }
    char *out = NULL;
    aegis_status s = aegis_evaluate_json(e, json, strlen(json), &out, &err);
    if (s == AEGIS_OK) {
      printf("%s\tOK\t%s\n", line, out);
    } else {
      printf("%s\tERR\t%d\n", line, (int)s);
    }
    aegis_string_free(out);
    aegis_string_free(err);
    err = NULL;
    aegis_engine_free(e);
  }
  free(line);
  free(policy);
  fclose(cases);
  return 0;
}
