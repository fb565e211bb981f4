//! The binary itself: start-up with a bad variable fails and names it; check-config masks secrets.

use std::process::Command;

fn regbridge(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regbridge"));
    cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

#[test]
fn bad_variables_stop_start_up_naming_the_variable() {
    let cases = [
        ("REGBRIDGE_LISTEN", "not-an-address"),
        ("REGBRIDGE_BODY_LIMIT", "lots"),
        ("REGBRIDGE_PUBLISH_TIMEOUT", "2 fortnights"),
        ("REGBRIDGE_RATE_LIMIT", "-1"),
        ("REGBRIDGE_ROOT_SIGNATURE_MODE", "sha1"),
        ("REGBRIDGE_INCLUDE_ORIGINAL", "maybe"),
        ("REGBRIDGE_ROUTES", "/nonexistent/routes.yaml"),
        ("REGBRIDGE_CONFIG", "/nonexistent/regbridge.yaml"),
    ];
    for (var, value) in cases {
        for args in [&["serve"][..], &[][..], &["check-config"][..]] {
            let out = regbridge(args, &[(var, value), ("REGBRIDGE_FILE_SINK", "/dev/null")]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{var}={value} {args:?} should fail");
            assert!(stderr.contains(var), "{var} not named in: {stderr}");
        }
    }
}

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_masked() {
    let secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let out = regbridge(
        &["check-config"],
        &[
            ("REGBRIDGE_ROOT_SECRETS", secret),
            ("REGBRIDGE_HARBOR_AUTH", "Bearer hunter2"),
            ("REGBRIDGE_FILE_SINK", "/tmp/x.jsonl"),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(secret) && !text.contains("hunter2"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let root = v["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "root").unwrap();
    assert_eq!(root["enabled"], true);
    assert_eq!(root["credentials"], "1 configured (redacted)");
    let msr = v["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "msr").unwrap();
    assert_eq!(msr["enabled"], false);
    assert_eq!(v["sinks"][0]["type"], "file");
}

#[test]
fn help_lists_the_commands() {
    let out = regbridge(&["--help"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("serve") && text.contains("check-config"), "{text}");
}

/// JSON logs: one line per rejected webhook with its reason and trace id, and no credential in
/// any line (MSR's token rides in the query string, Harbor's in a header).
#[actix_rt::test]
async fn rejections_are_logged_once_as_json_without_secrets() {
    let port = crate::brokers::free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_regbridge"))
        .env_clear()
        .env("REGBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("REGBRIDGE_HARBOR_AUTH", "Bearer harbor-secret-value")
        .env("REGBRIDGE_MSR_TOKENS", "msr-secret-value")
        .env("REGBRIDGE_FILE_SINK", dir.path().join("events.jsonl"))
        .env("REGBRIDGE_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = awc::Client::default();
    crate::helpers::wait_ready(&client, &base).await;
    let json = ("content-type", "application/json");
    let body = crate::helpers::fixture("msr/tag_push.dtr-2.4-docs.json");
    // A token that is wrong but secret-looking, and the right one on a malformed body.
    let wrong = client.post(format!("{base}/webhooks/msr?token=msr-secret-valuX")).insert_header(json);
    assert_eq!(wrong.send_body(body.clone()).await.unwrap().status().as_u16(), 401);
    let malformed = client.post(format!("{base}/webhooks/msr?token=msr-secret-value")).insert_header(json);
    assert_eq!(malformed.send_body("{").await.unwrap().status().as_u16(), 400);
    let harbor = client
        .post(format!("{base}/webhooks/harbor"))
        .insert_header(json)
        .insert_header(("authorization", "Bearer harbor-secret-valuX"));
    assert_eq!(harbor.send_body(body).await.unwrap().status().as_u16(), 401);

    crate::helpers::sigterm(&child);
    assert!(crate::helpers::wait_exit(&mut child).await.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("secret-valu"), "a credential reached the log:\n{text}");
    let rejected: Vec<serde_json::Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
        .filter(|v| v["message"] == "webhook rejected")
        .collect();
    let reasons: Vec<&str> = rejected.iter().map(|v| v["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["invalid_credential", "invalid_json", "invalid_credential"]);
    for v in &rejected {
        assert_eq!(v["level"], "WARN");
        assert!(v["trace_id"].as_str().is_some_and(|t| t.len() == 32), "{v}");
    }
}
