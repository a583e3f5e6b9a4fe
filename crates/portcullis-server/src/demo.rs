//! The demo protected API (INTERFACE.md): `GET /api/accounts`, the signed-in user's accounts,
//! admitted exactly as a FAPI 2.0 resource server must (the resource crate's rules, scope
//! `accounts`). The accounts are made up, the same for a user every time.

use portcullis_jose::sha256_b64url;
use serde_json::{Value, json};

/// The demo accounts of the user `sub`: stable, distinct per user, obviously fictional.
pub fn accounts(sub: &str) -> Value {
    let id = sha256_b64url(format!("portcullis demo accounts\n{sub}"));
    let digits: u64 = id
        .bytes()
        .take(8)
        .fold(0, |n, b| n.wrapping_mul(31).wrapping_add(u64::from(b)));
    let balance = |salt: u64| {
        let cents = (digits ^ salt) % 1_000_000;
        format!("{}.{:02}", cents / 100, cents % 100)
    };
    json!({
        "accounts": [
            {
                "account_id": format!("{}-1", &id[..12]),
                "name": "Current account",
                "type": "current",
                "currency": "EUR",
                "balance": balance(0x5a5a),
            },
            {
                "account_id": format!("{}-2", &id[..12]),
                "name": "Savings",
                "type": "savings",
                "currency": "EUR",
                "balance": balance(0xa5a5),
            },
        ]
    })
}

/// The largest amount a demo payment accepts.
const MAX_AMOUNT_CENTS: u64 = 100_000_000;

/// A demo payment initiation: `{"amount": "12.34", "currency": "EUR", "creditor_name": ..,
/// "creditor_iban": ..}` checked and answered as accepted, with an id derived from the user
/// and the request (nothing is stored, no money moves).
pub fn payment(sub: &str, request: &Value) -> Result<Value, String> {
    let text = |k: &str, max: usize| -> Result<String, String> {
        match request.get(k).and_then(Value::as_str) {
            Some(v) if !v.is_empty() && v.len() <= max && !v.chars().any(char::is_control) => Ok(v.to_owned()),
            _ => Err(format!("{k} must be a string of 1 to {max} printable characters")),
        }
    };
    let amount = text("amount", 16)?;
    let cents = parse_amount(&amount).ok_or("amount must look like 12.34 (at most 1000000.00)")?;
    let currency = text("currency", 3)?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("currency must be an ISO 4217 code such as EUR".into());
    }
    let creditor_name = text("creditor_name", 70)?;
    let creditor_iban = text("creditor_iban", 34)?;
    let id = sha256_b64url(format!("portcullis demo payment\n{sub}\n{request}"));
    Ok(json!({
        "payment_id": format!("pmt-{}", &id[..16]),
        "status": "accepted",
        "amount": format!("{}.{:02}", cents / 100, cents % 100),
        "currency": currency,
        "creditor_name": creditor_name,
        "creditor_iban": creditor_iban,
    }))
}

fn parse_amount(s: &str) -> Option<u64> {
    let (units, cents) = s.split_once('.').unwrap_or((s, "00"));
    if units.is_empty() || units.len() > 7 || cents.len() != 2 {
        return None;
    }
    if !units.bytes().chain(cents.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let total = units.parse::<u64>().ok()? * 100 + cents.parse::<u64>().ok()?;
    (total > 0 && total <= MAX_AMOUNT_CENTS).then_some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn payments_are_checked() {
        let ok = serde_json::json!({"amount": "12.30", "currency": "EUR", "creditor_name": "Bob", "creditor_iban": "DE02100100109307118603"});
        let p = super::payment("alice", &ok).unwrap();
        assert_eq!(p["status"], "accepted");
        assert_eq!(p["amount"], "12.30");
        for (k, v) in [
            ("amount", "0.00"),
            ("amount", "1,00"),
            ("amount", "99999999.00"),
            ("currency", "eur"),
            ("creditor_name", ""),
        ] {
            let mut bad = ok.clone();
            bad[k] = serde_json::json!(v);
            assert!(super::payment("alice", &bad).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn accounts_are_stable_and_per_user() {
        assert_eq!(super::accounts("alice"), super::accounts("alice"));
        assert_ne!(super::accounts("alice"), super::accounts("bob"));
        assert_eq!(super::accounts("alice")["accounts"].as_array().unwrap().len(), 2);
    }
}
