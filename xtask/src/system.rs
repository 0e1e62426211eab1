//! Debian packages the tasks need, installed when missing.

use std::process::Command;

use anyhow::{bail, Result};

/// Whether `program` is an executable file on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Installs `missing` with apt-get (as root, or through sudo), running each command with `run`.
pub fn apt_install(missing: &[&str], run: &dyn Fn(&mut Command) -> Result<()>) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    if !on_path("apt-get") {
        bail!(
            "missing {} and there is no apt-get: install them with your package manager",
            missing.join(", ")
        );
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false);
    if !root && !on_path("sudo") {
        bail!(
            "missing {}: installing them needs root or sudo (apt-get install \
             --no-install-recommends {})",
            missing.join(", "),
            missing.join(" ")
        );
    }
    let apt = |args: &[&str]| -> Result<()> {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            // sudo drops the environment; it takes VAR=value arguments instead.
            let mut sudo = Command::new("sudo");
            sudo.args(["DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            sudo
        };
        run(command.env("DEBIAN_FRONTEND", "noninteractive").args(args))
    };
    apt(&["update", "-qq"])?;
    let install = ["install", "-y", "-qq", "--no-install-recommends"];
    apt(&[&install[..], missing].concat())
}
