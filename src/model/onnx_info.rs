//! Cheap inspection of an ONNX file with the writer's own protobuf structs, before any
//! backend sees it: tells "not an ONNX file" apart from backend failures, checks the opset,
//! and lists the graph's declared inputs/outputs (what the tract backend reports for the
//! I/O check, since tract's optimised graph no longer carries the declared types).

use std::path::Path;

use prost::Message;

use super::error::{ModelError, Result};
use super::manifest::{Dim, MAX_FIXED_DIM};
use super::onnx_writer::proto::{
    tensor_shape_proto, type_proto, GraphProto, ModelProto, TensorProto, ValueInfoProto,
};
use super::tensor::{element_count, Dtype};

/// Highest default-domain opset accepted. ONNX Runtime 1.31 implements up to opset 23 and
/// tract 0.23 covers the ops Continuo uses up to there; a newer stamp means a newer exporter
/// whose op semantics we have not tested.
pub const MAX_OPSET: i64 = 23;

/// Deepest nesting of subgraphs (`If`/`Loop` bodies) inspected; Continuo's models have none.
pub const MAX_GRAPH_DEPTH: usize = 4;

/// Name, element type and shape of one graph input or output, as a backend reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct IoInfo {
    /// Tensor name.
    pub name: String,
    /// Element type, `None` for a type outside the contract (f16, string, sequence, …).
    pub dtype: Option<Dtype>,
    /// Human-readable type, for error messages (`"f32"`, `"float16"`, `"sequence"`).
    pub type_name: String,
    /// Shape if declared: each dim fixed or symbolic (unnamed dynamic dims are `"?"`).
    pub shape: Option<Vec<Dim>>,
}

/// What [`inspect`] learns from an ONNX file.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxInfo {
    /// Imported operator sets: (domain, version); the default domain is `"ai.onnx"`.
    pub opsets: Vec<(String, i64)>,
    /// Distinct operator types used by the graph, in first-use order.
    pub op_types: Vec<String>,
    /// Graph inputs that are not initializers, in order.
    pub inputs: Vec<IoInfo>,
    /// Graph outputs, in order.
    pub outputs: Vec<IoInfo>,
}

/// Decodes `bytes` (the content of `path`) and summarises the graph.
///
/// # Errors
/// [`ModelError::NotOnnx`] if the bytes are not a `ModelProto` with a graph;
/// [`ModelError::UnsupportedOpset`] if the default-domain opset is above [`MAX_OPSET`].
pub fn inspect(path: &Path, bytes: &[u8]) -> Result<OnnxInfo> {
    let not_onnx = |reason: String| ModelError::NotOnnx {
        path: path.to_path_buf(),
        reason,
    };
    let model =
        ModelProto::decode(bytes).map_err(|e| not_onnx(format!("protobuf decode failed: {e}")))?;
    // Random bytes sometimes decode as a protobuf with unknown fields only; a real model
    // always has an IR version and a graph.
    if model.ir_version <= 0 {
        return Err(not_onnx("no IR version".into()));
    }
    let graph = model.graph.ok_or_else(|| not_onnx("no graph".into()))?;
    if graph.node.is_empty() || graph.output.is_empty() {
        return Err(not_onnx("graph has no nodes or no outputs".into()));
    }
    let opsets: Vec<(String, i64)> = model
        .opset_import
        .iter()
        .map(|o| {
            let domain = if o.domain.is_empty() {
                "ai.onnx".to_owned()
            } else {
                o.domain.clone()
            };
            (domain, o.version)
        })
        .collect();
    for (domain, version) in &opsets {
        if domain == "ai.onnx" && *version > MAX_OPSET {
            return Err(ModelError::UnsupportedOpset {
                path: path.to_path_buf(),
                domain: domain.clone(),
                version: *version,
                max: MAX_OPSET,
            });
        }
    }
    let mut op_types: Vec<String> = Vec::new();
    for node in &graph.node {
        if !op_types.contains(&node.op_type) {
            op_types.push(node.op_type.clone());
        }
    }
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<IoInfo> = graph
        .input
        .iter()
        .filter(|v| !initializers.contains(v.name.as_str()))
        .map(io_info)
        .collect();
    let outputs: Vec<IoInfo> = graph.output.iter().map(io_info).collect();
    check_graph(&graph, 0).map_err(not_onnx)?;
    Ok(OnnxInfo {
        opsets,
        op_types,
        inputs,
        outputs,
    })
}

/// Checks what a backend would size from the file before running anything: every declared
/// dim of the graph's values against [`MAX_FIXED_DIM`], and every constant tensor's dims
/// against the data it really holds (so no dims can ask for more memory than the file brings),
/// recursing into subgraphs up to [`MAX_GRAPH_DEPTH`].
fn check_graph(graph: &GraphProto, depth: usize) -> std::result::Result<(), String> {
    if depth > MAX_GRAPH_DEPTH {
        return Err(format!("subgraphs nested deeper than {MAX_GRAPH_DEPTH}"));
    }
    for value in graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
    {
        check_value_dims(value)?;
    }
    for tensor in &graph.initializer {
        check_tensor(tensor)?;
    }
    for node in &graph.node {
        for attribute in &node.attribute {
            for tensor in attribute.t.iter().chain(&attribute.tensors) {
                check_tensor(tensor)?;
            }
            for subgraph in attribute.g.iter().map(|g| &**g).chain(&attribute.graphs) {
                check_graph(subgraph, depth + 1)?;
            }
        }
    }
    Ok(())
}

fn check_value_dims(value: &ValueInfoProto) -> std::result::Result<(), String> {
    use tensor_shape_proto::dimension::Value as D;
    let Some(type_proto::Value::TensorType(t)) =
        value.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Ok(());
    };
    for (axis, dim) in t.shape.iter().flat_map(|s| &s.dim).enumerate() {
        if let Some(D::DimValue(n)) = dim.value {
            if n > MAX_FIXED_DIM as i64 {
                return Err(format!(
                    "value `{}`: dim {axis} is {n}; at most {MAX_FIXED_DIM} is accepted",
                    value.name
                ));
            }
        }
    }
    Ok(())
}

/// Bytes per element of the ONNX element types a constant may have; `None` for types no
/// backend is asked to load here (strings, complex, 4- and 8-bit floats).
fn element_size(data_type: i32) -> Option<usize> {
    Some(match data_type {
        2 | 3 | 9 => 1,       // uint8, int8, bool
        4 | 5 | 10 | 16 => 2, // uint16, int16, float16, bfloat16
        1 | 6 | 12 => 4,      // float, int32, uint32
        7 | 11 | 13 => 8,     // int64, double, uint64
        _ => return None,
    })
}

/// A constant tensor must hold exactly the elements its dims declare, in this file.
fn check_tensor(tensor: &TensorProto) -> std::result::Result<(), String> {
    let name = &tensor.name;
    let size = element_size(tensor.data_type).ok_or_else(|| {
        format!(
            "constant `{name}` has element type {} ({}), which is not supported",
            tensor.data_type,
            onnx_type_name(tensor.data_type)
        )
    })?;
    if tensor.data_location == 1 || !tensor.external_data.is_empty() {
        return Err(format!(
            "constant `{name}` keeps its data in an external file, which is not supported"
        ));
    }
    let dims: Option<Vec<usize>> = tensor
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect();
    let count = dims
        .as_deref()
        .and_then(element_count)
        .ok_or_else(|| format!("constant `{name}` has invalid dims {:?}", tensor.dims))?;
    let held = if !tensor.raw_data.is_empty() {
        let bytes = tensor.raw_data.len();
        if count.checked_mul(size) != Some(bytes) {
            return Err(format!(
                "constant `{name}` declares dims {:?} ({count} elements of {size} bytes) but \
                 holds {bytes} bytes",
                tensor.dims
            ));
        }
        count
    } else {
        match tensor.data_type {
            1 => tensor.float_data.len(),
            7 => tensor.int64_data.len(),
            11 => tensor.double_data.len(),
            12 | 13 => tensor.uint64_data.len(),
            _ => tensor.int32_data.len(),
        }
    };
    if held != count {
        return Err(format!(
            "constant `{name}` declares dims {:?} ({count} elements) but holds {held}",
            tensor.dims
        ));
    }
    Ok(())
}

fn io_info(v: &ValueInfoProto) -> IoInfo {
    let tensor = v
        .r#type
        .as_ref()
        .and_then(|t| t.value.as_ref())
        .map(|v| match v {
            type_proto::Value::TensorType(t) => t,
        });
    match tensor {
        None => IoInfo {
            name: v.name.clone(),
            dtype: None,
            type_name: "non-tensor".into(),
            shape: None,
        },
        Some(t) => {
            use tensor_shape_proto::dimension::Value as D;
            let shape = t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(D::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
                        Some(D::DimParam(p)) if !p.is_empty() => Dim::Symbolic(p.clone()),
                        _ => Dim::Symbolic("?".into()),
                    })
                    .collect()
            });
            let dtype = Dtype::from_onnx_code(t.elem_type);
            let type_name = match dtype {
                Some(d) => d.to_string(),
                None => onnx_type_name(t.elem_type).to_owned(),
            };
            IoInfo {
                name: v.name.clone(),
                dtype,
                type_name,
                shape,
            }
        }
    }
}

/// Name of an ONNX `TensorProto.DataType` code.
pub fn onnx_type_name(code: i32) -> &'static str {
    match code {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => "unknown",
    }
}
