// multiprocessing_lock.cc: the twin of PyMOTW's multiprocessing_lock.py.
#include <cstdio>
#include <mutex>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/sync/lock.h"

void worker_with(mp::Lock lock, FILE* stream) {
  std::lock_guard with(lock);
  std::fputs("Lock acquired via with\n", stream);
}

void worker_no_with(mp::Lock lock, FILE* stream) {
  lock.Acquire();
  std::fputs("Lock acquired directly\n", stream);
  MP_CHECK_OK(lock.Release());
}

int main() {
  mp::Lock lock;
  mp::Process w(worker_with, lock, stdout);
  mp::Process nw(worker_no_with, lock, stdout);

  MP_CHECK_OK(w.Start());
  MP_CHECK_OK(nw.Start());

  MP_CHECK_OK(w.Join());
  MP_CHECK_OK(nw.Join());
}
