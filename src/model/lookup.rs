//! Where models are found, and listing them with their validity (`continuo models`).

use std::path::{Path, PathBuf};

use super::error::ModelError;
use super::loader::validate;
use super::locate::this_binary_path;
use super::manifest::{Manifest, ModelKind};

/// Model directories, searched in order; earlier directories win when names collide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelDirs {
    /// Directories in search order.
    pub dirs: Vec<PathBuf>,
}

impl ModelDirs {
    /// Exactly these directories.
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        ModelDirs {
            dirs: dirs.into_iter().collect(),
        }
    }

    /// The standard search order:
    /// 1. `explicit` (command-line or plugin-setting paths), in the order given;
    /// 2. the bundled model directories, [`bundled_model_dirs`];
    /// 3. the user directory, [`user_model_dir`].
    ///
    /// Duplicates are dropped; directories need not exist (scanning skips missing ones).
    pub fn standard(explicit: &[PathBuf]) -> Self {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let candidates = explicit
            .iter()
            .cloned()
            .chain(bundled_model_dirs())
            .chain(user_model_dir());
        for d in candidates {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        ModelDirs { dirs }
    }

    /// A manifest path given directly (a `.json` path or an existing file), else the manifest
    /// of the model named `name_or_path` ([`ModelDirs::find`]).
    pub fn resolve(&self, name_or_path: &str) -> Option<PathBuf> {
        let as_path = Path::new(name_or_path);
        if as_path.extension().is_some_and(|e| e == "json") || as_path.is_file() {
            Some(as_path.to_path_buf())
        } else {
            self.find(name_or_path)
        }
    }

    /// The directories as one line, for "not found (searched: …)" messages.
    pub fn describe(&self) -> String {
        self.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The manifest `<dir>/<name>.json` of the first directory that has one.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.join(format!("{name}.json")))
            .find(|p| p.is_file())
    }
}

/// Model directories shipped with the binary this code is linked into (directory `D`, found
/// with `dladdr`, see [`super::locate::this_binary_path`]): `D/Continuo-data/models` (beside a
/// `.clap`) and `D/../Resources/models` (inside a VST3 bundle: `X.vst3/Contents/Resources/models`). When
/// the running executable is another file (the CLI linking a plugin library), its directory's
/// `models` follows.
pub fn bundled_model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = this_binary_path().as_deref().and_then(Path::parent) {
        dirs.push(dir.join(super::locate::BUNDLE_DATA_DIR).join("models"));
        dirs.push(dir.join("../Resources/models"));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        let d = dir.join("models");
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// The user's model directory: `$XDG_DATA_HOME/continuo/models`, or
/// `$HOME/.local/share/continuo/models` when `XDG_DATA_HOME` is unset or not absolute (as
/// the XDG spec says). `None` without a home directory.
pub fn user_model_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|h| h.join(".local/share"))
    })?;
    Some(base.join("continuo/models"))
}

/// One manifest found by [`scan`].
#[derive(Debug)]
pub struct FoundModel {
    /// The manifest file.
    pub path: PathBuf,
    /// The manifest if it passed the cheap checks (parse, version, ONNX file present, hash,
    /// decodable ONNX), or why not. No session is created.
    pub result: Result<Manifest, ModelError>,
}

/// Lists every `*.json` in `dirs` (directory order, then file name order), each with its
/// validity. Missing or unreadable directories are skipped.
pub fn scan(dirs: &ModelDirs) -> Vec<FoundModel> {
    manifest_paths(dirs)
        .map(|path| {
            let result = validate(&path, None).map(|v| v.manifest);
            FoundModel { path, result }
        })
        .collect()
}

/// Names (manifest file stems) of the models of `kind` in `dirs`, each once, in search order.
/// A name resolves as [`ModelDirs::find`] does: only the first directory's manifest counts.
///
/// Only manifests are parsed (no hashing, no session), so this is cheap enough for plugin
/// construction; a broken model is reported when it is loaded.
pub fn names_of_kind(dirs: &ModelDirs, kind: ModelKind) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut names = Vec::new();
    for path in manifest_paths(dirs) {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if seen.iter().any(|s| s == name) {
            continue;
        }
        seen.push(name.to_owned());
        if Manifest::load(&path).is_ok_and(|m| m.kind == kind) {
            names.push(name.to_owned());
        }
    }
    names
}

/// Every `*.json` file in `dirs`: directory order, then file name order. Missing or unreadable
/// directories are skipped.
fn manifest_paths(dirs: &ModelDirs) -> impl Iterator<Item = PathBuf> + '_ {
    dirs.dirs.iter().flat_map(|dir| {
        let mut manifests: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
            .collect();
        manifests.sort();
        manifests
    })
}
