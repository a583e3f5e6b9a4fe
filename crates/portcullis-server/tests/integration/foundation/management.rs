//! The management listener (INTERFACE.md, issue 17 item 1): liveness, readiness and Prometheus
//! metrics on `server.management_listen`, plain HTTP, and none of it on the public listeners.

use super::*;

async fn scrape(s: &Server) -> prometheus_parse::Scrape {
    let r = reqwest::get(format!("http://127.0.0.1:{}/metrics", s.management_port))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    // an independent parser of the exposition format
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

/// The value of the sample `name` whose labels include every pair in `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test]
async fn health_and_metrics_on_the_management_listener_only() {
    let s = Server::start().await;
    let base = format!("http://127.0.0.1:{}", s.management_port);
    assert!(s.stdout.contains(&format!("management: {base}")), "{}", s.stdout);

    let live = reqwest::get(format!("{base}/health/live")).await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
    assert_eq!(body["checks"]["keys"]["status"], "ok", "{body}");
    assert_eq!(reqwest::get(format!("{base}/nothing")).await.unwrap().status(), 404);

    // never on the public listeners
    for path in ["/metrics", "/health/live", "/health/ready"] {
        for origin in [s.issuer.clone(), format!("https://localhost:{}", s.mtls_port)] {
            let r = s.http.get(format!("{origin}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 404, "{origin}{path}");
        }
    }

    // a whole flow, a refresh, and some refusals
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let (tokens, _) = tokens(&s, &rp, &dpop).await;
    let refresh = token_request(
        &s,
        &rp,
        &dpop,
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), tokens["refresh_token"].as_str().unwrap().into()),
        ],
    )
    .await;
    assert_eq!(refresh.status(), 200);
    // a PAR without a DPoP nonce, one with a bad client assertion
    let no_nonce = Par::new(&rp)
        .send(
            &s,
            &rp,
            Some(dpop.proof("POST", &s.endpoint("pushed_authorization_request_endpoint"), None, None)),
        )
        .await;
    assert_eq!(no_nonce.status(), 400);
    let bad_client = s
        .post_form(
            &s.endpoint("pushed_authorization_request_endpoint"),
            &rp.auth_with(&s, |c| {
                c.insert("aud".into(), json!("https://elsewhere.example"));
            }),
            &[],
        )
        .await;
    assert_eq!(bad_client.status(), 401);

    let m = scrape(&s).await;
    let at_least = |name: &str, labels: &[(&str, &str)], n: f64| {
        let v = value(&m, name, labels).unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
        assert!(v >= n, "{name} {labels:?} = {v}, expected at least {n}");
    };
    at_least(
        "portcullis_http_requests_total",
        &[("endpoint", "par"), ("listener", "main"), ("status", "201")],
        1.0,
    );
    at_least(
        "portcullis_http_requests_total",
        &[("endpoint", "token"), ("status", "200")],
        2.0,
    );
    at_least("portcullis_flows_started_total", &[], 1.0);
    at_least("portcullis_flows_completed_total", &[], 1.0);
    at_least(
        "portcullis_tokens_issued_total",
        &[("grant_type", "authorization_code")],
        1.0,
    );
    at_least(
        "portcullis_tokens_issued_total",
        &[("grant_type", "refresh_token")],
        1.0,
    );
    at_least(
        "portcullis_dpop_refusals_total",
        &[("endpoint", "par"), ("reason", "use_dpop_nonce")],
        1.0,
    );
    at_least("portcullis_client_auth_refusals_total", &[("endpoint", "par")], 1.0);
    at_least(
        "portcullis_oauth_errors_total",
        &[("endpoint", "par"), ("error", "invalid_client")],
        1.0,
    );
    at_least(
        "portcullis_http_request_duration_seconds",
        &[("endpoint", "token")],
        2.0,
    );
    assert!(value(&m, "portcullis_password_queue_depth", &[]).is_some());
    at_least(
        "portcullis_db_query_duration_seconds",
        &[("operation", "get_client")],
        1.0,
    );
    // the login page went through the password pool and the session store
    at_least("portcullis_http_requests_total", &[("endpoint", "login")], 1.0);
}
