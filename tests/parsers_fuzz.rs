//! Parsers under fire: real MIDI, WAV, manifest and ONNX files, mutated (truncated, bytes
//! flipped, huge counts written over header fields, JSON values of the wrong type or size), go
//! through the same readers and loaders the CLI and the plugins use.
//!
//! Properties, for every mutant:
//! - no panic (proptest reports a panic as a failure);
//! - an error names the file it is about;
//! - no single allocation above [`MAX_SINGLE_ALLOCATION`], measured by a counting global
//!   allocator: the fixtures are all under 2 MB, so anything bigger was sized by a declared
//!   count rather than by data the file really holds.
//!
//! The tests take turns ([`SERIAL`]) so each one measures only its own allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use continuo::model::onnx_writer::proto::{tensor_shape_proto, type_proto, ModelProto};
use continuo::model::{
    chain_message, load_model, sha256_file, BackendChoice, ModelDirs, ModelKind,
};
use continuo::style::{load_voice, LatencyMode, SharedStyleSettings, StyleChoice, StyleStatus};
use proptest::prelude::*;
use proptest::sample::Index;
use prost::Message;

/// The largest single allocation any parser or loader may make on these fixtures (64 MiB).
const MAX_SINGLE_ALLOCATION: usize = 64 << 20;

/// The global allocator, recording the largest single request.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static SERIAL: Mutex<()> = Mutex::new(());

/// Takes this test's turn and starts measuring from zero.
fn turn() -> MutexGuard<'static, ()> {
    let guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    LARGEST.store(0, Ordering::Relaxed);
    guard
}

/// Prints the largest allocation the test saw (shown with `--nocapture`).
fn report(test: &str) {
    eprintln!(
        "{test}: largest single allocation {} bytes (cap {MAX_SINGLE_ALLOCATION})",
        LARGEST.load(Ordering::Relaxed)
    );
}

fn largest_allocation_within_cap() -> Result<(), TestCaseError> {
    let largest = LARGEST.load(Ordering::Relaxed);
    prop_assert!(
        largest <= MAX_SINGLE_ALLOCATION,
        "an allocation of {largest} bytes (cap {MAX_SINGLE_ALLOCATION})"
    );
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

// ---------------------------------------------------------------------------------------------
// Byte mutations
// ---------------------------------------------------------------------------------------------

/// Counts that overflow or ask for gigabytes when a parser trusts them.
const HUGE: [u32; 6] = [
    u32::MAX,
    0x7fff_ffff,
    0x8000_0000,
    0x0fff_ffff,
    0x00ff_ffff,
    0xffff,
];

/// Where a mutation hits: anywhere, or at a known header field of the format.
#[derive(Debug, Clone)]
enum Position {
    Anywhere(Index),
    At(usize),
}

impl Position {
    fn resolve(&self, len: usize) -> usize {
        match self {
            Position::Anywhere(index) => index.index(len.max(1)),
            Position::At(offset) => (*offset).min(len),
        }
    }
}

#[derive(Debug, Clone)]
enum ByteMutation {
    Truncate(Index),
    Flip(Position, u8),
    /// A 4-byte count, little- or big-endian, written over the bytes at the position.
    HugeCount(Position, u32, bool),
    Insert(Position, Vec<u8>),
}

fn position(header_fields: &'static [usize]) -> impl Strategy<Value = Position> {
    prop_oneof![
        any::<Index>().prop_map(Position::Anywhere),
        prop::sample::select(header_fields).prop_map(Position::At),
    ]
}

fn byte_mutation(header_fields: &'static [usize]) -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        any::<Index>().prop_map(ByteMutation::Truncate),
        (position(header_fields), 1..=255u8).prop_map(|(p, x)| ByteMutation::Flip(p, x)),
        (
            position(header_fields),
            prop::sample::select(&HUGE[..]),
            any::<bool>()
        )
            .prop_map(|(p, n, le)| ByteMutation::HugeCount(p, n, le)),
        (
            position(header_fields),
            prop::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(p, bytes)| ByteMutation::Insert(p, bytes)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[ByteMutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = bytes.len();
        match mutation {
            ByteMutation::Truncate(index) => bytes.truncate(index.index(len.max(1))),
            ByteMutation::Flip(at, x) => {
                if len > 0 {
                    let i = at.resolve(len).min(len - 1);
                    bytes[i] ^= x;
                }
            }
            ByteMutation::HugeCount(at, n, little_endian) => {
                let i = at.resolve(len);
                let count = if *little_endian {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                };
                for (k, b) in count.iter().enumerate() {
                    match bytes.get_mut(i + k) {
                        Some(slot) => *slot = *b,
                        None => bytes.push(*b),
                    }
                }
            }
            ByteMutation::Insert(at, inserted) => {
                let i = at.resolve(len);
                bytes.splice(i..i, inserted.iter().copied());
            }
        }
    }
    bytes
}

fn assert_names(error: &str, file: &Path) -> Result<(), TestCaseError> {
    let name = file.file_name().unwrap().to_string_lossy();
    prop_assert!(error.contains(&*name), "does not name {name}: {error}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// MIDI
// ---------------------------------------------------------------------------------------------

/// MThd length, format, track count, division; the first MTrk's length.
const MIDI_FIELDS: &[usize] = &[4, 8, 10, 12, 18];

fn midi_fixtures() -> Vec<Vec<u8>> {
    let dir = repo_path("tests/fixtures/chorales-held-out");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mid"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no MIDI fixtures in {}", dir.display());
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn mutated_midi_files() {
    let _turn = turn();
    let fixtures = midi_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutant.mid");
    proptest!(config(512), |(
        file in any::<Index>(),
        mutations in prop::collection::vec(byte_mutation(MIDI_FIELDS), 1..4),
    )| {
        let bytes = mutate(file.get(&fixtures).clone(), &mutations);
        std::fs::write(&path, &bytes).unwrap();
        match continuo::midi::read(&path) {
            Ok(song) => {
                if let Err(error) = song.melodic_notes(None) {
                    assert_names(&error.to_string(), &path)?;
                }
                prop_assert!(song.end_beat().is_finite());
            }
            Err(error) => assert_names(&chain_message(&error), &path)?,
        }
        largest_allocation_within_cap()?;
    });
    report("mutated_midi_files");
}

// ---------------------------------------------------------------------------------------------
// WAV
// ---------------------------------------------------------------------------------------------

/// RIFF size, fmt length, format tag, channels, rate, byte rate, block align, bits, data length.
const WAV_FIELDS: &[usize] = &[4, 16, 20, 22, 24, 28, 32, 34, 40];

#[test]
fn mutated_wav_files() {
    let _turn = turn();
    let original = std::fs::read(repo_path("tests/fixtures/melody_16k.wav")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutant.wav");
    proptest!(config(256), |(mutations in prop::collection::vec(byte_mutation(WAV_FIELDS), 1..4))| {
        let bytes = mutate(original.clone(), &mutations);
        std::fs::write(&path, &bytes).unwrap();
        match continuo::wav::read(&path) {
            Ok(audio) => {
                prop_assert!(!audio.channels.is_empty());
                prop_assert!(audio.channels.iter().all(|c| c.len() == audio.frames()));
                prop_assert!(audio.channels.iter().flatten().all(|x| x.is_finite()));
            }
            Err(error) => assert_names(&error.to_string(), &path)?,
        }
        largest_allocation_within_cap()?;
    });
    report("mutated_wav_files");
}

// ---------------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------------

/// One step into a JSON value.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Item(usize),
}

/// Every path to a value inside `value` (the root is the empty path), except inside the
/// free-form `training` notes, which would otherwise take most of the picks.
fn json_paths(value: &serde_json::Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                if prefix.is_empty() && key == "training" {
                    continue;
                }
                prefix.push(Step::Key(key.clone()));
                json_paths(child, prefix, out);
                prefix.pop();
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(Step::Item(i));
                json_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn json_at<'a>(value: &'a mut serde_json::Value, path: &[Step]) -> &'a mut serde_json::Value {
    path.iter().fold(value, |v, step| match step {
        Step::Key(key) => &mut v[key.as_str()],
        Step::Item(i) => &mut v[*i],
    })
}

/// Replacement values: huge or negative counts, wrong types.
fn hostile_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop::sample::select(vec![
        json!(4_294_967_295u64),
        json!(u64::MAX),
        json!(1u64 << 40),
        json!(1_048_577),
        json!(-1),
        json!(0),
        json!(1e300),
        json!(0.5),
        json!("T"),
        json!(""),
        json!(null),
        json!(true),
        json!([]),
        json!([1, "T", 4_294_967_295u64]),
        json!([1_048_576, 1_048_576, 1_048_576]),
        json!({}),
        json!({"harmonics": 4_294_967_295u64, "noise_bands": 4_294_967_295u64, "noise_band_spacing": "mel"}),
    ])
}

#[derive(Debug, Clone)]
enum JsonMutation {
    /// A huge, negative or zero count in place of one of the manifest's integers.
    Count(Index, serde_json::Value),
    Replace(Index, serde_json::Value),
    Remove(Index),
    /// Inserts a field the contract does not know.
    AddField(Index, serde_json::Value),
}

fn json_mutation() -> impl Strategy<Value = JsonMutation> {
    use serde_json::json;
    // u32::MAX most often: it is what an unchecked u32 count field can hold at worst.
    let count = prop::sample::select(vec![
        json!(4_294_967_295u64),
        json!(4_294_967_295u64),
        json!(4_294_967_295u64),
        json!(1u64 << 31),
        json!(1u64 << 40),
        json!(u64::MAX),
        json!(1_048_577),
        json!(0),
        json!(-1),
    ]);
    prop_oneof![
        6 => (any::<Index>(), count).prop_map(|(i, v)| JsonMutation::Count(i, v)),
        3 => (any::<Index>(), hostile_json()).prop_map(|(i, v)| JsonMutation::Replace(i, v)),
        1 => any::<Index>().prop_map(JsonMutation::Remove),
        1 => (any::<Index>(), hostile_json()).prop_map(|(i, v)| JsonMutation::AddField(i, v)),
    ]
}

fn pick<'a>(paths: &'a [Vec<Step>], index: &Index) -> &'a [Step] {
    &paths[index.index(paths.len())]
}

fn mutate_json(value: &mut serde_json::Value, mutation: &JsonMutation) {
    let mut paths: Vec<Vec<Step>> = Vec::new();
    json_paths(value, &mut Vec::new(), &mut paths);
    match mutation {
        JsonMutation::Count(index, count) => {
            let numbers: Vec<Vec<Step>> = paths
                .iter()
                .filter(|path| json_at(value, path).is_u64())
                .cloned()
                .collect();
            if !numbers.is_empty() {
                *json_at(value, pick(&numbers, index)) = count.clone();
            }
        }
        JsonMutation::Replace(index, replacement) => {
            *json_at(value, pick(&paths, index)) = replacement.clone();
        }
        JsonMutation::Remove(index) => {
            let path = pick(&paths, index);
            if let Some((last, parent)) = path.split_last() {
                match (json_at(value, parent), last) {
                    (serde_json::Value::Object(map), Step::Key(key)) => {
                        map.remove(key);
                    }
                    (serde_json::Value::Array(items), Step::Item(i)) => {
                        items.remove(*i);
                    }
                    _ => {}
                }
            }
        }
        JsonMutation::AddField(index, extra) => {
            if let serde_json::Value::Object(map) = json_at(value, pick(&paths, index)) {
                map.insert("unexpected".into(), extra.clone());
            }
        }
    }
}

/// Copies `models/<name>.json` and its ONNX file into `dir`; returns the manifest JSON.
fn copy_model(name: &str, dir: &Path) -> serde_json::Value {
    std::fs::copy(
        repo_path(&format!("models/{name}.onnx")),
        dir.join(format!("{name}.onnx")),
    )
    .unwrap();
    let text = std::fs::read_to_string(repo_path(&format!("models/{name}.json"))).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value.as_object_mut().unwrap().remove("onnx_file");
    value
}

/// Loads a manifest the way its users do: a timbre model as Continuo Style's style A and as
/// its style B (next to the shipped violin), a continuation model as Continuo Phrase does.
/// Returns every error message.
fn load_as_user(path: &Path, kind: ModelKind) -> Vec<String> {
    let dirs = ModelDirs::new([]);
    let mutant = path.to_str().unwrap().to_owned();
    match kind {
        ModelKind::Timbre => {
            let shipped = repo_path("models/continuo-violin.json");
            let shipped = shipped.to_str().unwrap();
            let mut errors = Vec::new();
            for (a, b) in [(mutant.as_str(), None), (shipped, Some(mutant.clone()))] {
                let status = Arc::new(StyleStatus::default());
                let choice = StyleChoice { a: a.into(), b };
                match load_voice(
                    &choice,
                    &dirs,
                    BackendChoice::Tract,
                    LatencyMode::Quality,
                    Arc::new(SharedStyleSettings::default()),
                    status.clone(),
                ) {
                    Ok(_) => errors.extend(status.style_b_refused()),
                    Err(e) => errors.push(chain_message(&e)),
                }
            }
            errors
        }
        ModelKind::Continuation => {
            continuo::phrase::generate::load_token_model(&mutant, &dirs, BackendChoice::Tract)
                .err()
                .map(|e| chain_message(&e))
                .into_iter()
                .collect()
        }
    }
}

#[test]
fn mutated_manifests() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    let models = [
        ("continuo-violin", ModelKind::Timbre),
        ("continuo-chorales", ModelKind::Continuation),
    ];
    let originals: Vec<serde_json::Value> = models
        .iter()
        .map(|(name, _)| copy_model(name, dir.path()))
        .collect();
    proptest!(config(384), |(
        model in 0..models.len(),
        mutations in prop::collection::vec(json_mutation(), 1..3),
        // Now and then a broken text too (most cases should reach the loaders).
        text_mutation in prop::option::weighted(0.2, byte_mutation(&[0])),
    )| {
        let (name, kind) = models[model];
        let mut value = originals[model].clone();
        for mutation in &mutations {
            mutate_json(&mut value, mutation);
        }
        let text = mutate(
            serde_json::to_vec_pretty(&value).unwrap(),
            text_mutation.as_slice(),
        );
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, &text).unwrap();
        for error in load_as_user(&path, kind) {
            let dir_text = dir.path().display().to_string();
            prop_assert!(error.contains(&dir_text), "does not name a file in {dir_text}: {error}");
        }
        largest_allocation_within_cap()?;
    });
    report("mutated_manifests");
}

// ---------------------------------------------------------------------------------------------
// ONNX
// ---------------------------------------------------------------------------------------------

/// Structural edits of the decoded protobuf: the counts and types a backend sizes things by.
#[derive(Debug, Clone)]
enum OnnxMutation {
    Bytes(ByteMutation),
    ConstantDims(Index, Vec<i64>),
    ConstantType(Index, i32),
    ConstantData(Index, Index),
    OutputDim(Index, i64),
    Opset(i64),
}

fn onnx_mutation() -> impl Strategy<Value = OnnxMutation> {
    let dims = prop::collection::vec(
        prop::sample::select(vec![-1i64, 0, 1, 7, 1 << 20, 1 << 31, 1 << 40, i64::MAX]),
        0..4,
    );
    prop_oneof![
        2 => byte_mutation(&[0, 1, 2]).prop_map(OnnxMutation::Bytes),
        2 => (any::<Index>(), dims).prop_map(|(i, d)| OnnxMutation::ConstantDims(i, d)),
        1 => (any::<Index>(), -1..30i32).prop_map(|(i, t)| OnnxMutation::ConstantType(i, t)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(i, cut)| OnnxMutation::ConstantData(i, cut)),
        1 => (any::<Index>(), prop::sample::select(vec![-5i64, 0, 2, 1 << 21, 1 << 40, i64::MAX]))
            .prop_map(|(i, d)| OnnxMutation::OutputDim(i, d)),
        1 => prop::sample::select(vec![-1i64, 0, 1, 24, i64::MAX]).prop_map(OnnxMutation::Opset),
    ]
}

fn mutate_onnx(bytes: &[u8], mutations: &[OnnxMutation]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    for mutation in mutations {
        if let OnnxMutation::Bytes(m) = mutation {
            bytes = mutate(bytes, std::slice::from_ref(m));
            continue;
        }
        let Ok(mut model) = ModelProto::decode(bytes.as_slice()) else {
            continue;
        };
        let Some(graph) = model.graph.as_mut() else {
            continue;
        };
        match mutation {
            OnnxMutation::Bytes(_) => unreachable!(),
            OnnxMutation::ConstantDims(i, dims) if !graph.initializer.is_empty() => {
                i.get_mut(&mut graph.initializer).dims = dims.clone();
            }
            OnnxMutation::ConstantType(i, data_type) if !graph.initializer.is_empty() => {
                i.get_mut(&mut graph.initializer).data_type = *data_type;
            }
            OnnxMutation::ConstantData(i, cut) if !graph.initializer.is_empty() => {
                let raw = &mut i.get_mut(&mut graph.initializer).raw_data;
                raw.truncate(cut.index(raw.len().max(1)));
            }
            OnnxMutation::OutputDim(i, size) if !graph.output.is_empty() => {
                let output = i.get_mut(&mut graph.output);
                if let Some(type_proto::Value::TensorType(t)) =
                    output.r#type.as_mut().and_then(|t| t.value.as_mut())
                {
                    if let Some(dim) = t.shape.as_mut().and_then(|s| s.dim.last_mut()) {
                        dim.value = Some(tensor_shape_proto::dimension::Value::DimValue(*size));
                    }
                }
            }
            OnnxMutation::Opset(version) => {
                if let Some(opset) = model.opset_import.first_mut() {
                    opset.version = *version;
                }
            }
            _ => {}
        }
        bytes = model.encode_to_vec();
    }
    bytes
}

#[test]
fn mutated_onnx_files() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    let name = "continuo-chorales";
    let manifest = copy_model(name, dir.path());
    let onnx = dir.path().join(format!("{name}.onnx"));
    let manifest_path = dir.path().join(format!("{name}.json"));
    let original = std::fs::read(&onnx).unwrap();
    proptest!(config(64), |(mutations in prop::collection::vec(onnx_mutation(), 1..3))| {
        let bytes = mutate_onnx(&original, &mutations);
        std::fs::write(&onnx, &bytes).unwrap();
        // The manifest vouches for the mutant, so loading gets past the hash check.
        let mut vouching = manifest.clone();
        vouching["onnx_sha256"] = sha256_file(&onnx).unwrap().into();
        std::fs::write(&manifest_path, vouching.to_string()).unwrap();
        if let Err(error) = load_model(&manifest_path, ModelKind::Continuation, BackendChoice::Tract) {
            assert_names(&chain_message(&error), &onnx)?;
        }
        largest_allocation_within_cap()?;
    });
    report("mutated_onnx_files");
}
