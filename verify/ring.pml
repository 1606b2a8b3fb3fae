/* verify/ring.pml
 * -----------------------------------------------------------------------------
 * Model of the SPSC fast path and the wake-up protocol of mp's shared-memory
 * ring (mp/queue/internal/ring.h, "Claim, write, commit" and "Wake-up
 * protocol"; ring.cc PushLocked, PopLocked, WaitForClaim, WaitForCommit,
 * WaitForSpace, WakeConsumers, WakeProducers): one producer pushes MSGS
 * records through a ring of CAP record slots, one consumer pops them. The
 * producer claims (stores tail), writes the payload and commits the slot's
 * header (its position + 1, the commit tag); the consumer takes the record
 * at head once the header there carries head's tag. Both sides take the
 * sleep path when they cannot proceed:
 *     e = epoch; waiters += 1 (or = 1); re-check; FutexWait(epoch, e)
 * and the wake path after their commit / head store:
 *     store; fence(seq_cst); if waiters != 0: epoch += 1; FutexWakeAll
 *
 * Each record occupies one slot (records of one size: no padding records).
 * Promela is sequentially consistent, which is what the seq_cst fence buys
 * for the store-fence-load (Dekker) pair. The broken twin BREAK_NO_FENCE
 * models the fence's absence by the reordering a store buffer allows: the
 * read of the waiters flag happens BEFORE the commit store becomes visible.
 * The fence is asymmetric (mp/core/fence.h): the publisher's half is a
 * compiler barrier and the sleeper's a membarrier(2) GLOBAL_EXPEDITED,
 * which makes every running registered thread execute a full barrier before
 * the sleeper re-reads. For the Dekker pair that orders exactly as a seq_cst
 * fence on both sides (the membarrier man page's own use case), so the
 * model is unchanged; BREAK_NO_FENCE is also what a publisher outside
 * membarrier's reach would do without its fallback fence (fence.h: such a
 * process fences for real).
 *
 * FUTEX_WAIT(epoch, e): atomically { if epoch != e return; else enqueue },
 * then block until FutexWakeAll dequeues us (no spurious wake-ups).
 * The spin loops (ring.cc SpinUntil, before each sleep) only re-check the
 * indices: they
 * are abstracted away (the callers' retry loops re-check anyway). Deadlines
 * are infinite; Close() is not modelled.
 *
 * Ghosts: slot_seq (the record's sequence number, 1..MSGS) and slot_done
 * (its payload completely written), checked by the consumer.
 *
 * The waiters word is a counter (+= 1 / -= 1) by default; WAITERS_FLAG
 * models the protocol the code uses since commit 458dfcd ("one futex wake
 * per sleep episode"): *_waiting is a 0/1 flag set by the sleeper (store 1,
 * no decrement) and claimed by the waker with exchange(0) before it bumps
 * the epoch. Both are checked by the suite.
 *
 * Broken twins (spin -D...):
 *   BREAK_NO_FENCE       the waiters flag is read before the commit / head
 *                        store is visible (no fence)
 *   BREAK_EARLY_PUBLISH  the commit is stored before the payload
 *   BREAK_NO_RECHECK     a sleeper does not re-check after announcing itself
 * -------------------------------------------------------------------------- */

#ifndef CAP
#define CAP 2
#endif
#ifndef MSGS
#define MSGS 3
#endif

/* ring.h, class Ring: tail_, head_, the epochs and waiter counts */
byte tail;                 /* records published (monotonic; byte offsets
                              in the C++, one record = one slot here) */
byte head;                 /* records freed */
byte data_epoch;           /* ring.h data_epoch_ */
byte consumers_waiting;    /* ring.h consumers_waiting_ */
byte space_epoch;          /* ring.h space_epoch_ */
byte producers_waiting;    /* ring.h producers_waiting_ */

bool c_asleep;             /* consumer in the futex queue of data_epoch */
bool p_asleep;             /* producer in the futex queue of space_epoch */

byte slot_tag[CAP];        /* the header's commit: position + 1 (0: none);
                              a slot keeps the previous lap's until the
                              next commit, and it must not pass */
byte slot_seq[CAP];        /* ghost: record number in the slot */
bool slot_done[CAP];       /* ghost: payload completely written */
byte delivered;            /* ghost: records the consumer returned */
bool p_fin, c_fin;

/* Ring::WakeConsumers (after the tail store) */
inline wake_consumers() {
  if
  :: consumers_waiting != 0 ->               /* WakeConsumers: waiters seen */
#ifdef WAITERS_FLAG
     /* working-tree variant: exchange(0) claims the one wake-up */
     atomic { w = consumers_waiting; consumers_waiting = 0 };
     if
     :: w != 0 ->
#endif
     atomic {
       data_epoch++;                         /* WakeConsumers: bump */
       c_asleep = 0                          /* WakeConsumers: FutexWakeAll */
     }
#ifdef WAITERS_FLAG
     :: else -> skip
     fi
#endif
  :: else -> skip
  fi
}

/* Ring::WakeProducers (after the head store) */
inline wake_producers() {
  if
  :: producers_waiting != 0 ->               /* WakeProducers: waiters seen */
#ifdef WAITERS_FLAG
     atomic { w = producers_waiting; producers_waiting = 0 };
     if
     :: w != 0 ->
#endif
     atomic {
       space_epoch++;                        /* WakeProducers: bump */
       p_asleep = 0                          /* WakeProducers: FutexWakeAll */
     }
#ifdef WAITERS_FLAG
     :: else -> skip
     fi
#endif
  :: else -> skip
  fi
}

active proctype Producer() {
  byte i = 1;              /* sequence number of the next record */
  byte t;                  /* PushLocked: tail */
  byte head_cache;         /* ring.h head_cache_ */
  byte e;
  bool w;                  /* the waiters count read by the wake path */
  do
  :: i <= MSGS ->
     t = tail;                                 /* PushLocked: load tail */
     if
     :: t + 1 - head_cache > CAP ->            /* PushLocked: looks full */
        head_cache = head;                     /* PushLocked: reload head */
        if
        :: t + 1 - head_cache > CAP ->         /* PushLocked: full */
           /* RingView::WaitForSpace, SleepUntil */
           e = space_epoch;                    /* SleepUntil: epoch */
#ifdef WAITERS_FLAG
           producers_waiting = 1;
#else
           producers_waiting++;                /* SleepUntil: raise waiters */
#endif
#ifndef BREAK_NO_RECHECK
           if
           :: tail + 1 - head > CAP ->         /* SleepUntil: !ready() */
#endif
              atomic {                         /* SleepUntil: FutexWait */
                if
                :: space_epoch == e -> p_asleep = 1
                :: else -> skip                /* EAGAIN */
                fi;
                !p_asleep
              }
#ifndef BREAK_NO_RECHECK
           :: else -> skip
           fi;
#endif
#ifndef WAITERS_FLAG
           producers_waiting--                 /* SleepUntil: lower */
#else
           skip
#endif
           /* PushLocked: retry */
        :: else -> goto write
        fi
     :: else ->
write:
        /* PushLocked: the claim (header "claimed", tail stored), then the
           payload (plain stores), then the commit (release) */
        tail = t + 1;
#ifdef BREAK_EARLY_PUBLISH
        slot_tag[t % CAP] = t + 1;
#endif
        atomic { slot_done[t % CAP] = 0; slot_seq[t % CAP] = i }
        slot_done[t % CAP] = 1;                /* memcpy complete */
#ifndef BREAK_EARLY_PUBLISH
#ifdef BREAK_NO_FENCE
        w = (consumers_waiting != 0);          /* load hoisted above the
                                                  store: no fence */
        slot_tag[t % CAP] = t + 1;             /* the commit */
#else
        slot_tag[t % CAP] = t + 1;             /* the commit, release */
        w = (consumers_waiting != 0)           /* LightFence, then load */
#endif
#endif
        ;
        /* PushLocked: WakeConsumers after publishing */
#ifdef BREAK_NO_FENCE
        if
        :: w -> atomic { data_epoch++; c_asleep = 0 }
        :: else -> skip
        fi;
#else
        wake_consumers();
#endif
        i++
     fi
  :: else -> break
  od;
  p_fin = 1
}

active proctype Consumer() {
  byte j = 1;              /* sequence number expected next */
  byte h;                  /* PopLocked: head */
  byte e;
  byte v;
  bool w;
  do
  :: j <= MSGS ->
     h = head;
     if
     :: slot_tag[h % CAP] != h + 1 ->          /* not committed at head */
        /* PopLocked: a zero header (nothing claimed) or a claim not yet
           committed -> WaitForCommit (the header); a stale header with
           nothing claimed -> WaitForClaim (indices). Same epoch, same
           flag; each re-checks its own condition after raising the flag.
           In the one-slot-per-record model both conditions come to "not
           committed at head": the commit follows the tail store. */
        e = data_epoch;
#ifdef WAITERS_FLAG
        consumers_waiting = 1;
#else
        consumers_waiting++;
#endif
#ifndef BREAK_NO_RECHECK
        if
        :: slot_tag[h % CAP] != h + 1 ->
#endif
           atomic {                            /* FutexWait */
             if
             :: data_epoch == e -> c_asleep = 1
             :: else -> skip                   /* EAGAIN */
             fi;
             !c_asleep
           }
#ifndef BREAK_NO_RECHECK
        :: else -> skip
        fi;
#endif
#ifndef WAITERS_FLAG
        consumers_waiting--
#else
        skip
#endif
        /* retry */
     :: else ->
read:
        /* PopLocked, TakeRecord: read the header, hand the payload
           to the sink */
        atomic {
          assert(slot_done[h % CAP]);          /* never a torn record */
          v = slot_seq[h % CAP];
          assert(v == j)                       /* no duplicate, no skip */
        }
        /* the copy-out is not instantaneous: the slot must stay intact
           until head moves */
        assert(slot_done[h % CAP] && slot_seq[h % CAP] == v);
        delivered++;
#ifdef BREAK_NO_FENCE
        w = (producers_waiting != 0);          /* load hoisted above the
                                                  store: no fence */
        head = h + 1;                          /* Ring::AdvanceHead */
        if
        :: w -> atomic { space_epoch++; p_asleep = 0 }
        :: else -> skip
        fi;
#else
        head = h + 1;                          /* Ring::AdvanceHead, release */
        wake_producers();                      /* PopLocked: WakeProducers */
#endif
        j++
     fi
  :: else -> break
  od;
  c_fin = 1;
  assert(delivered == MSGS)
}

/* Liveness, checked with pan -a -f (weak fairness). */
/* No lost wake-up: a side asleep while it could proceed is woken (the
   consumer once a record is committed at head). */
ltl no_lost_wakeup {
  [] (((c_asleep && slot_tag[head % CAP] == head + 1) -> <> !c_asleep) &&
      ((p_asleep && tail - head < CAP) -> <> !p_asleep))
}
/* Never both sides asleep at once. */
ltl never_both_asleep { [] !(c_asleep && p_asleep) }
/* Every record is eventually delivered. */
ltl all_delivered { <> (delivered == MSGS) }
