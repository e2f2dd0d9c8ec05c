// Boost.Asio, included once for the project. Boost 1.74's awaitable.hpp uses std::exchange without
// including <utility>, which GCC 12 in C++20 mode rejects; including it first is the whole fix.
#pragma once

#include <utility>

#include <boost/asio.hpp>
