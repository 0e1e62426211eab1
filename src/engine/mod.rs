//! The real-time engine, independent of any plugin framework: the plugins and the offline CLI
//! drive the very same code, so the CLI is a faithful test of the plugin.
//!
//! | module | runs on | what |
//! | --- | --- | --- |
//! | [`audio`] | audio thread + worker | Style's engine: streams, hop processing, miss crossfade, latency |
//! | [`stream`] | both | timestamped `rtrb` audio streams (a stream: every frame matters) |
//! | [`crossfade`], [`delay`] | audio thread | equal-power wet/dry switch, dry-path delay |
//! | [`worker`] | worker | thread lifecycle, crossbeam control channel, idle polling |
//! | [`offline`] | caller | whole-file rendering with latency compensation (CLI, tests) |
//! | [`resynthesis`] | worker | reference STFT identity processor (engine tests) |
//!
//! Parameters cross as atomics (latest value wins); audio and note events cross as `rtrb`
//! streams; control messages between non-real-time threads use crossbeam channels.

pub mod audio;
pub mod crossfade;
pub mod delay;
pub mod offline;
pub mod resynthesis;
pub mod stream;
pub mod worker;
