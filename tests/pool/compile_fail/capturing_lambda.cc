// EXPECT: a task must be a plain function or a lambda without captures
#include "mp/pool/pool.h"

int main() {
  mp::Pool pool(1);
  int k = 3;
  auto out = pool.Map([k](int x) { return x * k; }, std::vector<int>{1});
  return out.ok() ? 0 : 1;
}
