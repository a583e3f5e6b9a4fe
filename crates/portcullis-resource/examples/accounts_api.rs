//! A small API protected by `portcullis-resource`: `GET /api/accounts` admits only a
//! sender-constrained access token (DPoP with this API's nonces, or certificate-bound behind a
//! proxy that forwards the certificate) carrying the scope `accounts` and issued for this API's
//! resource identifier; it learns about tokens by introspection at Portcullis, as a resource
//! server registered by the operator. See `examples/README.md`.
//!
//! ```text
//! accounts_api keygen DIR      writes DIR/api-key.pk8 and DIR/api-jwks.json
//! accounts_api serve           runs the API (settings from the environment, below)
//! ```
//! Environment for `serve`: `ISSUER` (the Portcullis issuer), `CA_FILE` (PEM the API trusts for
//! it), `CLIENT_ID` (the resource server's client_id), `KEY_DIR` (from keygen), `RESOURCE` (the
//! resource identifier, one of Portcullis's `tokens.resources`), `LISTEN` (default
//! `127.0.0.1:9300`), `PUBLIC_URL` (the URL clients call, default `http://LISTEN/api/accounts`).

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use portcullis_jose::{Algorithm, SigningKey};
use portcullis_resource::service::{
    Introspection, LocalNonces, MemoryReplay, ProtectedResource, Verified, fapi_headers, require_token,
};
use serde_json::json;

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn keygen(dir: &str) -> Result<(), String> {
    let key = SigningKey::generate(Algorithm::Es256).map_err(|e| e.to_string())?;
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("api-key.pk8"), key.pkcs8()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("api-key.kid"), key.kid()).map_err(|e| e.to_string())?;
    let jwks = json!({"keys": [key.public_jwk().to_json()]});
    std::fs::write(dir.join("api-jwks.json"), jwks.to_string()).map_err(|e| e.to_string())?;
    println!(
        "register it: portcullis client add --auth private_key_jwt --jwks-file {} --resource-server <RESOURCE>",
        dir.join("api-jwks.json").display()
    );
    Ok(())
}

async fn serve() -> Result<(), String> {
    let issuer = env("ISSUER")?;
    let ca = std::fs::read(env("CA_FILE")?).map_err(|e| format!("CA_FILE: {e}"))?;
    let client_id = env("CLIENT_ID")?;
    let key_dir = std::path::PathBuf::from(env("KEY_DIR")?);
    let pkcs8 = std::fs::read(key_dir.join("api-key.pk8")).map_err(|e| format!("KEY_DIR: {e}"))?;
    let kid = std::fs::read_to_string(key_dir.join("api-key.kid")).map_err(|e| format!("KEY_DIR: {e}"))?;
    let key =
        SigningKey::from_pkcs8(Algorithm::Es256, &pkcs8, Some(kid.trim().to_owned())).map_err(|e| e.to_string())?;
    // the same key signs the API's responses (FAPI 2.0 HTTP Signatures); its public JWK is
    // served at /api/jwks for clients that verify them
    let response_key =
        SigningKey::from_pkcs8(Algorithm::Es256, &pkcs8, Some(kid.trim().to_owned())).map_err(|e| e.to_string())?;
    let public_jwks = json!({"keys": [response_key.public_jwk().to_json()]});
    let resource = env("RESOURCE")?;
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:9300".into());
    let url = std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{listen}/api/accounts"));

    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).map_err(|e| e.to_string())?])
        .build()
        .map_err(|e| e.to_string())?;
    let endpoint = Introspection::discover(&http, &issuer).await.map_err(|e| e.0)?;
    let protected = Arc::new(ProtectedResource {
        url: url.clone(),
        audience: Some(resource),
        scopes: vec!["accounts".into()],
        nonce_required: true,
        source: Arc::new(Introspection::new(http, &issuer, &endpoint, &client_id, key)),
        nonces: Arc::new(LocalNonces::new().map_err(|e| e.0)?),
        replay: Arc::new(MemoryReplay::new(100_000)),
        certificates: None,
        // HTTP message signatures: signed requests would need the clients' keys
        // (ProtectedResource::client_keys); every response is signed
        client_keys: None,
        require_signed_requests: false,
        response_signer: Some(Arc::new(response_key)),
    });
    let app = Router::new()
        .route(
            "/api/accounts",
            get(|Verified(token): Verified| async move {
                axum::Json(json!({
                    "owner": token.subject,
                    "accounts": [{"account_id": "demo-1", "currency": "EUR", "balance": "100.00"}],
                }))
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(protected.clone(), require_token))
        .route("/api/jwks", get(move || async move { axum::Json(public_jwks) }))
        .layer(axum::middleware::from_fn(fapi_headers))
        .with_state(protected);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!("accounts API: {url} (introspecting at {endpoint})");
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let r = match args.get(1).map(String::as_str) {
        Some("keygen") => args
            .get(2)
            .map_or(Err("usage: accounts_api keygen DIR".into()), |d| keygen(d)),
        Some("serve") => serve().await,
        _ => Err("usage: accounts_api keygen DIR | serve".into()),
    };
    if let Err(e) = r {
        eprintln!("accounts_api: {e}");
        std::process::exit(2);
    }
}
