//! The `continuo` CLI as a user runs it: output files, messages and exit codes.

use std::path::Path;
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
fn style_writes_an_aligned_copy_in_the_input_format() {
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
