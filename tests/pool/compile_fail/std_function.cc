// EXPECT: a task must be a plain function or a lambda without captures
#include <functional>

#include "mp/pool/pool.h"

int main() {
  mp::Pool pool(1);
  std::function<int(int)> f = [](int x) { return x; };
  auto out = pool.Map(f, std::vector<int>{1});
  return out.ok() ? 0 : 1;
}
