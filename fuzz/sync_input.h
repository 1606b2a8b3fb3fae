// fuzz/sync_input.h
// -----------------------------------------------------------------------------
// sync_fuzz's input layout, shared with make_corpus so seeds say what they
// hold:
//
//   byte 0   bits 0-2: the type (SyncType); bit 3 (kOwnTid): write this
//            thread's TID into the lock word's owner field; bit 4
//            (kNoRobustList): the liveness fallback instead of the kernel's
//            robust list
//   then     sizeof(type) bytes of resident state (zeros where short)
//   then     one operation per byte (see sync_fuzz.cc for each type's)

#ifndef MP_FUZZ_SYNC_INPUT_H_
#define MP_FUZZ_SYNC_INPUT_H_

#include <cstdint>

namespace mp::fuzz {

enum SyncType : uint8_t {
  kLockType = 0,
  kRLockType = 1,
  kConditionOverLock = 2,
  kConditionOverRLock = 3,
  kEventType = 4,
  kSemaphoreType = 5,
  kBarrierType = 6,
  kPidLockType = 7,
};

inline constexpr uint8_t kOwnTid = 0x08;
inline constexpr uint8_t kNoRobustList = 0x10;
// An operation byte with this bit waits 1 us instead of not at all.
inline constexpr uint8_t kTinyWait = 0x80;

}  // namespace mp::fuzz

#endif  // MP_FUZZ_SYNC_INPUT_H_
