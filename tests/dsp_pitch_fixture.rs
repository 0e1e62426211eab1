//! Real-recording check of the pitch tracker: a FluidSynth flute melody (tests/fixtures, made by
//! `make_fixture.py`) against librosa.pyin's f0, computed once and committed. No Python needed.

use continuo::dsp::metrics::{raw_chroma_accuracy, raw_pitch_accuracy};
use continuo::dsp::pitch::{PitchConfig, PitchTracker};

const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

struct Reference {
    f0_hz: Vec<f32>,
    voiced: Vec<bool>,
    midi_truth_hz: Vec<f32>,
}

fn load_reference() -> Reference {
    let text = std::fs::read_to_string(format!("{FIXTURE_DIR}/melody_16k_pyin.csv")).unwrap();
    let mut reference = Reference {
        f0_hz: Vec::new(),
        voiced: Vec::new(),
        midi_truth_hz: Vec::new(),
    };
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 4, "bad line {line}");
        reference.f0_hz.push(fields[1].parse().unwrap());
        reference.voiced.push(fields[2] == "1");
        reference.midi_truth_hz.push(fields[3].parse().unwrap());
    }
    reference
}

fn load_audio() -> (Vec<f32>, u32) {
    let mut reader = hound::WavReader::open(format!("{FIXTURE_DIR}/melody_16k.wav")).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (1, 16));
    let samples = reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    (samples, spec.sample_rate)
}

#[test]
fn agrees_with_pyin_on_a_rendered_melody() {
    let (audio, sample_rate) = load_audio();
    let reference = load_reference();
    let config = PitchConfig::new(sample_rate as f32, 128);
    let frames = PitchTracker::track(&audio, config).unwrap();
    // Same frame convention as librosa's center=True: one frame per hop, len/hop + 1.
    assert_eq!(frames.len(), reference.f0_hz.len());

    // RPA on frames both trackers call voiced.
    let both: Vec<bool> = frames
        .iter()
        .zip(&reference.voiced)
        .map(|(f, &v)| v && f.is_voiced())
        .collect();
    let estimate: Vec<f32> = frames.iter().map(|f| f.f0_hz).collect();
    let rpa = raw_pitch_accuracy(&reference.f0_hz, &both, &estimate);
    let rca = raw_chroma_accuracy(&reference.f0_hz, &both, &estimate);
    let both_count = both.iter().filter(|&&b| b).count();
    let pyin_voiced = reference.voiced.iter().filter(|&&v| v).count();
    // Voicing agreement: of the frames pyin calls voiced, how many we call voiced.
    let recall = both_count as f32 / pyin_voiced as f32;
    // Against the MIDI score (frames inside a note, both trackers agreeing it is voiced).
    let in_note: Vec<bool> = both
        .iter()
        .zip(&reference.midi_truth_hz)
        .map(|(&b, &t)| b && t > 0.0)
        .collect();
    let rpa_midi = raw_pitch_accuracy(&reference.midi_truth_hz, &in_note, &estimate);
    eprintln!(
        "fixture: RPA vs pyin {rpa:.4}, RCA {rca:.4}, voiced recall {recall:.3} \
         ({both_count}/{pyin_voiced}), RPA vs MIDI {rpa_midi:.4}"
    );
    assert!(
        both_count > 300,
        "too few jointly voiced frames: {both_count}"
    );
    assert!(rpa >= 0.9, "RPA vs pyin {rpa}");
    assert!(recall >= 0.8, "voiced recall {recall}");
    assert!(rpa_midi >= 0.9, "RPA vs MIDI {rpa_midi}");
}
