#include <sstream>
#include "parts.h"

std::string greeting() {
  std::ostringstream out;
  out << "hello from bazel";
  return out.str();
}
