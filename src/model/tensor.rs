//! The small tensor types exchanged with both backends.
//!
//! Only the two element types the model contract uses exist: `f32` (features, audio-rate
//! controls, logits, hidden states) and `i64` (token ids). Keeping our own type means callers
//! never see ort or tract types, so either backend can change without touching the engine.

use serde::{Deserialize, Serialize};

/// Element type of a tensor, as written in manifests (`"f32"` / `"i64"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dtype {
    /// 32-bit float (ONNX `FLOAT`).
    #[serde(rename = "f32")]
    F32,
    /// 64-bit signed integer (ONNX `INT64`).
    #[serde(rename = "i64")]
    I64,
}

impl Dtype {
    /// ONNX `TensorProto.DataType` code of this type.
    pub fn onnx_code(self) -> i32 {
        match self {
            Dtype::F32 => 1,
            Dtype::I64 => 7,
        }
    }

    /// The type for an ONNX `TensorProto.DataType` code, if it is one the contract uses.
    pub fn from_onnx_code(code: i32) -> Option<Dtype> {
        match code {
            1 => Some(Dtype::F32),
            7 => Some(Dtype::I64),
            _ => None,
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "f32",
            Dtype::I64 => "i64",
        })
    }
}

/// Owned element storage of a [`Tensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// `f32` elements, row-major.
    F32(Vec<f32>),
    /// `i64` elements, row-major.
    I64(Vec<i64>),
}

/// An owned, row-major tensor (a model output, or an input built by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements; their count is the product of `shape`.
    pub data: TensorData,
}

impl Tensor {
    /// An `f32` tensor.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape` (a caller bug, not a model problem).
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        assert_eq!(
            element_count(&shape),
            Some(data.len()),
            "shape/data length mismatch"
        );
        Tensor {
            shape,
            data: TensorData::F32(data),
        }
    }

    /// An `i64` tensor.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape`.
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Tensor {
        assert_eq!(
            element_count(&shape),
            Some(data.len()),
            "shape/data length mismatch"
        );
        Tensor {
            shape,
            data: TensorData::I64(data),
        }
    }

    /// A tensor of zeros (used for warm-up runs); `None` when the shape has more than
    /// `max_elements` elements or its element count overflows, checked before allocating.
    pub fn zeros(dtype: Dtype, shape: Vec<usize>, max_elements: usize) -> Option<Tensor> {
        let n = element_count(&shape).filter(|&n| n <= max_elements)?;
        Some(match dtype {
            Dtype::F32 => Tensor {
                shape,
                data: TensorData::F32(vec![0.0; n]),
            },
            Dtype::I64 => Tensor {
                shape,
                data: TensorData::I64(vec![0; n]),
            },
        })
    }

    /// Element type.
    pub fn dtype(&self) -> Dtype {
        match self.data {
            TensorData::F32(_) => Dtype::F32,
            TensorData::I64(_) => Dtype::I64,
        }
    }

    /// The `f32` elements, or `None` for an `i64` tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            TensorData::I64(_) => None,
        }
    }

    /// The `i64` elements, or `None` for an `f32` tensor.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            TensorData::F32(_) => None,
        }
    }

    /// A borrowed view, to pass as a run input without copying.
    pub fn view(&self) -> TensorView<'_> {
        let data = match &self.data {
            TensorData::F32(v) => TensorSlice::F32(v),
            TensorData::I64(v) => TensorSlice::I64(v),
        };
        TensorView {
            shape: &self.shape,
            data,
        }
    }
}

/// Number of elements of `shape`, `None` if the product overflows `usize`.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Borrowed element storage of a [`TensorView`].
#[derive(Debug, Clone, Copy)]
pub enum TensorSlice<'a> {
    /// `f32` elements, row-major.
    F32(&'a [f32]),
    /// `i64` elements, row-major.
    I64(&'a [i64]),
}

/// A borrowed tensor: what `Session::run` takes as input, so a worker can keep its input
/// buffers and pass them every hop without cloning.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// Dimensions, outermost first.
    pub shape: &'a [usize],
    /// Elements; their count must be the product of `shape` (checked by `Session::run`).
    pub data: TensorSlice<'a>,
}

impl<'a> TensorView<'a> {
    /// An `f32` view.
    pub fn f32(shape: &'a [usize], data: &'a [f32]) -> Self {
        TensorView {
            shape,
            data: TensorSlice::F32(data),
        }
    }

    /// An `i64` view.
    pub fn i64(shape: &'a [usize], data: &'a [i64]) -> Self {
        TensorView {
            shape,
            data: TensorSlice::I64(data),
        }
    }

    /// Element type.
    pub fn dtype(&self) -> Dtype {
        match self.data {
            TensorSlice::F32(_) => Dtype::F32,
            TensorSlice::I64(_) => Dtype::I64,
        }
    }

    /// Number of elements held.
    pub fn len(&self) -> usize {
        match self.data {
            TensorSlice::F32(v) => v.len(),
            TensorSlice::I64(v) => v.len(),
        }
    }

    /// True when the view holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_checks_the_element_count_before_allocating() {
        let t = Tensor::zeros(Dtype::F32, vec![2, 3], 6).expect("within the cap");
        assert_eq!(t.as_f32(), Some(&[0.0; 6][..]));
        assert_eq!(
            Tensor::zeros(Dtype::I64, vec![2, 4], 6),
            None,
            "above the cap"
        );
        // The product overflows usize: refused, not wrapped or panicking.
        assert_eq!(
            Tensor::zeros(Dtype::F32, vec![usize::MAX, 2], usize::MAX),
            None
        );
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[1 << 40, 1 << 40]), None);
    }
}
