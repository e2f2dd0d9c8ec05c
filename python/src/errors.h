// How the extensions raise: the CLI's usage errors (a wrong name, shape or value) are the caller's, so
// ValueError with the CLI's message. std::invalid_argument from the model already becomes ValueError and
// std::bad_alloc MemoryError (nanobind's own translations); anything else is RuntimeError.
#pragma once

#include <exception>

#include <nanobind/nanobind.h>

#include "harness/io/exit_codes.h"

namespace ar::python {

inline void raise_usage_errors_as_value_errors() {
  nanobind::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const UsageError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
}

}  // namespace ar::python
