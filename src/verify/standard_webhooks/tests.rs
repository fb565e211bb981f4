//! Official Standard Webhooks vectors and Root's reference-receiver vectors, with a fixed clock.

use super::*;
use actix_web::http::header::{HeaderName, HeaderValue};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../../../tests/fixtures/standardwebhooks/test-vectors.json")).unwrap()
}

fn vector(name: &str) -> Value {
    vectors()["vectors"].as_array().unwrap().iter().find(|v| v["name"] == name).unwrap().clone()
}

fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [("webhook-id", id), ("webhook-timestamp", ts), ("webhook-signature", sig)] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn verifier(secret: &str, mode: SignatureMode) -> StandardWebhooks {
    StandardWebhooks::new([secret], mode, 300).unwrap()
}

/// Checks a signed vector: valid at its own time, stale 301 s later, in every mode it belongs to.
fn check_signed(v: &Value) {
    let (secret, id, payload) =
        (v["secret"].as_str().unwrap(), v["msg_id"].as_str().unwrap(), v["payload"].as_str().unwrap());
    let ts = v["timestamp"].as_i64().unwrap();
    let sig = v["expected_signature"].as_str().unwrap();
    let h = headers(id, &ts.to_string(), sig);
    for mode in [SignatureMode::Auto, SignatureMode::Standard] {
        assert_eq!(verifier(secret, mode).verify(&h, payload.as_bytes(), ts).map(drop), Ok(()), "{mode:?}");
    }
    assert_eq!(
        verifier(secret, SignatureMode::Hex).verify(&h, payload.as_bytes(), ts),
        Err(VerifyError::InvalidSignature)
    );
    assert_eq!(
        verifier(secret, SignatureMode::Auto).verify(&h, payload.as_bytes(), ts + 301),
        Err(VerifyError::StaleTimestamp { skew: 301, tolerance: 300 })
    );
    // A body changed by one byte no longer verifies.
    let mut tampered = payload.as_bytes().to_vec();
    tampered[0] ^= 1;
    assert_eq!(
        verifier(secret, SignatureMode::Auto).verify(&h, &tampered, ts),
        Err(VerifyError::InvalidSignature)
    );
}

#[test]
fn cross_library_vector() {
    let v = vector("cross_library_sign");
    check_signed(&v);
    // The vector is from 2021: verifying it "now" must fail on the timestamp.
    let now = chrono::Utc::now().timestamp();
    let h = headers(
        v["msg_id"].as_str().unwrap(),
        &v["timestamp"].to_string(),
        v["expected_signature"].as_str().unwrap(),
    );
    let err = verifier(v["secret"].as_str().unwrap(), SignatureMode::Auto)
        .verify(&h, v["payload"].as_str().unwrap().as_bytes(), now)
        .unwrap_err();
    assert!(matches!(err, VerifyError::StaleTimestamp { .. }), "{err:?}");
}

#[test]
fn rust_crate_vector() {
    check_signed(&vector("rust_crate_sign"));
}

#[test]
fn multi_signature_header_any_match_passes_and_other_versions_are_ignored() {
    let base = vector("cross_library_sign");
    let multi = vector("multi_signature_header_example");
    let valid = base["expected_signature"].as_str().unwrap();
    let header = multi["header_template"].as_str().unwrap().replace("<VALID>", valid);
    let header = format!("v2,AAAA {header}");
    let ts = base["timestamp"].as_i64().unwrap();
    let h = headers(base["msg_id"].as_str().unwrap(), &ts.to_string(), &header);
    let v = verifier(base["secret"].as_str().unwrap(), SignatureMode::Auto);
    assert_eq!(v.verify(&h, base["payload"].as_str().unwrap().as_bytes(), ts).map(drop), Ok(()));

    let decoys = multi["decoy_signatures"].as_array().unwrap();
    let only_decoys: Vec<_> = decoys.iter().map(|d| d.as_str().unwrap()).collect();
    let h = headers(base["msg_id"].as_str().unwrap(), &ts.to_string(), &only_decoys.join(" "));
    assert_eq!(
        v.verify(&h, base["payload"].as_str().unwrap().as_bytes(), ts),
        Err(VerifyError::InvalidSignature)
    );
}

#[test]
fn invalid_and_partial_signatures_are_rejected() {
    let base = vector("cross_library_sign");
    let ts = base["timestamp"].as_i64().unwrap();
    let v = verifier(base["secret"].as_str().unwrap(), SignatureMode::Auto);
    let valid = base["expected_signature"].as_str().unwrap();
    let mut bad: Vec<String> = vector("invalid_signature_examples")["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    bad.push(valid[..8].to_owned());
    bad.push(valid.trim_start_matches("v1,").to_owned());
    bad.push(format!("v2,{}", valid.trim_start_matches("v1,")));
    for sig in bad {
        let h = headers(base["msg_id"].as_str().unwrap(), &ts.to_string(), &sig);
        assert_eq!(
            v.verify(&h, base["payload"].as_str().unwrap().as_bytes(), ts),
            Err(VerifyError::InvalidSignature),
            "{sig}"
        );
    }
}

#[test]
fn unpadded_secrets_are_accepted() {
    // Sign with the secret as given, verify with the same secret written without padding.
    let payload = b"{\"test\": 2432232314}";
    for secret in vector("unpadded_secret")["secrets"].as_array().unwrap() {
        let secret = secret.as_str().unwrap();
        let key = LENIENT_B64.decode(secret).unwrap();
        let mut mac = HmacSha256::new_from_slice(&key).unwrap();
        mac.update(b"msg_1.100.");
        mac.update(payload);
        let sig =
            format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
        let unpadded = secret.trim_end_matches('=');
        let v = verifier(&format!("whsec_{unpadded}"), SignatureMode::Standard);
        assert_eq!(v.verify(&headers("msg_1", "100", &sig), payload, 100).map(drop), Ok(()), "{secret}");
    }
}

#[test]
fn root_vectors_in_both_modes() {
    let root: Value =
        serde_json::from_str(include_str!("../../../tests/fixtures/root/signed-requests.json")).unwrap();
    let body = include_bytes!("../../../tests/fixtures/root/image-created.e2e-rendered.json");
    let secret = root["secret"].as_str().unwrap();
    let id = root["webhook-id"].as_str().unwrap();
    let ts_str = root["webhook-timestamp"].as_str().unwrap();
    let ts: i64 = ts_str.parse().unwrap();
    let hex_sig = root["modes"]["root_reference_receiver"]["webhook-signature"].as_str().unwrap();
    let std_sig = root["modes"]["standard_webhooks"]["webhook-signature"].as_str().unwrap();

    let auto = verifier(secret, SignatureMode::Auto);
    assert_eq!(auto.verify(&headers(id, ts_str, hex_sig), body, ts).map(|m| m.mode), Ok("hex"));
    assert_eq!(auto.verify(&headers(id, ts_str, std_sig), body, ts).map(|m| m.mode), Ok("standard"));

    let hex_only = verifier(secret, SignatureMode::Hex);
    assert_eq!(hex_only.verify(&headers(id, ts_str, hex_sig), body, ts).map(|m| m.mode), Ok("hex"));
    assert_eq!(hex_only.verify(&headers(id, ts_str, std_sig), body, ts), Err(VerifyError::InvalidSignature));

    let std_only = verifier(secret, SignatureMode::Standard);
    assert_eq!(std_only.verify(&headers(id, ts_str, std_sig), body, ts).map(|m| m.mode), Ok("standard"));
    assert_eq!(std_only.verify(&headers(id, ts_str, hex_sig), body, ts), Err(VerifyError::InvalidSignature));

    // Timestamps are checked both ways around the window.
    assert!(matches!(
        auto.verify(&headers(id, ts_str, hex_sig), body, ts - 301),
        Err(VerifyError::StaleTimestamp { .. })
    ));
    assert_eq!(auto.verify(&headers(id, ts_str, hex_sig), body, ts - 300).map(drop), Ok(()));
}

#[test]
fn rotation_accepts_any_active_secret_and_headers_are_required() {
    let root: Value =
        serde_json::from_str(include_str!("../../../tests/fixtures/root/signed-requests.json")).unwrap();
    let body = include_bytes!("../../../tests/fixtures/root/image-created.e2e-rendered.json");
    let (id, ts_str) = (root["webhook-id"].as_str().unwrap(), root["webhook-timestamp"].as_str().unwrap());
    let ts: i64 = ts_str.parse().unwrap();
    let sig = root["modes"]["standard_webhooks"]["webhook-signature"].as_str().unwrap();
    let v = StandardWebhooks::new(
        ["whsec_bmV3LXNlY3JldA==", root["secret"].as_str().unwrap()],
        SignatureMode::Auto,
        300,
    )
    .unwrap();
    // The second secret matched: reported by position, so operators see which one is in use.
    assert_eq!(v.verify(&headers(id, ts_str, sig), body, ts).map(|m| (m.index, m.mode)), Ok((1, "standard")));
    assert!(!format!("{v:?}").contains("whsec_"));

    let mut h = headers(id, ts_str, sig);
    h.remove("webhook-signature");
    assert_eq!(v.verify(&h, body, ts), Err(VerifyError::MissingHeader("webhook-signature")));
    assert_eq!(v.verify(&headers(id, "soon", sig), body, ts), Err(VerifyError::InvalidTimestamp));
}

#[test]
fn standard_mode_needs_base64_secrets() {
    assert!(matches!(
        StandardWebhooks::new(["not base64!"], SignatureMode::Standard, 300),
        Err(KeyError::NotBase64(1))
    ));
    assert!(StandardWebhooks::new(["not base64!"], SignatureMode::Auto, 300).is_ok());
    assert!(matches!(StandardWebhooks::new([""], SignatureMode::Auto, 300), Err(KeyError::Empty(1))));
}
