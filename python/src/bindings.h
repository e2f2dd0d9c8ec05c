// The parts of mnnvl_ar._core, each adding its functions to the module.
#pragma once

#include <nanobind/nanobind.h>

namespace ar::python {

/// all_reduce and fused: the model's outputs.
void bind_model(nanobind::module_& m);

/// fused_quant, dequantize and compare_quant: the fused call's quantised outputs.
void bind_quant(nanobind::module_& m);

/// explain, explain_fused, diff and accuracy: results with the text the CLI prints.
void bind_reports(nanobind::module_& m);

/// Rendezvous: the CLI's authenticated rendezvous, for processes without a torch.distributed group.
void bind_rendezvous(nanobind::module_& m);

}  // namespace ar::python
