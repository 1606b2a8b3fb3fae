// The control: a task the pool takes. Must compile, or the other cases
// prove nothing.
#include "mp/pool/pool.h"

int Twice(int x) { return x * 2; }

int main() {
  mp::Pool pool(1);
  auto out = pool.Map(Twice, std::vector<int>{1, 2});
  auto lambda = pool.Map([](int x) { return x + 1; }, std::vector<int>{1});
  return out.ok() && lambda.ok() ? 0 : 1;
}
