// The separate residual-add + RMSNorm kernel's instantiations and launcher.
#include "cuda/rms_norm.h"

#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>

#include <cuda_runtime_api.h>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"
#include "cuda/detail/dispatch.h"
#include "cuda/detail/norm_tree.h"
#include "cuda/detail/rms_norm_impl.cuh"

namespace ar::cuda {

namespace detail {

void allow_dynamic_shared(const void* kernel, std::int64_t bytes) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, std::int64_t> allowed;  // the most so far, per kernel and device
  if (bytes <= 0) return;
  int device = 0;
  AR_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard lock(mutex);
  std::int64_t& most = allowed[{kernel, device}];
  if (most >= bytes) return;
  AR_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  most = bytes;
}

}  // namespace detail

void launch_rms_norm(const RmsNormArguments& a, Stream stream) {
  if (a.ranks.empty() || a.ranks.size() != a.normalized.size() || a.ranks.size() > kMaxWorldSize)
    throw std::invalid_argument("launch_rms_norm needs one normalised output per rank, 1 to 64 ranks");
  if (a.profile == Profile::kTrtllm) throw std::invalid_argument("the norm runs the flashinfer, ieee and invariant profiles");
  const NormLaunch launch = norm_launch_for(a.profile, a.resolved, a.shape.tokens, a.shape.hidden, a.shape.dtype, a.norm.sm_count);
  RmsNormParams p;
  std::memset(&p, 0, sizeof(p));
  for (std::size_t i = 0; i < a.ranks.size(); ++i) {
    const RankIo& r = a.ranks[i];
    p.norm[i] = NormSlot{r.residual, r.residual_out, r.gamma, r.quant_out, r.scale_out, r.quant_scale};
    p.input[i] = r.output;
    p.output[i] = a.normalized[i];
  }
  p.tokens = a.shape.tokens;
  p.row_packs = a.shape.hidden / elements_per_pack(a.shape.dtype);
  p.tree = detail::norm_tree(launch, a.norm, a.profile);

  const void* kernel = nullptr;
  detail::dispatch_arith(a.shape.dtype, {flushes_subnormals(a.profile), false}, [&](auto arith) {
    using A = decltype(arith);
    kernel = reinterpret_cast<const void*>(&detail::rms_norm_rows<A::dtype, A::ftz>);
  });
  if (kernel == nullptr) throw std::invalid_argument("this dtype is not compiled into this build (AR_DTYPES)");

  detail::DeviceGuard guard(a.device);
  detail::allow_dynamic_shared(kernel, staged_row_bytes(p.row_packs));
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(a.shape.tokens < 65535 ? a.shape.tokens : 65535), 1,
                        static_cast<unsigned>(a.ranks.size()));
  config.blockDim = dim3(static_cast<unsigned>(fused_block_threads(p.row_packs, p.tokens >= kSeparateNormManyRows)), 1, 1);
  config.dynamicSmemBytes = static_cast<std::size_t>(staged_row_bytes(p.row_packs));
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = a.launch_with_pdl ? 1 : 0;
  config.attrs = attribute;
  config.numAttrs = 1;
  void* kernel_args[] = {&p};
  AR_CUDA_CHECK(cudaLaunchKernelExC(&config, kernel, kernel_args));
  AR_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ar::cuda
