#include <iostream>
#include "parts.h"

int main() {
  const std::string text = greeting();
  std::cout << text << " (" << (matching(text) ? "matched" : "unmatched") << ", "
            << counting(100) << " buckets, " << sorting(text) << ")" << std::endl;
  return 0;
}
