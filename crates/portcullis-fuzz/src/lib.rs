//! A mutational fuzzing harness for Portcullis that runs on stable Rust (issue 13, "Beyond the
//! list"): cargo-fuzz needs nightly. There is no coverage instrumentation; instead the mutators
//! know the input formats (JSON, base64url JWS segments, form bodies, re-signing so that the
//! checks after signature verification are reached) and the runner keeps every input that
//! produced an outcome (an error description) it had not seen before.
//!
//! A panic in a target is a finding: the runner returns the input, and the `portcullis-fuzz`
//! binary writes it to `fuzz-findings/<target>-<n>`. See docs/fuzzing.md.

pub mod mutate;
pub mod targets;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

pub use mutate::Rng;
pub use targets::{TARGETS, Target, target};

/// How long one target runs.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Time(Duration),
    Iterations(u64),
}

/// A clean run.
#[derive(Debug, Clone)]
pub struct Report {
    pub executions: u64,
    pub elapsed: Duration,
    pub corpus: usize,
    pub outcomes: usize,
}

/// An input that made the target panic.
#[derive(Debug, Clone)]
pub struct Finding {
    pub input: Vec<u8>,
    pub message: String,
}

/// The most inputs the runner keeps.
const MAX_CORPUS: usize = 4096;

/// Runs `target` for `budget`, starting from its seeds, with a deterministic `seed`.
pub fn run(target: &dyn Target, budget: Budget, seed: u64) -> Result<Report, Finding> {
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut corpus = target.seeds();
    let mut outcomes = HashSet::new();
    let mut executions = 0u64;
    let once = |input: &[u8]| {
        catch_unwind(AssertUnwindSafe(|| target.run(input))).map_err(|payload| Finding {
            input: input.to_vec(),
            message: payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".into()),
        })
    };
    for seed_input in corpus.clone() {
        outcomes.insert(once(&seed_input)?);
        executions += 1;
    }
    loop {
        let done = match budget {
            Budget::Iterations(n) => executions >= n,
            Budget::Time(d) => executions.is_multiple_of(32) && started.elapsed() >= d,
        };
        if done {
            break;
        }
        // mostly recent discoveries and seeds alike; sometimes stack two mutations
        let base = corpus[rng.below(corpus.len())].clone();
        let mutated = catch_unwind(AssertUnwindSafe(|| {
            let once = target.mutate(&base, &mut rng, &corpus);
            if rng.chance(4) {
                target.mutate(&once, &mut rng, &corpus)
            } else {
                once
            }
        }));
        let Ok(input) = mutated else {
            return Err(Finding {
                input: base,
                message: "the mutator panicked on this input (a harness bug)".into(),
            });
        };
        let outcome = once(&input)?;
        executions += 1;
        if std::env::var_os("FUZZ_DEBUG").is_some() && !outcomes.contains(&outcome) {
            eprintln!("{outcome}");
        }
        if outcomes.insert(outcome) && corpus.len() < MAX_CORPUS {
            corpus.push(input);
        }
    }
    Ok(Report {
        executions,
        elapsed: started.elapsed(),
        corpus: corpus.len(),
        outcomes: outcomes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: every target runs a few hundred deterministic iterations without a panic, so
    /// CI exercises the harness (the long runs are `scripts/fuzz`, never the test suite).
    #[test]
    fn every_target_runs_clean_briefly() {
        for name in TARGETS {
            let t = target(name).expect("target exists");
            assert_eq!(t.name(), name);
            let report = run(t.as_ref(), Budget::Iterations(300), 1).unwrap_or_else(|f| {
                panic!(
                    "{name} panicked: {} on {:?}",
                    f.message,
                    String::from_utf8_lossy(&f.input)
                )
            });
            assert!(report.executions >= 300, "{name}: {report:?}");
            assert!(report.outcomes > 1, "{name}: the mutations never changed the outcome");
        }
    }

    /// The runner reports a panicking target as a finding with its input.
    #[test]
    fn a_panic_is_a_finding() {
        struct Boom;
        impl Target for Boom {
            fn name(&self) -> &'static str {
                "boom"
            }
            fn seeds(&self) -> Vec<Vec<u8>> {
                vec![b"ok".to_vec()]
            }
            fn mutate(&self, input: &[u8], rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
                let mut v = input.to_vec();
                mutate::mutate_bytes(&mut v, rng, corpus);
                v
            }
            fn run(&self, input: &[u8]) -> String {
                assert!(input == b"ok", "boom");
                "ok".into()
            }
        }
        let f = run(&Boom, Budget::Iterations(100), 7).unwrap_err();
        assert_ne!(f.input, b"ok");
        assert!(f.message.contains("boom"));
    }

    /// A JWS whose payload is JSON but not an object (the first 90-second run found that the
    /// fresh-`jti` step indexed into it and panicked) mutates without a panic.
    #[test]
    fn jws_mutation_survives_non_object_payloads() {
        let token = format!(
            "{}.{}.{}",
            portcullis_jose::b64url(r#"{"alg":"ES256"}"#),
            portcullis_jose::b64url(r#""text""#),
            "c2ln"
        );
        let mut rng = Rng::new(5);
        for _ in 0..2000 {
            let _ = mutate::mutate_jws(token.as_bytes(), &mut rng, &[], &|_| Some("c2ln".into()));
        }
    }

    /// The base64url helper builds a non-canonical twin that decodes to the same bytes.
    #[test]
    fn dirty_base64_is_a_non_canonical_twin() {
        let mut rng = Rng::new(3);
        let s = portcullis_jose::b64url([1u8, 2, 3, 4]);
        let d = mutate::dirty_base64(&s, &mut rng);
        assert_ne!(s, d);
        assert!(
            portcullis_jose::b64url_decode(&d).is_err(),
            "the strict decoder refuses it"
        );
    }
}
