//! A small hand-written ONNX writer.
//!
//! Why hand-written: burn's ONNX export cannot trace Embedding or GRU, and the only ops
//! Continuo's models need are a dozen standard ones. [`GraphBuilder`] assembles a graph from
//! named values; op helpers return the name of the value they produce, and
//! [`GraphBuilder::output`] exposes a value under the name the manifest uses.
//!
//! Used by tests to generate models at test time (no binary fixtures) and by the trainer to
//! export trained weights. Written models use IR version 8 and opset 17 (see [`OPSET`]).
//!
//! ```
//! use continuo::model::onnx_writer::GraphBuilder;
//! use continuo::model::{Dim, Dtype};
//!
//! let mut g = GraphBuilder::new("tiny");
//! let x = g.input("x", Dtype::F32, &[Dim::from(1), Dim::from(3)]);
//! let w = g.initializer_f32("w", &[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
//! let y = g.matmul(&x, &w);
//! let y = g.tanh(&y);
//! g.output(&y, "y", Dtype::F32, &[Dim::from(1), Dim::from(2)]);
//! let bytes = g.to_bytes();
//! assert!(bytes.len() > 50);
//! ```

pub mod proto;

use std::path::Path;

use prost::Message;

use self::proto::{
    attribute_type, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use super::manifest::Dim;
use super::tensor::Dtype;

/// Default-domain operator-set version written into every model. 17 is supported by ONNX
/// Runtime 1.31 and tract 0.23, and is the first with LayerNormalization.
pub const OPSET: i64 = 17;

/// ONNX IR version written (8 = the IR of opset 17's ONNX release).
pub const IR_VERSION: i64 = 8;

/// One operator attribute, built with the typed constructors.
#[derive(Debug, Clone)]
pub struct Attr(AttributeProto);

impl Attr {
    fn base(name: &str, ty: i32) -> AttributeProto {
        AttributeProto {
            name: name.to_owned(),
            r#type: Some(ty),
            ..Default::default()
        }
    }

    /// An `INT` attribute (e.g. `axis`, `hidden_size`). Zero is written explicitly.
    pub fn int(name: &str, value: i64) -> Attr {
        Attr(AttributeProto {
            i: Some(value),
            ..Self::base(name, attribute_type::INT)
        })
    }

    /// A `FLOAT` attribute (e.g. `alpha`).
    pub fn float(name: &str, value: f32) -> Attr {
        Attr(AttributeProto {
            f: Some(value),
            ..Self::base(name, attribute_type::FLOAT)
        })
    }

    /// An `INTS` attribute (e.g. `perm`).
    pub fn ints(name: &str, values: &[i64]) -> Attr {
        Attr(AttributeProto {
            ints: values.to_vec(),
            ..Self::base(name, attribute_type::INTS)
        })
    }

    /// A `FLOATS` attribute.
    pub fn floats(name: &str, values: &[f32]) -> Attr {
        Attr(AttributeProto {
            floats: values.to_vec(),
            ..Self::base(name, attribute_type::FLOATS)
        })
    }

    /// A `STRING` attribute (e.g. `direction`).
    pub fn string(name: &str, value: &str) -> Attr {
        Attr(AttributeProto {
            s: Some(value.as_bytes().to_vec()),
            ..Self::base(name, attribute_type::STRING)
        })
    }

    /// A `TENSOR` attribute (e.g. `Constant.value`).
    pub fn tensor(name: &str, value: TensorProto) -> Attr {
        Attr(AttributeProto {
            t: Some(value),
            ..Self::base(name, attribute_type::TENSOR)
        })
    }
}

/// Weights of a single-direction, single-layer ONNX `GRU`.
///
/// ONNX's gate order is **z (update), r (reset), h (candidate)** — not PyTorch's r, z, n. Each
/// matrix is stored row-major with the three gate blocks stacked along the first axis.
#[derive(Debug, Clone, PartialEq)]
pub struct GruWeights {
    /// Input feature size `I`.
    pub input_size: usize,
    /// Hidden size `H`.
    pub hidden_size: usize,
    /// Input weights `[3H, I]`: `W_z`, `W_r`, `W_h`.
    pub w: Vec<f32>,
    /// Recurrent weights `[3H, H]`: `R_z`, `R_r`, `R_h`.
    pub r: Vec<f32>,
    /// Biases `[6H]`: `Wb_z`, `Wb_r`, `Wb_h`, `Rb_z`, `Rb_r`, `Rb_h`.
    pub b: Vec<f32>,
    /// `true`: the reset gate multiplies `(R_h·h + Rb_h)` (PyTorch/burn "reset after");
    /// `false`: it multiplies `h` before `R_h` (the ONNX default).
    pub linear_before_reset: bool,
}

impl GruWeights {
    /// Checks the buffer lengths against the sizes.
    ///
    /// # Panics
    /// If a buffer has the wrong length (a trainer bug: better caught at export than in a DAW).
    pub fn assert_sizes(&self) {
        let (i, h) = (self.input_size, self.hidden_size);
        assert_eq!(self.w.len(), 3 * h * i, "GRU W must be [3H, I]");
        assert_eq!(self.r.len(), 3 * h * h, "GRU R must be [3H, H]");
        assert_eq!(self.b.len(), 6 * h, "GRU B must be [6H]");
    }
}

/// Builds one ONNX graph; see the module docs.
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    graph: GraphProto,
    producer: String,
    next_id: usize,
}

impl GraphBuilder {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            graph: GraphProto {
                name: name.to_owned(),
                ..Default::default()
            },
            producer: "continuo".to_owned(),
            next_id: 0,
        }
    }

    /// Sets the `producer_name` written into the model (default `"continuo"`).
    pub fn producer(&mut self, name: &str) -> &mut Self {
        self.producer = name.to_owned();
        self
    }

    /// A value name not used yet, for intermediate results.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}", self.next_id)
    }

    /// Declares a graph input and returns its name.
    pub fn input(&mut self, name: &str, dtype: Dtype, shape: &[Dim]) -> String {
        self.graph.input.push(value_info(name, dtype, shape));
        name.to_owned()
    }

    /// Declares `value` as a graph output named `name`.
    ///
    /// The node producing `value` is renamed to output `name` directly (no Identity node). A
    /// graph input or initializer cannot be renamed and gets an Identity node instead.
    pub fn output(&mut self, value: &str, name: &str, dtype: Dtype, shape: &[Dim]) {
        if value != name {
            let produced = self
                .graph
                .node
                .iter()
                .any(|n| n.output.iter().any(|o| o == value));
            if produced {
                for node in &mut self.graph.node {
                    for v in node.input.iter_mut().chain(node.output.iter_mut()) {
                        if v == value {
                            *v = name.to_owned();
                        }
                    }
                }
                for out in &mut self.graph.output {
                    if out.name == value {
                        out.name = name.to_owned();
                    }
                }
            } else {
                self.node("Identity", &[value], &[name], vec![]);
            }
        }
        self.graph.output.push(value_info(name, dtype, shape));
    }

    /// Adds an `f32` constant (weights) and returns its name.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape`.
    pub fn initializer_f32(&mut self, name: &str, shape: &[usize], data: &[f32]) -> String {
        let t = tensor_f32(name, shape, data);
        self.graph.initializer.push(t);
        name.to_owned()
    }

    /// Adds an `i64` constant (shapes, axes, indices) and returns its name.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape`.
    pub fn initializer_i64(&mut self, name: &str, shape: &[usize], data: &[i64]) -> String {
        let t = tensor_i64(name, shape, data);
        self.graph.initializer.push(t);
        name.to_owned()
    }

    /// Adds any node. Empty input names mark omitted optional inputs.
    pub fn node(&mut self, op_type: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<Attr>) {
        let name = self.fresh(op_type);
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name,
            op_type: op_type.to_owned(),
            attribute: attrs.into_iter().map(|a| a.0).collect(),
            ..Default::default()
        });
    }

    fn unary(&mut self, op: &str, x: &str, attrs: Vec<Attr>) -> String {
        let y = self.fresh(&op.to_lowercase());
        self.node(op, &[x], &[&y], attrs);
        y
    }

    fn binary(&mut self, op: &str, a: &str, b: &str) -> String {
        let y = self.fresh(&op.to_lowercase());
        self.node(op, &[a, b], &[&y], vec![]);
        y
    }

    /// `MatMul(a, b)` with numpy broadcasting (e.g. `[1, T, I] × [I, O]`).
    pub fn matmul(&mut self, a: &str, b: &str) -> String {
        self.binary("MatMul", a, b)
    }

    /// Element-wise `Add` with broadcasting.
    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.binary("Add", a, b)
    }

    /// Element-wise `Mul` with broadcasting.
    pub fn mul(&mut self, a: &str, b: &str) -> String {
        self.binary("Mul", a, b)
    }

    /// `Gemm`: `a · b(ᵀ) + c` on 2-D inputs.
    pub fn gemm(&mut self, a: &str, b: &str, c: &str, trans_b: bool) -> String {
        let y = self.fresh("gemm");
        self.node(
            "Gemm",
            &[a, b, c],
            &[&y],
            vec![Attr::int("transB", trans_b as i64)],
        );
        y
    }

    /// `Tanh`.
    pub fn tanh(&mut self, x: &str) -> String {
        self.unary("Tanh", x, vec![])
    }

    /// `Sigmoid`.
    pub fn sigmoid(&mut self, x: &str) -> String {
        self.unary("Sigmoid", x, vec![])
    }

    /// `Relu`.
    pub fn relu(&mut self, x: &str) -> String {
        self.unary("Relu", x, vec![])
    }

    /// `Softmax` over `axis` (opset 13+ semantics: one axis).
    pub fn softmax(&mut self, x: &str, axis: i64) -> String {
        self.unary("Softmax", x, vec![Attr::int("axis", axis)])
    }

    /// `LayerNormalization` over the last axis (opset 17) with scale `gamma` and bias `beta`
    /// (both `[D]`, given as data).
    pub fn layer_norm(&mut self, x: &str, gamma: &[f32], beta: &[f32], epsilon: f32) -> String {
        let g = self.fresh("norm_scale");
        let b = self.fresh("norm_bias");
        self.initializer_f32(&g, &[gamma.len()], gamma);
        self.initializer_f32(&b, &[beta.len()], beta);
        let y = self.fresh("layer_norm");
        self.node(
            "LayerNormalization",
            &[x, &g, &b],
            &[&y],
            vec![Attr::int("axis", -1), Attr::float("epsilon", epsilon)],
        );
        y
    }

    /// `Gather(data, indices)` along `axis` (an embedding lookup with axis 0).
    pub fn gather(&mut self, data: &str, indices: &str, axis: i64) -> String {
        let y = self.fresh("gather");
        self.node(
            "Gather",
            &[data, indices],
            &[&y],
            vec![Attr::int("axis", axis)],
        );
        y
    }

    /// `Concat` along `axis`.
    pub fn concat(&mut self, inputs: &[&str], axis: i64) -> String {
        let y = self.fresh("concat");
        self.node("Concat", inputs, &[&y], vec![Attr::int("axis", axis)]);
        y
    }

    /// `Slice` with constant `starts`/`ends`/`axes` (opset 10+: they are inputs).
    pub fn slice(&mut self, x: &str, starts: &[i64], ends: &[i64], axes: &[i64]) -> String {
        let s = self.fresh("slice_starts");
        let e = self.fresh("slice_ends");
        let a = self.fresh("slice_axes");
        self.initializer_i64(&s, &[starts.len()], starts);
        self.initializer_i64(&e, &[ends.len()], ends);
        self.initializer_i64(&a, &[axes.len()], axes);
        let y = self.fresh("slice");
        self.node("Slice", &[x, &s, &e, &a], &[&y], vec![]);
        y
    }

    /// `Reshape` to a constant shape (`0` copies the input dim, `-1` is inferred).
    pub fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let s = self.fresh("shape");
        self.initializer_i64(&s, &[shape.len()], shape);
        let y = self.fresh("reshape");
        self.node("Reshape", &[x, &s], &[&y], vec![]);
        y
    }

    /// `Transpose` with permutation `perm`.
    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.unary("Transpose", x, vec![Attr::ints("perm", perm)])
    }

    /// `Squeeze` of `axes` (opset 13+: axes are an input, not an attribute).
    pub fn squeeze(&mut self, x: &str, axes: &[i64]) -> String {
        let a = self.fresh("squeeze_axes");
        self.initializer_i64(&a, &[axes.len()], axes);
        let y = self.fresh("squeeze");
        self.node("Squeeze", &[x, &a], &[&y], vec![]);
        y
    }

    /// `Unsqueeze` at `axes` (opset 13+: axes are an input).
    pub fn unsqueeze(&mut self, x: &str, axes: &[i64]) -> String {
        let a = self.fresh("unsqueeze_axes");
        self.initializer_i64(&a, &[axes.len()], axes);
        let y = self.fresh("unsqueeze");
        self.node("Unsqueeze", &[x, &a], &[&y], vec![]);
        y
    }

    /// A dense layer `x · W + b` over the last axis: `MatMul` + `Add`, which (unlike `Gemm`)
    /// accepts `[B, T, in]` inputs. `w` is `[in, out]` row-major, `b` is `[out]`.
    pub fn dense(
        &mut self,
        x: &str,
        in_dim: usize,
        out_dim: usize,
        w: &[f32],
        b: &[f32],
    ) -> String {
        let wn = self.fresh("dense_w");
        let bn = self.fresh("dense_b");
        self.initializer_f32(&wn, &[in_dim, out_dim], w);
        self.initializer_f32(&bn, &[out_dim], b);
        let y = self.matmul(x, &wn);
        self.add(&y, &bn)
    }

    /// A forward, single-layer ONNX `GRU` (layout 0).
    ///
    /// `x` is `[T, B, I]`; `h0` (optional) is `[1, B, H]`. Returns `(Y, Y_h)` with `Y` of shape
    /// `[T, 1, B, H]` and `Y_h` of shape `[1, B, H]`. See [`GraphBuilder::gru_batch_first`] for
    /// `[B, T, I]` inputs.
    ///
    /// # Panics
    /// If the weight buffers do not match the sizes ([`GruWeights::assert_sizes`]).
    pub fn gru(&mut self, x: &str, h0: Option<&str>, weights: &GruWeights) -> (String, String) {
        weights.assert_sizes();
        let (i, h) = (weights.input_size, weights.hidden_size);
        let w = self.fresh("gru_W");
        let r = self.fresh("gru_R");
        let b = self.fresh("gru_B");
        self.initializer_f32(&w, &[1, 3 * h, i], &weights.w);
        self.initializer_f32(&r, &[1, 3 * h, h], &weights.r);
        self.initializer_f32(&b, &[1, 6 * h], &weights.b);
        let y = self.fresh("gru_Y");
        let y_h = self.fresh("gru_Y_h");
        self.node(
            "GRU",
            &[x, &w, &r, &b, "", h0.unwrap_or("")],
            &[&y, &y_h],
            vec![
                Attr::int("hidden_size", h as i64),
                Attr::int("linear_before_reset", weights.linear_before_reset as i64),
                Attr::string("direction", "forward"),
            ],
        );
        (y, y_h)
    }

    /// A GRU over batch-first input: `x` `[B, T, I]`, `h0` `[1, B, H]` → (`[B, T, H]`,
    /// `[1, B, H]`). Transposes around [`GraphBuilder::gru`] because ONNX Runtime's CPU GRU
    /// rejects `layout = 1`.
    pub fn gru_batch_first(
        &mut self,
        x: &str,
        h0: Option<&str>,
        weights: &GruWeights,
    ) -> (String, String) {
        let xt = self.transpose(x, &[1, 0, 2]);
        let (y, y_h) = self.gru(&xt, h0, weights);
        let y = self.squeeze(&y, &[1]); // [T, B, H]
        let y = self.transpose(&y, &[1, 0, 2]); // [B, T, H]
        (y, y_h)
    }

    /// Number of `f32` weights in the initializers (for the manifest's `parameter_count`;
    /// `i64` constants such as shapes and axes are not parameters).
    pub fn parameter_count(&self) -> u64 {
        self.graph
            .initializer
            .iter()
            .filter(|t| t.data_type == proto::data_type::FLOAT)
            .map(|t| t.dims.iter().product::<i64>().max(0) as u64)
            .sum()
    }

    /// The finished `ModelProto`.
    pub fn build(&self) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: self.producer.clone(),
            producer_version: env!("CARGO_PKG_VERSION").to_owned(),
            graph: Some(self.graph.clone()),
            ..Default::default()
        }
    }

    /// The model serialised as `.onnx` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.build().encode_to_vec()
    }

    /// Writes the model to `path`.
    ///
    /// # Errors
    /// The I/O error of writing the file.
    pub fn write(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.to_bytes())
    }
}

/// A `ValueInfoProto` for a tensor with the given dims (numbers or symbolic names).
pub fn value_info(name: &str, dtype: Dtype, shape: &[Dim]) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value as DimValue, Dimension};
    let dim = shape
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => DimValue::DimValue(*n as i64),
                Dim::Symbolic(s) => DimValue::DimParam(s.clone()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: dtype.onnx_code(),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An `f32` `TensorProto` with little-endian `raw_data`.
///
/// # Panics
/// If `data.len()` is not the product of `shape`.
pub fn tensor_f32(name: &str, shape: &[usize], data: &[f32]) -> TensorProto {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "initializer `{name}`: shape/data mismatch"
    );
    TensorProto {
        name: name.to_owned(),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: proto::data_type::FLOAT,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An `i64` `TensorProto` with little-endian `raw_data`.
///
/// # Panics
/// If `data.len()` is not the product of `shape`.
pub fn tensor_i64(name: &str, shape: &[usize], data: &[i64]) -> TensorProto {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "initializer `{name}`: shape/data mismatch"
    );
    TensorProto {
        name: name.to_owned(),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: proto::data_type::INT64,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_valued_attributes_are_encoded() {
        // axis = 0 must survive encoding (prost drops plain zero scalars).
        let a = Attr::int("axis", 0).0;
        let bytes = a.encode_to_vec();
        let back = AttributeProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.i, Some(0));
        assert_eq!(back.r#type, Some(attribute_type::INT));
    }

    #[test]
    fn output_renames_producer_and_round_trips() {
        let mut g = GraphBuilder::new("t");
        let x = g.input("x", Dtype::F32, &[Dim::from(1), Dim::from("T")]);
        let y = g.relu(&x);
        let z = g.tanh(&y);
        g.output(&z, "out", Dtype::F32, &[Dim::from(1), Dim::from("T")]);
        let m = ModelProto::decode(g.to_bytes().as_slice()).unwrap();
        let graph = m.graph.unwrap();
        assert_eq!(graph.node.last().unwrap().output, vec!["out".to_string()]);
        assert_eq!(graph.output[0].name, "out");
        assert_eq!(m.opset_import[0].version, OPSET);
        let ty = graph.input[0].r#type.clone().unwrap().value.unwrap();
        let type_proto::Value::TensorType(t) = ty;
        let dims = t.shape.unwrap().dim;
        assert_eq!(
            dims[1].value,
            Some(tensor_shape_proto::dimension::Value::DimParam("T".into()))
        );
    }
}
