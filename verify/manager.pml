/* verify/manager.pml: the manager's update transaction and its recovery
 * (mp/manager/internal/store.{h,cc}: Txn, Recover, Guard), with the lock
 * holder killed at any step, the recoverer included.
 *
 * The container: a word A pointing at a block (the table) and a word B (the
 * count); consistent when B == gen[A], the generation the block was made
 * for. An update (as DictSet's rehash) allocates a new block for B + 1,
 * logs and writes A, logs and writes B, records the old block as a free,
 * commits (phase 2), releases the free (cursor advanced first), and ends
 * (phase 0). The lock is robust: a holder's death hands it to the next
 * acquirer with owner-died, who recovers: phase 1 restores the logged words
 * newest first and releases the allocs; phase 2 finishes the frees; then
 * phase 0 and the counter in one store.
 *
 * Properties (assertions): after every acquisition and recovery the
 * container is consistent and points at a live block; no block is freed
 * twice; at the end, rolled_back + completed equals the number of updates
 * a death interrupted (each counted exactly once, however many recoverers
 * die).
 *
 * Broken twins:
 *   BREAK_WRITE_BEFORE_LOG    a word written before its old value is logged:
 *                             a death in between leaves A half-updated.
 *   BREAK_CURSOR_AFTER_FREE   the cursor advanced after the free: a death in
 *                             between frees the block twice on recovery.
 *   BREAK_SPLIT_COUNT         the counter bumped before phase := 0, in two
 *                             stores: a recoverer killed in between has
 *                             the update counted twice.
 */

#ifndef NPROC
#define NPROC 2
#endif
#ifndef ITERS
#define ITERS 2
#endif
#ifndef KILLS
#define KILLS 2
#endif
#define MAXB 12
#define DEAD 255
#define ADDR_A 1
#define ADDR_B 2

byte A = 1;
byte B = 0;
byte gen[MAXB];
byte freed[MAXB];
byte nextb = 1;

/* the intent */
byte phase;
byte nw; byte log_addr[2]; byte log_old[2];
byte na; byte allocs[1];
byte nf; byte frees[1];
byte cursor;
byte rolled; byte completed;

/* the lock and the killer */
byte lock;        /* 0 free, DEAD owner died, else the holder */
bool kill_now;
byte kills;

/* ghosts */
byte interrupted;  /* updates a death left open */
bool open_counted; /* the open update is already in `interrupted` */
byte finished;

inline free_block(b) {
  assert(b > 0 && b < MAXB && freed[b] == 0);
  freed[b]++
}

inline recover() {
  if
  :: phase == 1 ->
     i = nw;
     do
     :: i > 0 ->
        i--;
        if
        :: log_addr[i] == ADDR_A -> A = log_old[i]
        :: else -> B = log_old[i]
        fi
     :: else -> break
     od;
     i = cursor;
     do
     :: i < na ->
#ifndef BREAK_CURSOR_AFTER_FREE
        cursor = i + 1; free_block(allocs[i]);
#else
        free_block(allocs[i]); cursor = i + 1;
#endif
        i++
     :: else -> break
     od;
#ifndef BREAK_SPLIT_COUNT
     atomic { phase = 0; rolled++; open_counted = false }
#else
     rolled++;
     atomic { phase = 0; open_counted = false }
#endif
  :: phase == 2 ->
     i = cursor;
     do
     :: i < nf ->
#ifndef BREAK_CURSOR_AFTER_FREE
        cursor = i + 1; free_block(frees[i]);
#else
        free_block(frees[i]); cursor = i + 1;
#endif
        i++
     :: else -> break
     od;
#ifndef BREAK_SPLIT_COUNT
     atomic { phase = 0; completed++; open_counted = false }
#else
     completed++;
     atomic { phase = 0; open_counted = false }
#endif
  :: else -> skip
  fi
}

inline acquire() {
  atomic {
    (lock == 0 || lock == DEAD) ->
    died = (lock == DEAD); lock = me
  };
  /* Guard: recover on owner death (or an open phase) */
  if :: died || phase != 0 -> recover() :: else -> skip fi;
  assert(phase == 0);
  assert(B == gen[A]);
  assert(freed[A] == 0)
}

proctype Writer(byte me) {
  byte it, i, nb, old;
  bool died;
  {
    do
    :: it < ITERS ->
       acquire();
       /* Txn: begin */
       nw = 0; na = 0; nf = 0; cursor = 0;
       phase = 1;
       /* Alloc: the block, then its record */
       atomic { nb = nextb + 1; nextb = nb; gen[nb] = B + 1 };
       allocs[0] = nb; na = 1;
       /* Write(A): log, then write */
       old = A;
#ifndef BREAK_WRITE_BEFORE_LOG
       log_addr[0] = ADDR_A; log_old[0] = old; nw = 1;
       A = nb;
#else
       A = nb;
       log_addr[0] = ADDR_A; log_old[0] = old; nw = 1;
#endif
       /* Write(B) */
       log_addr[1] = ADDR_B; log_old[1] = B; nw = 2;
       B = B + 1;
       /* FreeOnCommit(old block) */
       frees[0] = old; nf = 1;
       /* Commit */
       cursor = 0;
       phase = 2;
       i = cursor;
       do
       :: i < nf ->
#ifndef BREAK_CURSOR_AFTER_FREE
          cursor = i + 1; free_block(frees[i]);
#else
          free_block(frees[i]); cursor = i + 1;
#endif
          i++
       :: else -> break
       od;
       phase = 0;
       /* Release */
       lock = 0;
       it++
    :: else -> break
    od
  } unless { kill_now && lock == me };
  atomic {
    if
    :: kill_now && lock == me ->
       if
       :: phase != 0 && !open_counted -> interrupted++; open_counted = true
       :: else -> skip
       fi;
       lock = DEAD; kill_now = false
    :: else -> skip
    fi;
    finished++
  }
}

active proctype Killer() {
end_killer:
  do
  :: atomic { kills < KILLS && !kill_now && lock != 0 && lock != DEAD &&
              finished < NPROC -> kill_now = true; kills++ }
  :: kills >= KILLS || finished == NPROC -> break
  od
}

init {
  byte p, i;
  bool died;
  byte me = NPROC + 1;
  gen[1] = 0;
  atomic {
    p = 1;
    do :: p <= NPROC -> run Writer(p); p++ :: else -> break od
  }
  finished == NPROC;
  /* the last user: recovers whatever is open, then checks */
  kill_now = false;
  acquire();
  assert(rolled + completed == interrupted);
  lock = 0
}
