// mnnvl_ar._core: the model behind the Python package (python/mnnvl_ar). Arrays cross as raw bits with the
// dtype's name (bits.h); the package turns them into NumPy, ml_dtypes or torch values. A refusal is the
// CLI's message raised as ValueError; nothing here ends the interpreter on bad input.
#include <nanobind/nanobind.h>

#include "harness/io/exit_codes.h"
#include "python/src/bindings.h"

NB_MODULE(_core, m) {
  m.doc() = "The bit-exact model of FlashInfer's MNNVL all-reduce (raw-bits interface; use mnnvl_ar).";
  // The CLI's usage errors (a wrong name, shape or value) are the caller's: ValueError. std::invalid_argument
  // from the model already becomes ValueError, std::bad_alloc MemoryError.
  nanobind::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const ar::UsageError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  ar::python::bind_model(m);
  ar::python::bind_reports(m);
}
