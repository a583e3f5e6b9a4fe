//! `portcullis-fuzz [--seconds N] [--iterations N] [--seed N] [--findings DIR] [TARGET...]`:
//! runs each target (all by default) and prints executions and time. On a panic the input is
//! written to `DIR/<target>-<n>` (default `fuzz-findings/`) and the exit status is 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_fuzz::{Budget, TARGETS, run, target};

fn usage() -> ExitCode {
    eprintln!(
        "usage: portcullis-fuzz [--seconds N] [--iterations N] [--seed N] [--findings DIR] [TARGET...]\ntargets: {}",
        TARGETS.join(" ")
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut budget = Budget::Time(Duration::from_secs(60));
    let mut seed = None;
    let mut findings = PathBuf::from("fuzz-findings");
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = || args.next().and_then(|v| v.parse::<u64>().ok());
        match a.as_str() {
            "--seconds" => match number() {
                Some(n) => budget = Budget::Time(Duration::from_secs(n)),
                None => return usage(),
            },
            "--iterations" => match number() {
                Some(n) => budget = Budget::Iterations(n),
                None => return usage(),
            },
            "--seed" => match number() {
                Some(n) => seed = Some(n),
                None => return usage(),
            },
            "--findings" => match args.next() {
                Some(d) => findings = PathBuf::from(d),
                None => return usage(),
            },
            "-h" | "--help" => return usage(),
            name if TARGETS.contains(&name) => names.push(name.to_owned()),
            _ => return usage(),
        }
    }
    if names.is_empty() {
        names = TARGETS.iter().map(|s| (*s).to_owned()).collect();
    }
    let seed = seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("seed {seed}");
    for name in names {
        let Some(t) = target(&name) else {
            return usage();
        };
        match run(t.as_ref(), budget, seed) {
            Ok(r) => {
                let secs = r.elapsed.as_secs_f64();
                println!(
                    "{name:<17} clean: {} executions in {secs:.1} s ({:.0}/s), corpus {}, distinct outcomes {}",
                    r.executions,
                    r.executions as f64 / secs.max(1e-9),
                    r.corpus,
                    r.outcomes
                );
            }
            Err(f) => {
                if let Err(e) = std::fs::create_dir_all(&findings) {
                    eprintln!("{}: {e}", findings.display());
                }
                let path = (0..)
                    .map(|n| findings.join(format!("{name}-{n}")))
                    .find(|p| !p.exists())
                    .unwrap_or_else(|| findings.join(&name));
                match std::fs::write(&path, &f.input) {
                    Ok(()) => eprintln!("{name}: PANIC ({}); input written to {}", f.message, path.display()),
                    Err(e) => eprintln!("{name}: PANIC ({}); could not write {}: {e}", f.message, path.display()),
                }
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
