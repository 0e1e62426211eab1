//! Soak: long renders through the three plugins in a CLAP host (the built debug bundle with
//! `assert_process_allocs`), offline (CLAP render extension), 48 kHz, 64-sample blocks, with
//! random parameter automation. Style switches its model every few seconds and gets a melody
//! with silences, noise bursts and the odd NaN; Phrase gets a melody in host tempo with tempo
//! changes, transport loops and Generate presses, as MIDI and as audio (it starts listening to
//! both, with Audio to MIDI on); Voice gets random chords over the whole keyboard, bends, the
//! sustain pedal, all-notes-off and model switches. Checked: resident memory flat between the
//! first tenth and the end, no non-finite output, every generated note-on matched by a note-off
//! once the transport stops.
//!
//! The test command runs two minutes of audio per plugin; the long soak is
//! `CONTINUO_SOAK_SECONDS=3600 cargo test --test soak -- --nocapture` (figures are printed).

mod clap_support;

use clack_host::events::event_types::{MidiEvent, NoteOffEvent, NoteOnEvent, ParamValueEvent};
use clack_host::events::Match;
use clack_host::prelude::*;
use clap_support::*;

const SAMPLE_RATE: f64 = 48_000.0;
const BLOCK: usize = 64;
/// How much resident memory may grow between the first tenth of the run and its end.
const RSS_GROWTH_LIMIT_MB: f64 = 16.0;

fn soak_seconds() -> f64 {
    std::env::var("CONTINUO_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120.0)
}

/// A small deterministic generator (xorshift64*), so a failing soak can be rerun exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, min: f64, max: f64) -> f64 {
        min + (max - min) * self.unit()
    }
}

/// The parameters of `all` not named in `fixed` (those the soak automates at random).
fn all_but(all: &[HostParam], fixed: &[&str]) -> Vec<HostParam> {
    all.iter()
        .filter(|p| !fixed.contains(&p.name.as_str()))
        .cloned()
        .collect()
}

/// A random value in the parameter's range (whole steps for stepped ones).
fn random_value(param: &HostParam, rng: &mut Rng) -> f64 {
    let value = rng.range(param.min, param.max);
    if param.stepped {
        value.round()
    } else {
        value
    }
}

struct Figures {
    rss_start: f64,
    rss_end: f64,
}

impl Figures {
    fn check(&self, plugin: &str, seconds: f64) {
        let growth = self.rss_end - self.rss_start;
        println!(
            "{plugin} soak, {seconds:.0} s of audio: resident memory {:.1} → {:.1} MiB ({growth:+.1} MiB)",
            self.rss_start, self.rss_end
        );
        assert!(
            growth < RSS_GROWTH_LIMIT_MB,
            "{plugin}: resident memory grew by {growth:.1} MiB"
        );
    }
}

#[test]
fn style_soak() {
    let seconds = soak_seconds();
    let total_blocks = (seconds * SAMPLE_RATE) as usize / BLOCK;
    let entry = load_bundle(&built_bundle());
    let mut plugin = instance(&entry, STYLE_ID);
    let all = settable_params(&mut plugin);
    // The latency mode only changes on a restart the host would have to do: not automated.
    let automated = all_but(&all, &["Style", "Style B", "Latency Mode"]);
    let style = by_name(&all, "Style").clone();
    let style_b = by_name(&all, "Style B").clone();
    let processor = activate_offline(&mut plugin, SAMPLE_RATE, BLOCK as u32);
    let mut rng = Rng(0x5eed_0001);
    let figures = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut processor = processor.start_processing().expect("start processing");
                let mut ports = StereoPorts::new();
                let mut rss_start = 0.0;
                let mut phase = 0.0f64;
                let mut f0 = 220.0f64;
                for block in 0..total_blocks {
                    let sample = block * BLOCK;
                    let second = sample as f64 / SAMPLE_RATE;
                    if block == total_blocks / 10 {
                        rss_start = rss_mb();
                    }
                    let mut events = Vec::new();
                    // A new note every quarter second; a style switch every three seconds.
                    if sample.is_multiple_of(12_000) {
                        f0 = 110.0 * 2f64.powf(rng.range(0.0, 3.0));
                        let param = &automated[rng.next() as usize % automated.len()];
                        events.push(ParamValueEvent::new(
                            0,
                            param.id,
                            Pckn::match_all(),
                            random_value(param, &mut rng),
                        ));
                    }
                    if sample.is_multiple_of(144_000) {
                        for p in [&style, &style_b] {
                            events.push(ParamValueEvent::new(
                                0,
                                p.id,
                                Pckn::match_all(),
                                random_value(p, &mut rng),
                            ));
                        }
                    }
                    // Bars of melody, then a second of silence or noise, now and then a NaN.
                    let section = (second / 4.0) as u64 % 4;
                    let input: Vec<f32> = (0..BLOCK)
                        .map(|_| match section {
                            0..=1 => {
                                phase += f0 / SAMPLE_RATE;
                                (0.25 * (std::f64::consts::TAU * phase).sin()
                                    + 0.1 * (2.0 * std::f64::consts::TAU * phase).sin())
                                    as f32
                            }
                            2 => 0.05 * (rng.unit() as f32 - 0.5),
                            _ => 0.0,
                        })
                        .map(|x| {
                            if sample.is_multiple_of(480_000) {
                                f32::NAN
                            } else {
                                x
                            }
                        })
                        .collect();
                    let (left, right) = ports.process(
                        &mut processor,
                        &input,
                        &input,
                        &InputEvents::from_buffer(&events),
                    );
                    assert!(
                        left.iter().chain(&right).all(|y| y.is_finite()),
                        "non-finite output at {second:.3} s"
                    );
                }
                let figures = Figures {
                    rss_start,
                    rss_end: rss_mb(),
                };
                (processor.stop_processing(), figures)
            })
            .join()
            .expect("audio thread")
    });
    let (processor, figures) = figures;
    plugin.deactivate(processor);
    figures.check("Style", seconds);
}

#[test]
fn phrase_soak() {
    let seconds = soak_seconds();
    let total_blocks = (seconds * SAMPLE_RATE) as usize / BLOCK;
    let entry = load_bundle(&built_bundle());
    let mut plugin = instance(&entry, PHRASE_ID);
    let all = settable_params(&mut plugin);
    // Thru and Bypass stay as they are (see below); Generate is pressed on a schedule.
    let automated = all_but(&all, &["Thru", "Bypass", "Generate"]);
    let generate = by_name(&all, "Generate").clone();
    let listen = by_name(&all, "Listen").clone();
    let heard_out = by_name(&all, "Audio to MIDI").clone();
    // Thru off: every note that comes out was generated.
    let thru = by_name(&all, "Thru").clone();
    let processor = activate_offline(&mut plugin, SAMPLE_RATE, BLOCK as u32);
    let mut rng = Rng(0x5eed_0002);
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut processor = processor.start_processing().expect("start processing");
                let mut ports = StereoPorts::new();
                let mut audio_in = vec![0.0f32; BLOCK];
                let mut phase = 0.0f64;
                // Sounding generated or thru notes per (channel, key): a note-on twice before
                // its note-off is a stuck note too.
                let mut sounding = std::collections::HashMap::<(u16, u16), i32>::new();
                let (mut note_ons, mut double_ons) = (0u64, 0u64);
                let mut rss_start = 0.0;
                let mut beat = 0.0f64;
                let mut tempo = 120.0f64;
                let mut held: Option<(u16, f64)> = None;
                let stop_block = total_blocks.saturating_sub((SAMPLE_RATE as usize) / BLOCK);
                for block in 0..total_blocks {
                    if block == total_blocks / 10 {
                        rss_start = rss_mb();
                    }
                    let playing = block < stop_block;
                    let beats_per_sample = tempo / 60.0 / SAMPLE_RATE;
                    let block_beats = BLOCK as f64 * beats_per_sample;
                    let mut input = EventBuffer::new();
                    // Eighth notes of a random melody, each held for 80 % of its length.
                    let next_eighth = (beat * 2.0).ceil() / 2.0;
                    if let Some((key, off_beat)) = held {
                        // With the transport stopped the player lets go at once.
                        if off_beat < beat + block_beats || !playing {
                            let time = (((off_beat - beat) / beats_per_sample).max(0.0) as u32)
                                .min(BLOCK as u32 - 1);
                            input.push(&NoteOffEvent::new(
                                time,
                                Pckn::new(0u16, 0u16, key, Match::All),
                                0.0,
                            ));
                            held = None;
                        }
                    }
                    if playing && held.is_none() && next_eighth < beat + block_beats {
                        let key = 60 + (rng.next() % 12) as u16;
                        let time = (((next_eighth - beat) / beats_per_sample).max(0.0) as u32)
                            .min(BLOCK as u32 - 1);
                        input.push(&NoteOnEvent::new(
                            time,
                            Pckn::new(0u16, 0u16, key, Match::All),
                            0.8,
                        ));
                        held = Some((key, next_eighth + 0.4));
                    }
                    // Every 2 s: one random parameter; every 8 s: Generate; every 30 s: a new
                    // tempo; every 20 s: the transport loops back 8 beats.
                    let sample = block * BLOCK;
                    if sample == 0 {
                        input.push(&ParamValueEvent::new(0, thru.id, Pckn::match_all(), 0.0));
                        input.push(&ParamValueEvent::new(0, listen.id, Pckn::match_all(), 2.0));
                        input.push(&ParamValueEvent::new(
                            0,
                            heard_out.id,
                            Pckn::match_all(),
                            1.0,
                        ));
                    }
                    if sample.is_multiple_of(96_000) {
                        let param = &automated[rng.next() as usize % automated.len()];
                        input.push(&ParamValueEvent::new(
                            0,
                            param.id,
                            Pckn::match_all(),
                            random_value(param, &mut rng),
                        ));
                    }
                    if sample.is_multiple_of(384_000) {
                        input.push(&ParamValueEvent::new(
                            0,
                            generate.id,
                            Pckn::match_all(),
                            1.0,
                        ));
                    } else if sample % 384_000 == 48_000 {
                        input.push(&ParamValueEvent::new(
                            0,
                            generate.id,
                            Pckn::match_all(),
                            0.0,
                        ));
                    }
                    if sample.is_multiple_of(1_440_000) && sample > 0 {
                        tempo = rng.range(60.0, 180.0);
                    }
                    if sample.is_multiple_of(960_000) && beat > 8.0 {
                        beat -= 8.0;
                    }
                    // The melody as audio too: a sine at the held key, with a NaN now and then
                    // (it must not come out, nor stop the listening).
                    let frequency =
                        held.map(|(key, _)| 440.0 * 2f64.powf((f64::from(key) - 69.0) / 12.0));
                    for sample in &mut audio_in {
                        *sample = match frequency {
                            Some(f) => {
                                phase = (phase + f / SAMPLE_RATE).fract();
                                (0.2 * (std::f64::consts::TAU * phase).sin()) as f32
                            }
                            None => 0.0,
                        };
                    }
                    if block % 1500 == 700 {
                        audio_in[BLOCK / 2] = f32::NAN;
                    }
                    let mut output = EventBuffer::new();
                    let transport = transport(tempo, beat, playing);
                    let (left, right) = ports.process_with(
                        &mut processor,
                        &audio_in,
                        &audio_in,
                        &input.as_input(),
                        &mut output,
                        Some(&transport),
                    );
                    assert!(
                        left.iter().chain(&right).all(|y| y.is_finite()),
                        "non-finite output"
                    );
                    for event in output.iter() {
                        if let Some(on) = event.as_event::<NoteOnEvent>() {
                            let key = (
                                on.pckn().channel.into_specific().unwrap_or(99),
                                on.pckn().key.into_specific().unwrap_or(999),
                            );
                            let count = sounding.entry(key).or_default();
                            if *count > 0 {
                                double_ons += 1;
                            }
                            *count += 1;
                            note_ons += 1;
                        } else if let Some(off) = event.as_event::<NoteOffEvent>() {
                            let key = (
                                off.pckn().channel.into_specific().unwrap_or(99),
                                off.pckn().key.into_specific().unwrap_or(999),
                            );
                            if let Some(count) = sounding.get_mut(&key) {
                                *count = (*count - 1).max(0);
                            }
                        }
                    }
                    if playing {
                        beat += block_beats;
                    }
                }
                let hanging: Vec<_> = sounding
                    .iter()
                    .filter(|(_, &n)| n > 0)
                    .map(|(k, _)| *k)
                    .collect();
                let rss_end = rss_mb();
                (
                    processor.stop_processing(),
                    note_ons,
                    double_ons,
                    hanging,
                    Figures { rss_start, rss_end },
                )
            })
            .join()
            .expect("audio thread")
    });
    let (processor, note_ons, double_ons, hanging, figures) = result;
    plugin.deactivate(processor);
    println!("Phrase soak: {note_ons} note-ons out, {double_ons} struck again while sounding, hanging after stop: {hanging:?}");
    assert!(note_ons > 0, "the soak played no note at all");
    assert!(
        hanging.is_empty(),
        "notes left hanging after the transport stopped: {hanging:?}"
    );
    figures.check("Phrase", seconds);
}

#[test]
fn voice_soak() {
    let seconds = soak_seconds();
    let total_blocks = (seconds * SAMPLE_RATE) as usize / BLOCK;
    let entry = load_bundle(&built_bundle());
    let mut plugin = instance(&entry, VOICE_ID);
    let all = settable_params(&mut plugin);
    let automated = all_but(&all, &["Style", "Style B", "Bypass"]);
    let style = by_name(&all, "Style").clone();
    let style_b = by_name(&all, "Style B").clone();
    let processor = activate_offline(&mut plugin, SAMPLE_RATE, BLOCK as u32);
    let mut rng = Rng(0x5eed_0003);
    let figures = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut processor = processor.start_processing().expect("start processing");
                let mut ports = InstrumentPorts::new(BLOCK);
                let mut rss_start = 0.0;
                let mut held: Vec<u16> = Vec::new();
                for block in 0..total_blocks {
                    let sample = block * BLOCK;
                    if block == total_blocks / 10 {
                        rss_start = rss_mb();
                    }
                    let mut events = EventBuffer::new();
                    let key = |k: u16| Pckn::new(0u16, 0u16, k, Match::All);
                    // Every 1/8 s: a chord of 0–9 new notes (any key, so some outside the
                    // models' range), some held notes let go, a parameter moved; every 3 s
                    // the models change; now and then a bend, the pedal or all-notes-off.
                    if sample.is_multiple_of(6_000) {
                        for _ in 0..rng.next() % 4 {
                            if let Some(k) = held.pop() {
                                events.push(&NoteOffEvent::new(0, key(k), 0.0));
                            }
                        }
                        for _ in 0..rng.next() % 10 {
                            let k = (rng.next() % 128) as u16;
                            let velocity = rng.range(0.0, 1.0);
                            events.push(&NoteOnEvent::new(1, key(k), velocity));
                            held.push(k);
                        }
                        let param = &automated[rng.next() as usize % automated.len()];
                        events.push(&ParamValueEvent::new(
                            2,
                            param.id,
                            Pckn::match_all(),
                            random_value(param, &mut rng),
                        ));
                        let value = (rng.next() % 16_384) as u16;
                        let bend = [0xE0, (value & 0x7F) as u8, (value >> 7) as u8];
                        events.push(&MidiEvent::new(3, 0, bend));
                        match rng.next() % 16 {
                            0 => events.push(&MidiEvent::new(3, 0, [0xB0, 64, 127])),
                            1 => events.push(&MidiEvent::new(3, 0, [0xB0, 64, 0])),
                            2 => {
                                events.push(&MidiEvent::new(3, 0, [0xB0, 123, 0]));
                                held.clear();
                            }
                            _ => {}
                        }
                    }
                    if sample.is_multiple_of(144_000) {
                        for p in [&style, &style_b] {
                            events.push(&ParamValueEvent::new(
                                0,
                                p.id,
                                Pckn::match_all(),
                                random_value(p, &mut rng),
                            ));
                        }
                    }
                    let (left, right) = ports.process(&mut processor, &events);
                    assert!(
                        left.iter()
                            .chain(right)
                            .all(|y| y.is_finite() && y.abs() <= 4.0),
                        "non-finite or runaway output at {:.3} s",
                        sample as f64 / SAMPLE_RATE
                    );
                }
                let figures = Figures {
                    rss_start,
                    rss_end: rss_mb(),
                };
                (processor.stop_processing(), figures)
            })
            .join()
            .expect("audio thread")
    });
    let (processor, figures) = figures;
    plugin.deactivate(processor);
    figures.check("Voice", seconds);
}
