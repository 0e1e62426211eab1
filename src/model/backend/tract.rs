//! The pure-Rust backend: `tract-onnx`, loaded → optimised → runnable once per session.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::{
    tvec, DatumType, Framework, InferenceModelExt, IntoRunnable, TValue, TypedRunnableModel,
};

use super::{classify_load_error, panic_text, Backend};
use crate::model::error::{ModelError, Result};
use crate::model::onnx_info::{IoInfo, OnnxInfo};
use crate::model::tensor::{Dtype, Tensor, TensorSlice, TensorView};

/// A tract runnable plan plus the model's declared I/O.
///
/// Every [`TractSession::run`] spawns a fresh plan state: a reused tract state keeps a GRU's
/// hidden state and ignores the `h0` input after the first call, which would silently break
/// the explicit-state contract.
#[derive(Debug)]
pub struct TractSession {
    plan: Arc<TypedRunnableModel>,
    path: PathBuf,
    inputs: Vec<IoInfo>,
    outputs: Vec<IoInfo>,
}

impl TractSession {
    /// Loads, optimises and plans the model.
    ///
    /// The declared graph I/O from `info` is what [`TractSession::inputs`] reports (tract's
    /// optimised graph keeps the order but not the declared dtypes of dynamic outputs).
    ///
    /// # Errors
    /// [`ModelError::UnsupportedOperator`] or [`ModelError::Backend`].
    pub fn new(path: &Path, bytes: &[u8], info: &OnnxInfo) -> Result<TractSession> {
        let fail = |e: tract_onnx::prelude::TractError| {
            // `{:#}` prints anyhow's whole context chain: the op name is usually inside.
            classify_load_error(path, Backend::Tract, format!("{e:#}"), info)
        };
        // tract still has `unimplemented!`s on rare constant types and malformed graphs: a
        // panic there must refuse this model, not take the loader thread (or the CLI) down.
        let planned = std::panic::catch_unwind(|| {
            tract_onnx::onnx()
                .model_for_read(&mut std::io::Cursor::new(bytes))
                .and_then(|model| model.into_optimized())
                .and_then(|model| model.into_runnable())
        });
        let plan = match planned {
            Ok(plan) => plan.map_err(fail)?,
            Err(panic) => {
                return Err(ModelError::Backend {
                    path: path.to_path_buf(),
                    backend: Backend::Tract,
                    reason: format!("tract panicked loading the model: {}", panic_text(&*panic)),
                })
            }
        };
        Ok(TractSession {
            plan,
            path: path.to_path_buf(),
            inputs: info.inputs.clone(),
            outputs: info.outputs.clone(),
        })
    }

    /// Declared inputs, in run order.
    pub fn inputs(&self) -> &[IoInfo] {
        &self.inputs
    }

    /// Declared outputs, in result order.
    pub fn outputs(&self) -> &[IoInfo] {
        &self.outputs
    }

    /// ONNX file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs once on a fresh state. Inputs were checked by `Session::run`.
    ///
    /// # Errors
    /// [`ModelError::Backend`].
    pub fn run(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>> {
        let err = |reason: String| ModelError::Backend {
            path: self.path.clone(),
            backend: Backend::Tract,
            reason,
        };
        let mut values = tvec!();
        for t in inputs {
            let tensor = match t.data {
                TensorSlice::F32(d) => tract_onnx::prelude::Tensor::from_shape(t.shape, d),
                TensorSlice::I64(d) => tract_onnx::prelude::Tensor::from_shape(t.shape, d),
            }
            .map_err(|e| err(format!("{e:#}")))?;
            values.push(TValue::from(tensor));
        }
        // `SimplePlan::run` spawns a new state for this call only (see the type's docs). A
        // panic inside tract fails this call like any other error.
        let plan = &self.plan;
        let outs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan.run(values)))
            .map_err(|panic| err(format!("tract panicked: {}", panic_text(&*panic))))?
            .map_err(|e| err(format!("{e:#}")))?;
        outs.into_iter()
            .enumerate()
            .map(|(i, v)| {
                let shape = v.shape().to_vec();
                match v.datum_type() {
                    DatumType::F32 => Ok(Tensor::f32(
                        shape,
                        v.to_plain_array_view::<f32>()
                            .map_err(|e| err(e.to_string()))?
                            .iter()
                            .copied()
                            .collect(),
                    )),
                    DatumType::I64 => Ok(Tensor::i64(
                        shape,
                        v.to_plain_array_view::<i64>()
                            .map_err(|e| err(e.to_string()))?
                            .iter()
                            .copied()
                            .collect(),
                    )),
                    other => Err(err(format!(
                        "output #{i} has type {other:?}, the contract only allows {} and {}",
                        Dtype::F32,
                        Dtype::I64
                    ))),
                }
            })
            .collect()
    }
}
