// EXPECT: an argument or result type has no mp::Codec
#include <memory>

#include "mp/pool/pool.h"

struct Handle {
  std::unique_ptr<int> p;  // not trivially copyable, no Codec
};
int Use(Handle h) { return h.p ? *h.p : 0; }

int main() {
  mp::Pool pool(1);
  auto r = pool.Apply(Use, Handle{});
  return r.ok() ? 0 : 1;
}
