//! Signal processing shared by the plugins, the CLI and the trainer: one implementation of every
//! feature, so training and serving never disagree. Pure: no plugin or ML dependencies.

pub mod stft;
