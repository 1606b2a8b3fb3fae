/* verify/pool_run.pml: a run of Map items (chunksize 1) and its answer area
 * (mp/pool/pool.cc: WorkerMain's run loop, Collect, Reap's area step), with
 * the worker killed at any step, and a replacement.
 *
 * A run is N items sent together, each still a task of its own. The worker,
 * for each item j in order: names j in its slot (release store), calls it,
 * appends its answer to the area and records that in the area's state word
 * (first item, items held: one store), and only then names the next item.
 * When the area holds CAP answers (the area is full) and at the end of the
 * run, it sends them as one result message (first, count), committed whole
 * or not at all, and then empties the area (state := (next, 0)).
 *
 * The parent takes messages in order: a message answers items first ..
 * first + count - 1 and must start at the first unanswered item. Once the
 * worker is dead: it drains the messages; takes from the area the answers
 * whose first item is the first unanswered one; fails the item the slot
 * names if it is still unanswered; sends the items after it again, as a new
 * run, to a replacement with a fresh area, slot and rings.
 *
 * Properties: every item ends exactly once (answer or failure); an item
 * never runs twice; an answered item ran exactly once; a failed item is
 * the one a dead worker held, ran at most once, and its answer was never
 * recorded; the parent never blocks.
 *
 * Broken twins:
 *   BREAK_AREA_AFTER_SLOT  the worker names the next item before recording
 *                          the answer: a death in between loses an answer
 *                          and the item runs again.
 *   BREAK_IGNORE_AREA      the parent does not read the area: answers the
 *                          worker finished are lost and their items run again.
 *   BREAK_RESET_BEFORE_SEND the area is emptied before its message is
 *                          sent: a death in between loses those answers.
 */

#ifndef N
#define N 4
#endif
#ifndef CAP
#define CAP 2
#endif
#ifndef KILLS
#define KILLS 2
#endif
#define RING 6

byte runs[N];
bool recorded[N];           /* its answer is in the area (or was sent) */
byte outcome[N];            /* 0 open, 1 answered, 2 failed */
byte ended;

/* the current worker's shared state */
byte slot;                  /* item named (N: none yet) */
byte area_first;            /* the area's state word: first item ... */
byte area_items;            /* ... and how many answers it holds */
bool dead;
bool kill_now;
byte kills;

/* the run the current worker was sent: items lo .. N - 1 */
byte lo;
bool sent;                  /* the run is in the worker's task ring */
byte answered;              /* the parent's count: items lo .. answered - 1 */

/* result ring: messages (first, count) */
byte rfirst[RING]; byte rcount[RING]; byte rhead; byte rtail;

inline send(f, c) {
  atomic { rfirst[rtail % RING] = f; rcount[rtail % RING] = c; rtail++ }
}

proctype Worker() {
  byte j, first, items;
  atomic { sent -> skip };
  j = lo; first = lo; items = 0;
  do
  :: j < N ->
#ifndef BREAK_AREA_AFTER_SLOT
     slot = j;
     assert(runs[j] == 0); runs[j]++;         /* the call */
     items++;
     atomic { area_first = first; area_items = items; recorded[j] = true }
#else
     assert(runs[j] == 0); runs[j]++;
     items++;
     if
     :: j + 1 < N -> slot = j + 1
     :: else -> skip
     fi;
     atomic { area_first = first; area_items = items; recorded[j] = true }
#endif
     if
     :: items == CAP || j + 1 == N ->
#ifndef BREAK_RESET_BEFORE_SEND
        send(first, items);
        atomic { area_first = j + 1; area_items = 0 };
#else
        atomic { area_first = j + 1; area_items = 0 };
        send(first, items);
#endif
        first = j + 1; items = 0
     :: else -> skip
     fi;
     j++
  :: else -> break
  od unless { kill_now };
  atomic { kill_now = false; dead = true }
}

active proctype Killer() {
end_killer:
  do
  :: kills < KILLS && !dead && ended < N -> kill_now = true; kills++
  :: kills >= KILLS || ended == N -> break
  od
}

inline answer(from, count) {
  byte k = from;
  do
  :: k < from + count ->
     assert(outcome[k] == 0 && runs[k] == 1 && recorded[k]);
     outcome[k] = 1; ended++; k++
  :: else -> break
  od
}

inline collect_one() {
  atomic {
    byte f = rfirst[rhead % RING]; byte c = rcount[rhead % RING]; rhead++;
    assert(f == answered && c > 0 && f + c <= N);   /* Collect's check */
    answer(f, c);
    answered = answered + c
  }
}

active proctype Parent() {
  atomic {
    lo = 0; answered = 0; slot = N; area_first = 0; area_items = 0;
    run Worker()
  }
  sent = true;
  do
  :: ended == N -> break
  :: rhead != rtail -> collect_one()
  :: dead ->
     do :: rhead != rtail -> collect_one() :: else -> break od;
     atomic {
#ifndef BREAK_IGNORE_AREA
       if
       :: area_items > 0 && area_first == answered ->
          assert(area_first + area_items <= N);
          answer(area_first, area_items);
          answered = answered + area_items
       :: else -> skip
       fi;
#endif
       /* the held item fails; those after it go again */
       if
       :: slot < N && slot == answered ->
          assert(outcome[slot] == 0 && !recorded[slot] && runs[slot] <= 1);
          outcome[slot] = 2; ended++; answered++
       :: else -> skip
       fi;
       /* a replacement, sent items answered .. N - 1 */
       lo = answered;
       rhead = 0; rtail = 0; slot = N; area_first = lo; area_items = 0;
       dead = false;
       sent = (lo < N);
       if :: lo < N -> run Worker() :: else -> skip fi
     }
  od;
  byte i = 0;
  do
  :: i < N ->
     assert(outcome[i] != 0);
     assert(outcome[i] != 1 || runs[i] == 1);
     assert(runs[i] <= 1);
     i++
  :: else -> break
  od
}
