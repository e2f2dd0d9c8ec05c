// mnnvl_ar._core: the model behind the Python package (python/mnnvl_ar), and the rendezvous of its processes.
// Arrays cross as raw bits with the dtype's name (bits.h); the package turns them into NumPy, ml_dtypes or
// torch values. A refusal is the CLI's message raised as ValueError; nothing here ends the interpreter on
// bad input.
#include <nanobind/nanobind.h>

#include "python/src/bindings.h"
#include "python/src/errors.h"

NB_MODULE(_core, m) {
  m.doc() = "The bit-exact model of FlashInfer's MNNVL all-reduce (raw-bits interface; use mnnvl_ar).";
  ar::python::raise_usage_errors_as_value_errors();
  ar::python::bind_model(m);
  ar::python::bind_quant(m);
  ar::python::bind_reports(m);
  ar::python::bind_rendezvous(m);
}
