#include <map>
#include <string>
#include "parts.h"

int counting(int n) {
  std::map<int, std::string> seen;
  for (int i = 0; i < n; ++i) seen[i % 7] += "x";
  return static_cast<int>(seen.size());
}
