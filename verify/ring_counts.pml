/* verify/ring_counts.pml -- the ring's exact counts under a kill at any step
 * (mp/queue/internal/ring.{h,cc}: "Exact counts"; issue 16, hole 4).
 *
 * Each count moves with an index in two stores: records_in_ with tail (the
 * claim), records_out_ / lost_ with head (a take, a dead claim skipped). The
 * mover writes an intent {index it is about to store, count's new value}
 * first; the next holder of the side's lock completes the count when the
 * index stands at the intent's position and the count is one short
 * (Repair*Counts); readers (qsize, lost_records, Join) count the completed
 * value meanwhile (Counted, ClaimedRecords).
 *
 * Modelled: PROD producers putting PER records each under the producer lock
 * (claim, count, unlock, commit), CONS consumers taking under the consumer
 * lock (a committed record counted out, a dead producer's claim turned lost
 * and counted lost), locks taken over from dead holders, up to KILLS kills
 * of any process at any step. Records are one slot each; wrap-around, pads,
 * wake-ups and payloads are other models' business (ring.pml,
 * ring_mpmc.pml). Ghost counts g_* move atomically with the index stores:
 * they are the truth.
 *
 * Checked when every process has finished or died:
 *   1. what readers see (counts with a completed intent) is exact:
 *        claimed == g_claims, out == g_out, lost == g_lost, and
 *        claimed - out - lost == tail - head (qsize of the records in ring);
 *   2. after the next lock holders' repairs the stored counts are exact.
 * Twins:
 *   -DBREAK_COUNT_FIRST  the consumer's order before the fix (count, then
 *                        head; no intent): a consumer killed between them
 *                        leaves its record for the next one, counted twice.
 *   -DBREAK_PRODUCER_COUNT_FIRST  the producer's (count, then tail): a
 *                        producer killed between them leaves a phantom
 *                        record that the next claim counts again.
 *   -DBREAK_NO_REPAIR    intents written, never completed: after a kill
 *                        between index and count, the next mover counts
 *                        from the stale value and writes its own intent, so
 *                        the count is missed for good.
 */

#ifndef PROD
#define PROD 2
#endif
#ifndef PER
#define PER 1
#endif
#ifndef CONS
#define CONS 2
#endif
#ifndef KILLS
#define KILLS 1
#endif

#define N (PROD * PER)
#define NPROC (PROD + CONS + 1)

#define EMPTY 0
#define CLAIMED 1
#define DATA 2
#define LOST 3

#define K_OUT 1
#define K_LOST 2

byte hdr[N];
byte claimer[N];
bool dead[NPROC];
byte kills = 0;

byte plock = 0;  /* holder's _pid + 1; 0: free */
byte clock = 0;

byte tail = 0, head = 0;
byte in = 0, out = 0, lost = 0;
byte pend_tail = 0, pend_in = 0;
byte pend_head = 0, pend_kind = 0, pend_count = 0;

byte g_claims = 0, g_out = 0, g_lost = 0;
byte prod_finished = 0;  /* producers done or dead */

/* A kill: this process dies here (at most KILLS in all). */
#define MAYBE_DIE \
  if \
  :: atomic { kills < KILLS -> kills++; dead[_pid] = true; goto died } \
  :: true \
  fi

inline lock(l) {
  atomic { (l == 0 || dead[l - 1]) -> l = _pid + 1 }
}

inline repair_producer() {
#ifndef BREAK_NO_REPAIR
  if
  :: tail == pend_tail && in + 1 == pend_in -> in = pend_in
  :: else
  fi
#else
  skip
#endif
}

inline repair_consumer() {
#ifndef BREAK_NO_REPAIR
  if
  :: head == pend_head && pend_kind == K_OUT && out + 1 == pend_count ->
       out = pend_count
  :: head == pend_head && pend_kind == K_LOST && lost + 1 == pend_count ->
       lost = pend_count
  :: else
  fi
#else
  skip
#endif
}

proctype Producer() {
  byte i = 0, t, n;
  do
  :: i == PER -> break
  :: else ->
    lock(plock);
    MAYBE_DIE;
    repair_producer();
    t = tail;
    n = in + 1;
#ifdef BREAK_PRODUCER_COUNT_FIRST
    hdr[t] = CLAIMED; claimer[t] = _pid;
    MAYBE_DIE;
    in = n;
    MAYBE_DIE;
    atomic { tail = t + 1; g_claims++ }
#else
    pend_tail = t + 1;
    MAYBE_DIE;
    pend_in = n;
    MAYBE_DIE;
    hdr[t] = CLAIMED; claimer[t] = _pid;
    MAYBE_DIE;
    atomic { tail = t + 1; g_claims++ }
    MAYBE_DIE;
    in = n;
#endif
    MAYBE_DIE;
    plock = 0;
    MAYBE_DIE;
    hdr[t] = DATA;
    i++
  od;
died:
  prod_finished++
}

/* One step of a consumer's take of the record at head, of kind k (data:
 * counted out, lost: counted lost), as AdvanceHead does it. */
inline advance(k, cnt, gcnt) {
  h = head;
  n = cnt + 1;
#ifdef BREAK_COUNT_FIRST
  cnt = n;
  MAYBE_DIE;
  atomic { head = h + 1; gcnt++ }
#else
  pend_head = h + 1;
  MAYBE_DIE;
  pend_kind = k;
  MAYBE_DIE;
  pend_count = n;
  MAYBE_DIE;
  atomic { head = h + 1; gcnt++ }
  MAYBE_DIE;
  cnt = n;
#endif
}

proctype Consumer() {
  byte h, n;
end_wait:
  do
  :: atomic { prod_finished == PROD && head == tail -> break }
  :: head != tail ->
    lock(clock);
    MAYBE_DIE;
    repair_consumer();
    if
    :: head == tail -> skip
    :: head != tail && hdr[head] == CLAIMED && dead[claimer[head]] ->
         hdr[head] = LOST       /* SkipDeadClaim's CAS; counted below */
    :: head != tail && hdr[head] == CLAIMED && !dead[claimer[head]] ->
         skip                   /* wait for the commit */
    :: head != tail && hdr[head] == DATA -> advance(K_OUT, out, g_out)
    :: head != tail && hdr[head] == LOST -> advance(K_LOST, lost, g_lost)
    fi;
    MAYBE_DIE;
    clock = 0
  od;
died:
  skip
}

/* Counted / ClaimedRecords: a count with its completed intent. */
byte r_in, r_out, r_lost;
inline read_counts() {
  r_in = in;
  if
  :: tail == pend_tail && pend_in == in + 1 -> r_in = in + 1
  :: else
  fi;
  r_out = out;
  r_lost = lost;
  if
  :: head == pend_head && pend_kind == K_OUT && pend_count == out + 1 ->
       r_out = out + 1
  :: head == pend_head && pend_kind == K_LOST && pend_count == lost + 1 ->
       r_lost = lost + 1
  :: else
  fi
}

init {
  byte k;
  atomic {
    for (k : 1 .. PROD) { run Producer() }
    for (k : 1 .. CONS) { run Consumer() }
  }
  (_nr_pr == 1);
  /* 1. What readers see, before any repair. */
  read_counts();
  assert(r_in == g_claims);
  assert(r_out == g_out);
  assert(r_lost == g_lost);
  assert(r_in - r_out - r_lost == tail - head);
  /* 2. The next lock holders complete the counts. */
  repair_producer();
  repair_consumer();
  assert(in == g_claims);
  assert(out == g_out);
  assert(lost == g_lost);
  assert(in - out - lost == tail - head)
}
