// Gives the shared precompiled catch.hpp (tests/CMakeLists.txt) a target to live in.
#include <catch2/catch.hpp>
