/* Per-call cost of aegis_evaluate_json / aegis_evaluate over the workload.
 *   bench_c WORKLOAD_DIR [ROUNDS]   (built and run by run.sh) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "aegis.h"

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "read %s\n", path); exit(1); }
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s WORKLOAD_DIR [ROUNDS]\n", argv[0]); return 2; }
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    if (rounds < 1 || rounds > 64) rounds = 7;
    char path[4096];
    size_t ylen, rlen;
    snprintf(path, sizeof path, "%s/bundle.yaml", argv[1]);
    char *yaml = slurp(path, &ylen);
    snprintf(path, sizeof path, "%s/requests.jsonl", argv[1]);
    char *reqs = slurp(path, &rlen);

    size_t cap = 8192, n = 0;
    char **line = malloc(cap * sizeof *line);
    size_t *len = malloc(cap * sizeof *len);
    for (char *p = reqs; *p;) {
        char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        if (l > 0) {
            if (n == cap) { cap *= 2; line = realloc(line, cap * sizeof *line); len = realloc(len, cap * sizeof *len); }
            line[n] = p; len[n] = l; n++;
        }
        if (!nl) break;
        p = nl + 1;
    }
    if (n < 4096) { fprintf(stderr, "need at least 4,096 requests\n"); return 1; }

    aegis_engine *e = NULL;
    char *err = NULL;
    if (aegis_engine_from_yaml(yaml, ylen, &e, &err) != AEGIS_OK) { fprintf(stderr, "load: %s\n", err); return 1; }

    double json_us[64], out_us[64];
    int counts[4] = {0, 0, 0, 0};
    for (int r = -1; r < rounds; r++) { /* r = -1: warm-up, also counts outcomes */
        double t0 = now_ns();
        for (size_t i = 0; i < n; i++) {
            char *d = NULL;
            if (aegis_evaluate_json(e, line[i], len[i], &d, &err) != AEGIS_OK) { fprintf(stderr, "%s\n", err); return 1; }
            aegis_string_free(d);
        }
        double t1 = now_ns();
        for (size_t i = 0; i < n; i++) {
            aegis_outcome o;
            if (aegis_evaluate(e, line[i], len[i], &o, &err) != AEGIS_OK) { fprintf(stderr, "%s\n", err); return 1; }
            if (r < 0 && o >= 1 && o <= 3) counts[o]++;
        }
        double t2 = now_ns();
        if (r >= 0) { json_us[r] = (t1 - t0) / (double)n / 1000; out_us[r] = (t2 - t1) / (double)n / 1000; }
    }
    qsort(json_us, (size_t)rounds, sizeof(double), cmp);
    qsort(out_us, (size_t)rounds, sizeof(double), cmp);
    printf("{\"requests\":%zu,\"outcomes\":{\"allow\":%d,\"deny\":%d,\"require_approval\":%d},"
           "\"aegis_evaluate_json_us\":%.3f,\"aegis_evaluate_us\":%.3f}\n",
           n, counts[1], counts[2], counts[3], json_us[rounds / 2], out_us[rounds / 2]);
    aegis_engine_free(e);
    free(line); free(len); free(yaml); free(reqs);
    return 0;
}
