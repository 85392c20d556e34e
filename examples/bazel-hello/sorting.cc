#include <algorithm>
#include <cctype>
#include "parts.h"

std::string sorting(std::string text) {
  text.erase(std::remove_if(text.begin(), text.end(), [](char c) { return !std::islower(c); }), text.end());
  std::sort(text.begin(), text.end());
  return text;
}
