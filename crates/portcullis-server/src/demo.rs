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

#[cfg(test)]
mod tests {
    #[test]
    fn accounts_are_stable_and_per_user() {
        assert_eq!(super::accounts("alice"), super::accounts("alice"));
        assert_ne!(super::accounts("alice"), super::accounts("bob"));
        assert_eq!(super::accounts("alice")["accounts"].as_array().unwrap().len(), 2);
    }
}
