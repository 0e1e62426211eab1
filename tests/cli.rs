//! The `continuo` CLI as a user runs it: output files, messages and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn continuo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_continuo"))
        .args(args)
        .output()
        .expect("run continuo")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write_wav(path: &Path, channels: &[Vec<f32>], bits: u16, format: hound::SampleFormat) {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: 48_000,
        bits_per_sample: bits,
        sample_format: format,
    };
    continuo::wav::write(path, channels, spec).expect("write test wav");
}

fn tone(frames: usize) -> Vec<f32> {
    (0..frames)
        .map(|n| 0.5 * (n as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin())
        .collect()
}

#[test]
fn style_at_mix_zero_writes_an_aligned_copy_in_the_input_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (bits, format, tolerance) in [
        (16, hound::SampleFormat::Int, 2.0 / 32768.0),
        (32, hound::SampleFormat::Float, 1e-5),
    ] {
        let input = dir.path().join(format!("in{bits}.wav"));
        let output = dir.path().join(format!("out{bits}.wav"));
        let signal = vec![tone(20_000), tone(20_000).iter().map(|s| -s).collect()];
        write_wav(&input, &signal, bits, format);
        let run = continuo(&[
            "style",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
            "--block",
            "333",
            "--mix",
            "0",
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        assert!(String::from_utf8_lossy(&run.stdout).contains("wrote"));
        let result = continuo::wav::read(&output).expect("output readable");
        assert_eq!(result.spec.bits_per_sample, bits);
        assert_eq!(result.channels.len(), 2);
        assert_eq!(result.frames(), 20_000, "same length as the input");
        let original = continuo::wav::read(&input).expect("input readable");
        for (out, inp) in result.channels.iter().zip(&original.channels) {
            let error = out
                .iter()
                .zip(inp)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(error <= tolerance, "{bits}-bit: error {error}");
        }
    }
}

#[test]
fn style_reports_bad_input_files_by_name_with_nonzero_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.wav");
    let out = out.to_str().unwrap();

    let missing = dir.path().join("missing.wav");
    let run = continuo(&["style", missing.to_str().unwrap(), "-o", out]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("missing.wav"), "{}", stderr(&run));

    let garbage = dir.path().join("garbage.wav");
    std::fs::write(&garbage, b"RIFF\x00\x00garbage that is not a wave file").expect("write");
    let run = continuo(&["style", garbage.to_str().unwrap(), "-o", out]);
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("garbage.wav") && stderr(&run).contains("cannot read as WAV"),
        "{}",
        stderr(&run)
    );

    let empty = dir.path().join("empty.wav");
    write_wav(&empty, &[vec![]], 16, hound::SampleFormat::Int);
    let run = continuo(&["style", empty.to_str().unwrap(), "-o", out]);
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("empty.wav") && stderr(&run).contains("0 frames"),
        "{}",
        stderr(&run)
    );

    let surround = dir.path().join("surround.wav");
    write_wav(
        &surround,
        &[tone(100), tone(100), tone(100)],
        16,
        hound::SampleFormat::Int,
    );
    let run = continuo(&["style", surround.to_str().unwrap(), "-o", out]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("3 channels"), "{}", stderr(&run));

    let fine = dir.path().join("fine.wav");
    write_wav(&fine, &[tone(100)], 16, hound::SampleFormat::Int);
    let run = continuo(&["style", fine.to_str().unwrap(), "-o", out, "--mix", "2"]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("--mix"), "{}", stderr(&run));

    let fine = fine.to_str().unwrap();
    let run = continuo(&["style", fine, "-o", out, "--model", "no-such-style"]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("no-such-style"), "{}", stderr(&run));
    let run = continuo(&["style", fine, "-o", out, "--model", "continuo-chorales"]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("continuation"), "{}", stderr(&run));
    let run = continuo(&["style", fine, "-o", out, "--pitch-shift", "30"]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("--pitch-shift"), "{}", stderr(&run));
}

#[test]
fn style_sanitises_nan_samples_and_warns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("nan.wav");
    let output = dir.path().join("out.wav");
    let mut signal = tone(5_000);
    signal[10] = f32::NAN;
    signal[20] = f32::INFINITY;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(&input, spec).expect("create");
    for sample in &signal {
        writer.write_sample(*sample).expect("sample");
    }
    writer.finalize().expect("finalize");
    let run = continuo(&[
        "style",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("2 NaN/Inf samples"),
        "{}",
        stderr(&run)
    );
    let result = continuo::wav::read(&output).expect("output");
    assert!(result.channels[0].iter().all(|s| s.is_finite()));
    assert_eq!(result.non_finite_samples, 0);
}

#[test]
fn help_and_info_work() {
    let help = continuo(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("style") && text.contains("info"), "{text}");
    let info = continuo(&["info"]);
    assert!(info.status.success());
    assert!(String::from_utf8_lossy(&info.stdout).contains("org.continuo.style"));
    let unknown = continuo(&["frobnicate"]);
    assert!(!unknown.status.success());
}

#[test]
fn analyze_reports_pitch_and_loudness_per_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("a440.wav");
    write_wav(&input, &[tone(48_000)], 24, hound::SampleFormat::Int);
    let run = continuo(&["analyze", input.to_str().unwrap(), "--json"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let analysis: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON output");
    let frames = analysis["frames"].as_array().expect("frames");
    assert!(frames.len() > 100);
    let middle = &frames[frames.len() / 2];
    let f0 = middle["f0_hz"].as_f64().expect("f0");
    assert!((f0 - 440.0).abs() < 2.0, "f0 {f0}");
    assert!(middle["voicing"].as_f64().expect("voicing") > 0.5);
    // A 0.5-amplitude 440 Hz sine: RMS −9 dBFS.
    let rms = middle["rms_db"].as_f64().expect("rms");
    assert!((rms + 9.03).abs() < 0.5, "rms {rms}");

    let table = continuo(&["analyze", input.to_str().unwrap()]);
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains("f0_hz"));

    let missing = continuo(&["analyze", "/nonexistent/x.wav"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("/nonexistent/x.wav"));
}

#[test]
fn models_lists_valid_and_broken_models_with_reasons() {
    use continuo::model::onnx_writer::GraphBuilder;
    use continuo::model::{Dim, Dtype, Manifest, ModelKind, TensorSpec, CONTRACT_VERSION};

    let dir = tempfile::tempdir().expect("tempdir");
    let shape = [Dim::from(1), Dim::from("T"), Dim::from(2)];
    let mut graph = GraphBuilder::new("tiny");
    let x = graph.input("x", Dtype::F32, &shape);
    let y = graph.tanh(&x);
    graph.output(&y, "y", Dtype::F32, &shape);
    let bytes = graph.to_bytes();
    let mut manifest = Manifest {
        contract_version: CONTRACT_VERSION,
        name: "tiny".into(),
        kind: ModelKind::Timbre,
        description: None,
        sample_rate: Some(48_000),
        hop_size: Some(256),
        frame_rate_hz: Some(187.5),
        features: None,
        vocabulary: None,
        synth: None,
        onnx_file: None,
        inputs: vec![TensorSpec::new("x", Dtype::F32, shape.clone())],
        outputs: vec![TensorSpec::new("y", Dtype::F32, shape.clone())],
        latency_samples: 0,
        parameter_count: 0,
        training: None,
        metrics: Default::default(),
        onnx_sha256: continuo::model::manifest::sha256_bytes(&bytes),
    };
    std::fs::write(dir.path().join("tiny.onnx"), &bytes).expect("onnx");
    manifest
        .save(dir.path().join("tiny.json"))
        .expect("manifest");
    std::fs::write(dir.path().join("tampered.onnx"), &bytes).expect("onnx");
    manifest.name = "tampered".into();
    manifest.onnx_sha256 = "0".repeat(64);
    manifest
        .save(dir.path().join("tampered.json"))
        .expect("manifest");

    let run = continuo(&["models", "--dir", dir.path().to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("inference backend:"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.contains("tiny")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("invalid") && l.contains("tampered.json")),
        "{text}"
    );
    assert!(
        text.contains("sha256 mismatch"),
        "the reason is given: {text}"
    );
}

#[test]
fn models_lists_the_band_each_timbre_model_fills() {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let run = continuo(&["models", "--dir", shipped.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let text = String::from_utf8_lossy(&run.stdout);
    for name in ["continuo-violin", "continuo-flute"] {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("ok       {name} (Timbre")) && l.contains(", band 0–")),
            "{text}"
        );
    }
    let chorales = text
        .lines()
        .find(|l| l.contains("continuo-chorales"))
        .unwrap_or("");
    assert!(!chorales.contains("band"), "{chorales}");
}

#[test]
fn transcribe_writes_the_notes_of_a_recording_as_midi() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two 0.4 s tones (A4, then E5) separated by silence, stereo.
    let mut signal = vec![0.0f32; 4_800];
    signal.extend(tone(19_200));
    signal.extend(vec![0.0; 9_600]);
    signal.extend(
        (0..19_200).map(|n| 0.5 * (n as f32 * 659.255 * std::f32::consts::TAU / 48_000.0).sin()),
    );
    signal.extend(vec![0.0; 4_800]);
    let input = dir.path().join("tune.wav");
    write_wav(
        &input,
        &[signal.clone(), signal],
        16,
        hound::SampleFormat::Int,
    );
    let output = dir.path().join("tune.mid");
    for method in ["tracker", "onset-median"] {
        let run = continuo(&[
            "transcribe",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
            "--tempo",
            "60",
            "--method",
            method,
        ]);
        assert!(run.status.success(), "{method}: {}", stderr(&run));
        assert!(
            stderr(&run).contains("2 notes"),
            "{method}: {}",
            stderr(&run)
        );
        let song = continuo::midi::read(&output).expect("MIDI written");
        let notes = song.melodic_notes(None).expect("notes");
        let pitches: Vec<u8> = notes.iter().map(|n| n.pitch).collect();
        assert_eq!(pitches, vec![69, 76], "{method}");
        // At 60 BPM a beat is a second: the first tone starts at 0.1 s.
        assert!(
            (notes[0].start_beat - 0.1).abs() < 0.02,
            "{method}: {notes:?}"
        );
    }
    // As live: the same notes, each note-on where the tracker decided it (a little later).
    let live = dir.path().join("live.mid");
    let run = continuo(&[
        "transcribe",
        input.to_str().unwrap(),
        "-o",
        live.to_str().unwrap(),
        "--as-live",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let notes = continuo::midi::read(&live)
        .expect("MIDI written")
        .melodic_notes(None)
        .expect("notes");
    // 120 BPM: the first tone starts at beat 0.2; the live note-on comes 0–50 ms later.
    let delay_s = (notes[0].start_beat - 0.2) / 2.0;
    assert!((0.0..0.05).contains(&delay_s), "{notes:?}");
}

#[test]
fn transcribe_reports_bad_input_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.wav");
    std::fs::write(&broken, b"RIFF....WAVEjunk").expect("write");
    let output = dir.path().join("out.mid");
    let run = continuo(&[
        "transcribe",
        broken.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("broken.wav"), "{}", stderr(&run));
    assert!(!output.exists(), "nothing written for a broken input");

    let silent = dir.path().join("silent.wav");
    write_wav(&silent, &[vec![0.0; 48_000]], 16, hound::SampleFormat::Int);
    let run = continuo(&[
        "transcribe",
        silent.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("no notes found"), "{}", stderr(&run));

    let run = continuo(&[
        "transcribe",
        silent.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--tempo",
        "0",
    ]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("--tempo"), "{}", stderr(&run));
}

#[test]
fn render_plays_a_midi_file_with_a_timbre_model() {
    use continuo::midi::Note;
    let dir = tempfile::tempdir().expect("tempdir");
    let midi = dir.path().join("two notes.mid");
    // At 120 BPM: A4 for 0.5 s, then C5 from 0.5 s to 1 s.
    let notes = [
        Note::new(69, 100, 0, 0.0, 1.0),
        Note::new(72, 80, 0, 1.0, 2.0),
    ];
    continuo::midi::write(&midi, &notes, 120.0, 480).expect("write midi");
    let out = dir.path().join("out.wav");
    let run = continuo(&[
        "render",
        midi.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--rate",
        "44100",
        "--release",
        "100",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("2 notes") && stdout.contains("continuo-violin"),
        "{stdout}"
    );
    let mut reader = hound::WavReader::open(&out).expect("wav");
    assert_eq!(reader.spec().sample_rate, 44_100);
    let samples: Vec<f32> = reader
        .samples::<f32>()
        .map(|s| s.expect("sample"))
        .collect();
    // 1 s of notes + the 100 ms release + 250 ms of air.
    assert_eq!(samples.len(), (1.35 * 44_100.0) as usize);
    let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    assert!(rms(&samples[4_410..22_050]) > 0.01, "the first note sounds");
    assert!(
        rms(&samples[26_460..44_100]) > 0.01,
        "the second note sounds"
    );
    assert!(
        rms(&samples[samples.len() - 2_000..]) < 1e-3,
        "the release has died away"
    );
}

#[test]
fn render_reports_bad_input_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.wav");
    let empty = dir.path().join("empty.mid");
    continuo::midi::write(&empty, &[], 120.0, 480).expect("write midi");
    let broken = dir.path().join("broken.mid");
    std::fs::write(&broken, b"MThd\0\0").expect("write");
    for input in [&empty, &broken] {
        let run = continuo(&[
            "render",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(!run.status.success());
        let name = input.file_name().unwrap().to_str().unwrap();
        assert!(stderr(&run).contains(name), "{}", stderr(&run));
        assert!(!out.exists(), "nothing written for {name}");
    }
    let notes = [continuo::midi::Note::new(60, 100, 0, 0.0, 1.0)];
    let midi = dir.path().join("ok.mid");
    continuo::midi::write(&midi, &notes, 120.0, 480).expect("write midi");
    let run = continuo(&[
        "render",
        midi.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "no-such-model",
    ]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("no-such-model"), "{}", stderr(&run));
}
