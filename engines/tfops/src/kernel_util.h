// Input checks shared by the kernels: the same argument names and wording as
// engines/validation.py, so a graph user sees the errors an engine user sees.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"

namespace hashlab_tf {

// The TensorFlow names every kernel file uses.
using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::core::RefCountPtr;
using tensorflow::shape_inference::InferenceContext;
namespace si = tensorflow::shape_inference;

inline absl::Status check_ids(const tensorflow::Tensor& t, const char* name = "ids") {
  if (t.dims() != 1)
    return absl::InvalidArgumentError(std::string(name) + " must be 1-D, got shape " +
                                      t.shape().DebugString());
  return absl::OkStatus();
}

// float32 rows [n, dim] (a flat [n*dim] vector is accepted too), every value finite.
inline absl::Status check_rows(const tensorflow::Tensor& t, int64_t n, int64_t dim,
                               const char* name) {
  const bool ok = (t.dims() == 2 && t.dim_size(0) == n && t.dim_size(1) == dim) ||
                  (t.dims() == 1 && t.dim_size(0) == n * dim);
  if (!ok)
    return absl::InvalidArgumentError(std::string(name) + " must have shape [" +
                                      std::to_string(n) + ", " + std::to_string(dim) +
                                      "] (one row per id), got " + t.shape().DebugString());
  const float* v = t.flat<float>().data();
  const int64_t size = t.NumElements();
  for (int64_t i = 0; i < size; ++i)
    if (!std::isfinite(v[i]))
      return absl::InvalidArgumentError(
          std::string(name) + " contains a non-finite value (NaN or Inf) at row " +
          std::to_string(dim > 0 ? i / dim : 0) + "; values and gradients must be finite");
  return absl::OkStatus();
}

// A flat float32 vector of `size` finite values (any shape with that many elements).
inline absl::Status check_flat(const tensorflow::Tensor& t, int64_t size, const char* name) {
  if (t.NumElements() != size)
    return absl::InvalidArgumentError(std::string(name) + " must have " + std::to_string(size) +
                                      " elements, got " + std::to_string(t.NumElements()));
  const float* v = t.flat<float>().data();
  for (int64_t i = 0; i < size; ++i)
    if (!std::isfinite(v[i]))
      return absl::InvalidArgumentError(std::string(name) +
                                        " contains a non-finite value (NaN or Inf) at element " +
                                        std::to_string(i) + "; values and gradients must be finite");
  return absl::OkStatus();
}

// One finite learning rate per segment (`count`), as a 1-D float tensor.
inline absl::Status check_learning_rates(const tensorflow::Tensor& t, int64_t count,
                                         const char* name) {
  if (t.dims() != 1 || t.NumElements() != count)
    return absl::InvalidArgumentError(std::string(name) + " must have one value per segment (" +
                                      std::to_string(count) + "), got shape " +
                                      t.shape().DebugString());
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(t.flat<float>()(i)))
      return absl::InvalidArgumentError(std::string(name) + " must be finite");
  return absl::OkStatus();
}

inline absl::Status scalar_i64(const tensorflow::Tensor& t, const char* name, int64_t* out) {
  if (t.dims() != 0)
    return absl::InvalidArgumentError(std::string(name) + " must be a scalar, got shape " +
                                      t.shape().DebugString());
  *out = t.scalar<int64_t>()();
  return absl::OkStatus();
}

}  // namespace hashlab_tf
