//! `portcullis audit show INTERACTION_ID | verify` (INTERFACE.md): the signed messages of one
//! interaction, and a re-check of the whole evidence log (issue 16 item 5).

use clap::Subcommand;
use portcullis_core::Store;
use portcullis_core::audit::{AuditRecord, BreakCause, ChainVerifier, Proof};
use portcullis_jose::{b64url, b64url_decode};
use serde_json::Value;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print the signed messages of one interaction (its x-fapi-interaction-id)
    Show { interaction_id: String },
    /// Re-check the anchor, the hash chain and every signature; exit 1 naming the first
    /// broken link
    Verify,
}

/// Entries read per page while verifying.
const PAGE: u32 = 500;

/// Runs the command; `Ok(false)` when `verify` found the log broken (already printed).
pub async fn run(store: &dyn Store, command: AuditCommand) -> Result<bool, String> {
    match command {
        AuditCommand::Show { interaction_id } => {
            let records = store
                .audit_by_interaction(&interaction_id)
                .await
                .map_err(|e| e.to_string())?;
            if records.is_empty() {
                eprintln!("no evidence for interaction {interaction_id}");
            }
            for r in &records {
                print!("{}", describe(r));
            }
            Ok(true)
        }
        AuditCommand::Verify => verify(store).await,
    }
}

async fn verify(store: &dyn Store) -> Result<bool, String> {
    let anchor = store.audit_anchor().await.map_err(|e| e.to_string())?;
    let mut verifier = ChainVerifier::new(anchor);
    let mut after = anchor.seq;
    // entries whose signature does not verify: reported, and the chain checked on past them
    let mut bad_signatures = 0u64;
    loop {
        let page = match store.audit_range(after, PAGE).await {
            Ok(p) => p,
            // an entry no writer could have stored (see portcullis-store's audit_from_row)
            Err(e) => {
                println!("broken after seq {after}: {e}");
                return Ok(false);
            }
        };
        if page.is_empty() {
            break;
        }
        for r in &page {
            match verifier.check(r) {
                Ok(()) => {}
                Err(broken) if matches!(broken.cause, BreakCause::Signature(_)) => {
                    println!("broken: {broken}");
                    bad_signatures += 1;
                }
                Err(broken) => {
                    println!("broken: {broken}");
                    println!("{} entries before it checked", verifier.checked());
                    return Ok(false);
                }
            }
            after = r.seq;
        }
    }
    let head = verifier.head();
    if bad_signatures > 0 {
        println!(
            "chain intact, but {bad_signatures} of {} entries have a signature that does not verify",
            verifier.checked()
        );
        return Ok(false);
    }
    println!("intact: {} entries checked", verifier.checked());
    println!("anchor: seq {} {}", anchor.seq, anchor.hash);
    println!("head: seq {} {}", head.seq, head.hash);
    Ok(true)
}

/// One entry for `show`: a summary line, then the message (a JWS's header and claims as
/// pretty JSON and its compact form; an HTTP signature's base).
fn describe(r: &AuditRecord) -> String {
    let e = &r.evidence;
    let valid = match e.verify() {
        Ok(()) => "valid".to_owned(),
        Err(why) => format!("INVALID ({why})"),
    };
    let mut out = format!(
        "seq {}  {}  {} {}  client {}  alg {}  kid {}  signature {valid}\n",
        r.seq,
        crate::time::utc(e.at),
        e.kind,
        e.direction,
        e.client_id,
        e.alg,
        e.kid().as_deref().unwrap_or("-"),
    );
    match &e.proof {
        Proof::Jws { compact } => {
            let mut parts = compact.split('.');
            for (label, part) in [("header", parts.next()), ("claims", parts.next())] {
                out.push_str(&format!("  {label}:\n{}\n", indent(&pretty(part.unwrap_or("")), 4)));
            }
            out.push_str(&format!("  compact:\n    {compact}\n"));
        }
        Proof::HttpSignature { base, signature, body } => {
            out.push_str(&format!("  signature base:\n{}\n", indent(&masked(base), 4)));
            out.push_str(&format!("  signature: {}\n", b64url(signature)));
            if let Some(b) = body {
                out.push_str(&format!("  body: {} bytes\n", b.len()));
            }
        }
    }
    out.push('\n');
    out
}

/// The base with the credentials it covers (`authorization`: the access token; `dpop`: the
/// proof) shortened to a fingerprint: `show` is for reading, `verify` checks the stored base.
fn masked(base: &str) -> String {
    base.lines()
        .map(|line| {
            for name in ["\"authorization\"", "\"dpop\""] {
                if let Some(rest) = line.strip_prefix(name)
                    && let Some(value) = rest.strip_prefix(": ")
                {
                    let fingerprint = portcullis_jose::sha256_b64url(value);
                    return format!("{name}: <{} characters, sha-256 {}>", value.len(), &fingerprint[..12]);
                }
            }
            line.to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A base64url JSON part as pretty JSON (as it is, when it is not JSON).
fn pretty(part: &str) -> String {
    b64url_decode(part)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| part.to_owned())
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| format!("{pad}{l}")).collect::<Vec<_>>().join("\n")
}
