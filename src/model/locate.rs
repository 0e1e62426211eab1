//! Where the code is running from: the file of the binary this crate is linked into.
//!
//! Inside a DAW, `std::env::current_exe()` is the DAW; the plugin's own file (where its
//! runtime library and bundled models sit) is found with `dladdr` on one of our functions.

use std::path::PathBuf;

/// Folder beside a plugin file that holds what ships with it (runtime library, models). A
/// `.clap` is a single file, so `Continuo.clap` gets `Continuo-data/` next to it; inside a
/// `.vst3` bundle the same things live in `Contents/Resources/`.
pub const BUNDLE_DATA_DIR: &str = "Continuo-data";

/// The absolute path of the binary (shared object / plugin file, or executable) containing
/// this function, or `None` if it cannot be determined.
///
/// On Unix this asks the dynamic linker (`dladdr`); for a main executable, where glibc may
/// report a relative `argv[0]`-style name, it falls back to `current_exe()`.
pub fn this_binary_path() -> Option<PathBuf> {
    #[cfg(unix)]
    {
        if let Some(p) = dladdr_path() {
            return Some(p);
        }
    }
    std::env::current_exe().ok()
}

#[cfg(unix)]
fn dladdr_path() -> Option<PathBuf> {
    use std::ffi::{CStr, OsStr};
    use std::os::unix::ffi::OsStrExt;

    // Any function of this crate will do; this one is in the same object file.
    let addr = this_binary_path as *const () as *const libc::c_void;
    // SAFETY: an all-zero `Dl_info` is a valid value (null pointers, zero integers).
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `dladdr` only reads `addr` (a function of this loaded object, valid for the
    // process lifetime) and writes `info`, a valid exclusive pointer.
    let found = unsafe { libc::dladdr(addr, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: on success `dli_fname` is a NUL-terminated string owned by the dynamic linker
    // that stays valid while the object is loaded; we copy it immediately.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(OsStr::from_bytes(name.to_bytes()));
    if path.is_absolute() {
        Some(path.canonicalize().unwrap_or(path))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_test_binary() {
        let p = super::this_binary_path().expect("binary path");
        assert!(p.is_absolute());
        assert!(p.is_file(), "{}", p.display());
    }
}
