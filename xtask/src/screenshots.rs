//! Opens each plugin editor for real under Xvfb: a window fed by the real engine
//! (`examples/editor_preview.rs`) whose picture is saved in `target/screenshots/` (the README's
//! pictures are these files, copied to `examples/screenshots/`), then 50 openings of each in
//! the CLAP test host (`tests/clap_gui.rs`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::run;
use crate::system::{apt_install, on_path};

/// Each editor, and how long it runs before the picture: Phrase hears a 4-second tune first.
const EDITORS: [(&str, &str); 2] = [("style", "5"), ("phrase", "7")];

/// Xvfb, stopped when dropped.
struct VirtualScreen {
    child: Child,
    display: String,
}

impl Drop for VirtualScreen {
    fn drop(&mut self) {
        // SIGTERM, so Xvfb removes its socket and lock file (a kill leaves them, and the
        // display number looks taken ever after).
        let stopped = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Starts Xvfb on the first free display from :90.
fn virtual_screen() -> Result<VirtualScreen> {
    let number = (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .context("no free X display number")?;
    let display = format!(":{number}");
    let child = Command::new("Xvfb")
        .args([&display, "-screen", "0", "1280x1024x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting Xvfb")?;
    let screen = VirtualScreen { child, display };
    let socket = format!("/tmp/.X11-unix/X{number}");
    let start = Instant::now();
    while !Path::new(&socket).exists() {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("Xvfb did not start on {}", screen.display);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(screen)
}

/// Xvfb, and Mesa's software OpenGL for the editors' renderer, installed when missing.
fn install_virtual_screen() -> Result<()> {
    let mut missing = Vec::new();
    if !on_path("Xvfb") {
        missing.push("xvfb");
    }
    for (library, package) in [
        ("libGL.so.1", "libgl1"),
        ("libGLX_mesa.so.0", "libglx-mesa0"),
        ("dri/swrast_dri.so", "libgl1-mesa-dri"),
    ] {
        if !Path::new("/usr/lib/x86_64-linux-gnu")
            .join(library)
            .exists()
        {
            missing.push(package);
        }
    }
    apt_install(&missing, &|command| run(command))
}

/// Saves both editors' pictures; `library` is the ONNX Runtime the models run on.
pub fn pictures(root: &Path, library: &Path) -> Result<()> {
    install_virtual_screen()?;
    let preview = root.join("target/debug/examples/editor_preview");
    if !preview.exists() {
        bail!("{} is missing: `cargo test` builds it", preview.display());
    }
    let screen = virtual_screen()?;
    for (editor, seconds) in EDITORS {
        let picture = root.join(format!("target/screenshots/{editor}.png"));
        run(Command::new(&preview)
            .args([editor, "--screenshot"])
            .arg(&picture)
            .args(["--after", seconds])
            .env("DISPLAY", &screen.display)
            .env("ORT_DYLIB_PATH", library))
        .with_context(|| format!("the {editor} editor under Xvfb"))?;
    }
    Ok(())
}

/// Opens and closes each editor 50 times in the CLAP test host (`tests/clap_gui.rs`, on the
/// built bundle) under Xvfb.
pub fn open_and_close_in_host(library: &Path) -> Result<()> {
    install_virtual_screen()?;
    let screen = virtual_screen()?;
    run(Command::new(env!("CARGO"))
        .args([
            "test",
            "--features",
            "train",
            "--test",
            "clap_gui",
            "--",
            "--nocapture",
        ])
        .env("DISPLAY", &screen.display)
        // glibc's per-thread arenas would hide what the editors keep (see the test's docs).
        .env("MALLOC_ARENA_MAX", "2")
        .env("ORT_DYLIB_PATH", library))
    .context("opening and closing the editors in the CLAP host")
}

/// Copies the pictures to `examples/screenshots/`, where the README shows them from.
pub fn publish(root: &Path) -> Result<()> {
    let dir = root.join("examples/screenshots");
    std::fs::create_dir_all(&dir).context("creating examples/screenshots")?;
    for (editor, _) in EDITORS {
        let name = format!("{editor}.png");
        let from = root.join("target/screenshots").join(&name);
        std::fs::copy(&from, dir.join(&name))
            .with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(())
}
