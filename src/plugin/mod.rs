//! nice-plug glue: parameters, activation and `process()` for the three plugins. All real work
//! is in `engine`, `style` and `phrase`, which know nothing about the plugin framework.

pub mod loader;
pub mod model_choice;
pub mod phrase;
pub mod style;
pub mod voice;

/// Vendor string both plugins report.
pub const VENDOR: &str = "Continuo";
/// Project URL both plugins report.
pub const URL: &str = "https://example.invalid/continuo";
/// Support e-mail both plugins report.
pub const EMAIL: &str = "continuo@example.invalid";
