/* A tiny service that guards a tool call with Aegis (policies/finance).
 * Build (static):  cc -I aegis-ffi/include examples/c/guard.c target/release/libaegis.a -lpthread -ldl -lm -o guard
 * Run:             ./guard policies/finance */
#include "aegis.h"

#include <stdio.h>
#include <string.h>

/* The tool being guarded. */
static void make_payment(double amount, const char *currency) {
  printf("  -> paid %.2f %s\n", amount, currency);
}

/* Decides one call; runs the tool only on allow. Returns 0 if it ran. */
static int guarded_payment(aegis_engine *engine, double amount, const char *currency) {
  char req[512];
  snprintf(req, sizeof req,
           "{\"agent\":\"finance-agent\",\"tool\":\"payments\",\"action\":\"create\","
           "\"params\":{\"amount\":%.2f,\"currency\":\"%s\",\"payee\":\"acme\"}}",
           amount, currency);
  char *decision = NULL; /* ours to free with aegis_string_free */
  char *err = NULL;      /* ours to free with aegis_string_free */
  aegis_status st = aegis_evaluate_json(engine, req, strlen(req), &decision, &err);
  if (st != AEGIS_OK) {
    /* no decision: fail closed (AEGIS_IO_ERROR means the record could not be written) */
    fprintf(stderr, "aegis error %d: %s\n", (int)st, err ? err : "");
    aegis_string_free(err);
    return -1;
  }
  printf("%.2f %s: %s\n", amount, currency, decision);
  /* Keys are sorted and `audit` (which has its own outcome) comes first: the decision's
     outcome is the last `"outcome":` (inside strings quotes are escaped, so no false hit). */
  const char *last = NULL;
  for (const char *p = decision; (p = strstr(p, "\"outcome\":\"")) != NULL; p++) last = p;
  int allowed = last && strncmp(last, "\"outcome\":\"allow\"", 17) == 0;
  aegis_string_free(decision);
  if (!allowed) return 1;
  make_payment(amount, currency);
  return 0;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "policies/finance";
  aegis_engine *engine = NULL;
  char *err = NULL;
  if (aegis_engine_from_path(path, &engine, &err) != AEGIS_OK) {
    fprintf(stderr, "cannot load %s:\n%s\n", path, err ? err : "");
    aegis_string_free(err);
    return 1;
  }
  /* aegis_evaluate gives only the outcome: the simplest guard. */
  static const char small[] =
      "{\"agent\":\"finance-agent\",\"tool\":\"payments\",\"action\":\"create\","
      "\"params\":{\"amount\":120,\"currency\":\"USD\",\"payee\":\"acme\"}}";
  aegis_outcome outcome;
  if (aegis_evaluate(engine, small, sizeof small - 1, &outcome, NULL) == AEGIS_OK && outcome == AEGIS_OUTCOME_ALLOW)
    make_payment(120, "USD");
  guarded_payment(engine, 1200, "USD");
  guarded_payment(engine, 18500, "EUR");
  guarded_payment(engine, 90000, "USD");
  aegis_engine_free(engine);
  return 0;
}
