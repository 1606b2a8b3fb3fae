// tests/queue/element_type.h: rewrites the element type recorded in a named
// queue's segment header, as a careless or lying creator would leave it.

#ifndef MP_TESTS_QUEUE_ELEMENT_TYPE_H_
#define MP_TESTS_QUEUE_ELEMENT_TYPE_H_

#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/queue.h"

namespace mp_test {

// Records U as the element type of the named queue `name` (segment_header.h:
// type_tag at 32, type_size at 40): Open<U> then accepts the segment, and the
// records of the creator's type reach U's Get.
template <class U>
void RecordElementType(const std::string& name) {
  auto mem = mp::SharedMemory::Open(name);
  ASSERT_TRUE(mem.ok()) << mem.status();
  const mp::queue_internal::ElementType t =
      mp::queue_internal::ElementTypeOf<U>();
  std::memcpy(static_cast<char*>(mem->data()) + 32, &t.tag, 8);
  std::memcpy(static_cast<char*>(mem->data()) + 40, &t.size, 4);
}

}  // namespace mp_test

#endif  // MP_TESTS_QUEUE_ELEMENT_TYPE_H_
