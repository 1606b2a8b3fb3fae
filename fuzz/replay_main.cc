// fuzz/replay_main.cc
// -----------------------------------------------------------------------------
// A main for building a fuzz target without libFuzzer: runs
// LLVMFuzzerTestOneInput once over every file in the directories (or the
// files) named on the command line, in name order, so a corpus replays as a
// plain test under any compiler and sanitizer. Fails when it finds no input
// at all: an empty or missing corpus must not pass as a clean run. A failed
// check inside the target aborts, which fails the test and names the input
// last announced on stderr.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::filesystem::path> Inputs(const std::filesystem::path& arg) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  if (std::filesystem::is_directory(arg, ec)) {
    for (const auto& e : std::filesystem::directory_iterator(arg, ec)) {
      if (e.is_regular_file()) out.push_back(e.path());
    }
  } else if (std::filesystem::is_regular_file(arg, ec)) {
    out.push_back(arg);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  size_t runs = 0;
  for (int i = 1; i < argc; ++i) {
    for (const std::filesystem::path& p : Inputs(argv[i])) {
      std::ifstream f(p, std::ios::binary);
      if (!f) {
        std::fprintf(stderr, "cannot read %s\n", p.c_str());
        return 1;
      }
      std::vector<char> bytes((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
      std::fprintf(stderr, "input %s (%zu bytes)\n", p.c_str(), bytes.size());
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                             bytes.size());
      ++runs;
    }
  }
  if (runs == 0) {
    std::fprintf(stderr, "no inputs found in the paths given: failing\n");
    return 1;
  }
  std::fprintf(stderr, "replayed %zu inputs, all passed\n", runs);
  return 0;
}
