#pragma once
#include <string>

std::string greeting();
int counting(int n);
bool matching(const std::string& text);
std::string sorting(std::string text);
