//! The plugin formats' own conformance suites, run on the built bundles by `cargo xtask test`:
//! free-audio's clap-validator (`validate`, then `fuzz` for a while) and Steinberg's VST3
//! `validator -e`. Neither is on a registry: their sources and build scripts come with the
//! workplace's `../shared/tools/`. Without that folder the suites are skipped, and the test
//! command says so loudly instead of passing silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// How long the CLAP fuzzer runs (clap-validator's duration syntax, e.g. `90s`, `5m`), unless
/// `CONTINUO_CLAP_FUZZ` says otherwise (`0` skips the fuzzer).
const DEFAULT_FUZZ_DURATION: &str = "3m";

/// Where the conformance tools' sources and build scripts live, if this checkout has them.
fn shared_tools(root: &Path) -> Option<PathBuf> {
    let tools = root.parent()?.join("shared/tools");
    tools.is_dir().then_some(tools)
}

/// Runs both suites on `target/bundled`; an error when any test fails or any tool cannot be
/// built. Prints one summary line per suite.
pub fn run(root: &Path) -> Result<()> {
    let Some(tools) = shared_tools(root) else {
        println!(
            "SKIPPED: clap-validator and the VST3 validator: {} not found (they ship only with the \
             workplace's shared/tools); the plugins were NOT checked for format conformance",
            root.parent().unwrap_or(root).join("shared/tools").display()
        );
        return Ok(());
    };
    let bundled = root.join("target/bundled");
    let logs = root.join("target/conformance");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let clap = clap_validator(&tools, root, &bundled.join("Continuo.clap"), &logs);
    let vst3 = vst3_validator(&tools, root, &bundled.join("Continuo.vst3"), &logs);
    let voice = vst3_validator(&tools, root, &bundled.join(crate::VOICE_BUNDLE), &logs);
    clap.and(vst3).and(voice)
}

/// Builds a tool with its script (which prints the binary's path on its last line).
fn build_tool(script: &Path, build_dir: &Path) -> Result<PathBuf> {
    let output = Command::new("bash")
        .arg(script)
        .arg(build_dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed ({})", script.display(), output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let binary = stdout
        .lines()
        .last()
        .map(|line| PathBuf::from(line.trim()))
        .with_context(|| format!("{} printed no binary path", script.display()))?;
    if !binary.exists() {
        bail!(
            "{} said it built {}, which does not exist",
            script.display(),
            binary.display()
        );
    }
    Ok(binary)
}

/// Runs a command, keeps everything it printed in `log`, and returns its output.
fn run_logged(command: &mut Command, log: &Path) -> Result<Output> {
    eprintln!("+ {command:?}  (output in {})", log.display());
    let output = command
        .output()
        .with_context(|| format!("cannot start {command:?}"))?;
    let mut text = output.stdout.clone();
    text.extend_from_slice(&output.stderr);
    std::fs::write(log, &text).with_context(|| format!("writing {}", log.display()))?;
    Ok(output)
}

/// Everything a tool printed, without its terminal colours.
fn text(output: &Output) -> String {
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut plain = String::with_capacity(printed.len());
    let mut chars = printed.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An ANSI sequence: ESC [ parameters, ending in a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn clap_validator(tools: &Path, root: &Path, bundle: &Path, logs: &Path) -> Result<()> {
    let validator = build_tool(
        &tools.join("build-clap-validator.sh"),
        &root.join("target/tools/clap-validator"),
    )?;

    let log = logs.join("clap-validate.log");
    let output = run_logged(
        Command::new(&validator)
            .args(["validate", "--only-failed"])
            .arg(bundle),
        &log,
    )?;
    let printed = text(&output);
    // Its tally ("N tests run, N passed, N failed, N skipped, N warnings") is the last line.
    let tally = printed
        .lines()
        .rev()
        .find(|line| line.contains("tests run"))
        .unwrap_or("no tally printed");
    println!("clap-validator validate: {}", tally.trim());
    if !output.status.success() {
        println!("{printed}");
        bail!(
            "clap-validator validate failed (full output in {})",
            log.display()
        );
    }

    let duration = std::env::var("CONTINUO_CLAP_FUZZ").unwrap_or(DEFAULT_FUZZ_DURATION.into());
    if duration == "0" {
        println!("SKIPPED: clap-validator fuzz (CONTINUO_CLAP_FUZZ=0)");
        return Ok(());
    }
    let log = logs.join("clap-fuzz.log");
    let started = Instant::now();
    // Debug verbosity makes it print the seed of every chunk that passed, for the record; a
    // high limit keeps it fuzzing for the whole duration after a first failure.
    let output = run_logged(
        Command::new(&validator)
            .args([
                "--verbosity",
                "debug",
                "fuzz",
                "--limit",
                "1000",
                "--duration",
            ])
            .arg(&duration)
            .arg(bundle),
        &log,
    )?;
    let printed = text(&output);
    let passed = printed.lines().filter(|line| line.contains("OK '")).count();
    let failures: Vec<&str> = printed
        .lines()
        .filter(|line| line.contains("ERROR") && line.contains("seed"))
        .collect();
    println!(
        "clap-validator fuzz ({duration}, {:.0} s): {passed} chunks passed (seeds in {}), {} failed",
        started.elapsed().as_secs_f32(),
        log.display(),
        failures.len()
    );
    // The fuzzer gives a chunk 60 s in its sandbox; the debug bundle can need longer for a chunk
    // that re-activates many times. Such a chunk is run again in-process without that limit:
    // only if it fails (or hangs past RERUN_LIMIT) there is it a failure.
    let mut real_failures = Vec::new();
    for line in &failures {
        let seed_and_plugin = line
            .contains("Timed out")
            .then(|| timed_out_chunk(line))
            .flatten();
        match seed_and_plugin {
            Some((plugin, seed)) => {
                let rerun = run_logged(
                    Command::new("timeout")
                        .arg(RERUN_LIMIT)
                        .arg(&validator)
                        .args(["fuzz", "-p", plugin, "--reproduce", seed])
                        .arg(bundle),
                    &logs.join(format!("clap-fuzz-rerun-{seed}.log")),
                )?;
                let verdict = if rerun.status.success() {
                    "passed"
                } else {
                    "FAILED"
                };
                println!(
                    "  {plugin} seed {seed} timed out in the sandbox; in-process rerun {verdict}"
                );
                if !rerun.status.success() {
                    real_failures.push(*line);
                }
            }
            None => real_failures.push(*line),
        }
    }
    if !real_failures.is_empty() || (!output.status.success() && failures.is_empty()) {
        println!("{}", real_failures.join("\n"));
        bail!(
            "clap-validator fuzz failed; reproduce with `clap-validator fuzz -p PLUGIN --reproduce SEED {}`",
            bundle.display()
        );
    }
    if passed == 0 {
        bail!("clap-validator fuzz ran no chunk (see {})", log.display());
    }
    Ok(())
}

/// How long an in-process rerun of a chunk that timed out in the fuzzer's sandbox may take.
const RERUN_LIMIT: &str = "300";

/// (plugin id, seed) of a fuzzer line ending in `(org.example.plugin, seed 1234)`.
fn timed_out_chunk(line: &str) -> Option<(&str, &str)> {
    let inside = line.rsplit_once('(')?.1;
    let (plugin, rest) = inside.split_once(", seed ")?;
    let seed = rest.split(')').next()?;
    (!plugin.is_empty() && seed.chars().all(|c| c.is_ascii_digit())).then_some((plugin, seed))
}

/// `ERROR:` lines of the VST3 validator whose cause is in nice-plug 0.4.2, not in Continuo,
/// with the cause. Remove an entry when a nice-plug release fixes it.
const KNOWN_NICE_PLUG_ERRORS: &[(&str, &str)] = &[(
    "The bypass parameter was not correctly set",
    "nice-plug's VST3 setParamNormalized ignores values while processing (the processor gets \
     them through process()), so the suite's immediate getParamNormalized reads the old value",
)];

fn vst3_validator(tools: &Path, root: &Path, bundle: &Path, logs: &Path) -> Result<()> {
    let validator = build_tool(
        &tools.join("build-vst3-validator.sh"),
        &root.join("target/tools/vst3-validator"),
    )?;
    let name = bundle
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or("vst3");
    let log = logs.join(format!("vst3-validator-{}.log", name.replace(' ', "-")));
    let output = run_logged(Command::new(&validator).arg("-e").arg(bundle), &log)?;
    let printed = text(&output);
    let result = printed
        .lines()
        .rev()
        .find(|line| line.contains("Result:"))
        .unwrap_or("no result line printed");
    // The suite logs some problems only as `ERROR:` lines without failing a test. Each one
    // fails this check, except those whose cause is known to lie in nice-plug (listed, and
    // printed every run so they are not forgotten).
    let (known, errors): (Vec<&str>, Vec<&str>) = printed
        .lines()
        .filter(|line| line.contains("ERROR:"))
        .partition(|line| {
            KNOWN_NICE_PLUG_ERRORS
                .iter()
                .any(|(known, _)| line.contains(known))
        });
    println!(
        "VST3 validator -e, {name}: {} ({} ERROR lines, {} of them known nice-plug problems)",
        result.trim(),
        errors.len() + known.len(),
        known.len()
    );
    for (message, cause) in KNOWN_NICE_PLUG_ERRORS {
        if known.iter().any(|line| line.contains(message)) {
            println!("  known: `{message}`: {cause}");
        }
    }
    let failed = !result.contains(" 0 tests failed");
    if failed || !errors.is_empty() || !output.status.success() {
        let failed_tests = printed.lines().filter(|line| line.contains("Failed]"));
        for line in errors.iter().copied().chain(failed_tests) {
            println!("  {}", line.trim());
        }
        bail!("VST3 validator failed (full output in {})", log.display());
    }
    Ok(())
}
