// fuzz/fuzz_util.h
// -----------------------------------------------------------------------------
// What every fuzz target here shares: a heap block of exactly the input's size
// (so AddressSanitizer sees a read or write one byte past it), and a check
// that stops the run with a message when a property the library promises
// does not hold. A failed check aborts: libFuzzer reports it as a crash and
// keeps the input, and the corpus replay test (replay_main.cc) fails.

#ifndef MP_FUZZ_FUZZ_UTIL_H_
#define MP_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace mp::fuzz {

[[noreturn]] inline void Fail(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
  std::fflush(stderr);
  std::abort();
}

// A block of `size` bytes aligned to `alignment`, holding `data` (and zeros
// after it when size > n). Exactly `size` bytes are allocated: nothing of
// the heap lies beyond them for a bad index to land in unnoticed.
class AlignedBytes {
 public:
  AlignedBytes(const void* data, size_t n, size_t size, size_t alignment = 64)
      : size_(size), alignment_(alignment) {
    // operator new(0) still returns a unique block ASan tracks.
    p_ = static_cast<char*>(
        ::operator new (size_, std::align_val_t{alignment_}));
    const size_t copy = n < size_ ? n : size_;
    if (copy != 0) std::memcpy(p_, data, copy);
    if (size_ > copy) std::memset(p_ + copy, 0, size_ - copy);
  }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  ~AlignedBytes() { ::operator delete (p_, std::align_val_t{alignment_}); }

  char* data() const { return p_; }
  size_t size() const { return size_; }
  // Whether [p, p + n) lies inside [data() + from, data() + size()).
  bool Holds(const void* p, size_t n, size_t from = 0) const {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(p_) + from;
    const uintptr_t hi = reinterpret_cast<uintptr_t>(p_) + size_;
    const uintptr_t q = reinterpret_cast<uintptr_t>(p);
    return q >= lo && q <= hi && n <= hi - q;
  }

 private:
  char* p_;
  size_t size_;
  size_t alignment_;
};

// Reads input bytes front to back; past the end it yields zeros.
class InputReader {
 public:
  InputReader(const uint8_t* data, size_t n) : p_(data), left_(n) {}
  uint8_t Byte() {
    if (left_ == 0) return 0;
    --left_;
    return *p_++;
  }
  // Up to n bytes into `dst`, zero-filling what the input lacks.
  void Bytes(void* dst, size_t n) {
    const size_t take = n < left_ ? n : left_;
    if (take != 0) std::memcpy(dst, p_, take);
    if (n > take) std::memset(static_cast<char*>(dst) + take, 0, n - take);
    p_ += take;
    left_ -= take;
  }
  size_t remaining() const { return left_; }

 private:
  const uint8_t* p_;
  size_t left_;
};

}  // namespace mp::fuzz

#define FUZZ_CHECK(cond)                                      \
  do {                                                        \
    if (!(cond)) ::mp::fuzz::Fail(__FILE__, __LINE__, #cond); \
  } while (0)

#endif  // MP_FUZZ_FUZZ_UTIL_H_
