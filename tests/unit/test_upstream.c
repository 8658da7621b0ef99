/* Unit tests for the balancing choice of src/upstream.c (tg_up_pick). */
#include "tg_test.h"
#include "tg_upstream.h"

#include <stdint.h>

TG_TEST(fewest_streams_wins) {
  const uint64_t load[] = {3, 1, 2};
  const unsigned char ok[] = {1, 1, 1};
  for (size_t start = 0; start < 3; start++)
    TG_CHECK(tg_up_pick(load, ok, 3, start) == 1);
}

TG_TEST(ties_go_round_robin) {
  const uint64_t load[] = {2, 0, 0, 0};
  const unsigned char ok[] = {1, 1, 1, 1};
  TG_CHECK(tg_up_pick(load, ok, 4, 0) == 1);
  TG_CHECK(tg_up_pick(load, ok, 4, 1) == 1);
  TG_CHECK(tg_up_pick(load, ok, 4, 2) == 2);
  TG_CHECK(tg_up_pick(load, ok, 4, 3) == 3);
  /* wrapping around: from 3, the next of the tied ones is 3, then 1 */
  const uint64_t idle[] = {0, 0, 5, 0};
  TG_CHECK(tg_up_pick(idle, ok, 4, 3) == 3);
  TG_CHECK(tg_up_pick(idle, ok, 4, 2) == 3);
  /* start taken modulo n */
  TG_CHECK(tg_up_pick(idle, ok, 4, 5) == 1);
}

TG_TEST(ineligible_are_skipped) {
  const uint64_t load[] = {0, 7, 9};
  const unsigned char ok[] = {0, 1, 1};
  TG_CHECK(tg_up_pick(load, ok, 3, 0) == 1);
  const unsigned char none[] = {0, 0, 0};
  TG_CHECK(tg_up_pick(load, none, 3, 0) == -1);
  TG_CHECK(tg_up_pick(load, ok, 0, 0) == -1);
}

TG_TEST(rotation_spreads_idle_calls) {
  /* The pool passes the index after the last choice as start: with equal
   * loads every candidate is chosen in turn. */
  const uint64_t load[] = {4, 4, 4};
  const unsigned char ok[] = {1, 1, 1};
  int seen[3] = {0, 0, 0};
  size_t rr = 0;
  for (int i = 0; i < 9; i++) {
    int k = tg_up_pick(load, ok, 3, rr);
    TG_CHECK(k >= 0);
    if (k < 0)
      return;
    seen[k]++;
    rr = (size_t)k + 1;
  }
  TG_CHECK(seen[0] == 3 && seen[1] == 3 && seen[2] == 3);
}

int main(void) {
  TG_RUN(fewest_streams_wins);
  TG_RUN(ties_go_round_robin);
  TG_RUN(ineligible_are_skipped);
  TG_RUN(rotation_spreads_idle_calls);
  return TG_DONE();
}
