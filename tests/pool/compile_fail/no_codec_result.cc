// EXPECT: an argument or result type has no mp::Codec
#include <memory>

#include "mp/pool/pool.h"

std::unique_ptr<int> Make(int x) { return std::make_unique<int>(x); }

int main() {
  mp::Pool pool(1);
  auto r = pool.Map(Make, std::vector<int>{1});
  return r.ok() ? 0 : 1;
}
