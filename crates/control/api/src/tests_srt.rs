//! A channel's SRT passphrase over the API: set on create and update, never returned
//! (`srt_encrypted` says whether there is one), cleared with `null`, validated by field,
//! managers only. SQLite and PostgreSQL.

use super::*;

suite!(
    srt_passphrase_is_write_only,
    srt_passphrase_validation_and_authz,
);

const PASS: &str = "an srt passphrase";

/// Asserts `v` is a channel as documented, that it says `encrypted` / `pbkeylen`, and
/// that it holds no passphrase.
fn assert_channel(v: &Value, encrypted: bool, pbkeylen: Value) {
    let doc = crate::openapi::document();
    let schema = json!({ "$ref": "#/components/schemas/Channel" });
    check_schema(&doc, &schema, v, "channel").unwrap();
    assert_eq!(v["srt_encrypted"], encrypted, "{v}");
    assert_eq!(v["srt_pbkeylen"], pbkeylen, "{v}");
    assert!(!v.to_string().contains("passphrase"), "{v}");
}

async fn stored(fx: &Fx, id: &str) -> Option<(String, Option<u8>)> {
    fx.db
        .get_channel(&fx.a.admin_p, id)
        .await
        .unwrap()
        .srt_passphrase
        .map(|s| (s.passphrase.expose().to_owned(), s.pbkeylen))
}

async fn srt_passphrase_is_write_only(fx: &Fx) {
    let tok = Some(fx.a.bc.as_str());
    let (s, ch) = fx
        .call(
            Method::POST,
            "/api/v1/channels",
            tok,
            Some(json!({"name": unique("enc"), "srt_passphrase": PASS, "srt_pbkeylen": 24})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    assert_channel(&ch, true, json!(24));
    let id = ch["id"].as_str().unwrap().to_owned();
    assert_eq!(stored(fx, &id).await, Some((PASS.to_owned(), Some(24))));
    let path = format!("/api/v1/channels/{id}");
    let (s, got) = fx.call(Method::GET, &path, tok, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_channel(&got, true, json!(24));
    let listed = fx.channel_names(fx.a.bc.as_str()).await;
    let mine = listed.iter().find(|c| c["id"] == json!(id)).unwrap();
    assert_channel(mine, true, json!(24));

    // A channel without one says so.
    let (s, plain) = fx
        .call(
            Method::POST,
            "/api/v1/channels",
            tok,
            Some(json!({"name": unique("plain")})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_channel(&plain, false, Value::Null);

    // Changed: a new passphrase keeps the key length; `null` key length is the node's.
    let (s, v) = fx
        .call(
            Method::PATCH,
            &path,
            tok,
            Some(json!({"srt_passphrase": "the second passphrase"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_channel(&v, true, json!(24));
    let (s, v) = fx
        .call(
            Method::PATCH,
            &path,
            tok,
            Some(json!({"srt_pbkeylen": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_channel(&v, true, Value::Null);
    assert_eq!(
        stored(fx, &id).await,
        Some(("the second passphrase".to_owned(), None))
    );
    // Other fields leave it alone.
    let (s, v) = fx
        .call(
            Method::PATCH,
            &path,
            tok,
            Some(json!({"title": "Encrypted"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_channel(&v, true, Value::Null);

    // Cleared with null.
    let (s, v) = fx
        .call(
            Method::PATCH,
            &path,
            tok,
            Some(json!({"srt_passphrase": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_channel(&v, false, Value::Null);
    assert_eq!(stored(fx, &id).await, None);
}

async fn srt_passphrase_validation_and_authz(fx: &Fx) {
    let (ch, _, _) = fx.resources(&fx.a).await;
    let path = format!("/api/v1/channels/{ch}");
    let tok = Some(fx.a.admin.as_str());
    let cases: Vec<(Method, &str, Value, &str, &str)> = vec![
        (
            Method::POST,
            "/api/v1/channels",
            json!({"name": "enc-short", "srt_passphrase": "short"}),
            "srt_passphrase",
            "minimum of 10",
        ),
        (
            Method::POST,
            "/api/v1/channels",
            json!({"name": "enc-long", "srt_passphrase": "p".repeat(80)}),
            "srt_passphrase",
            "limit of 79",
        ),
        (
            Method::POST,
            "/api/v1/channels",
            json!({"name": "enc-ctl", "srt_passphrase": "ten chars\u{7}!"}),
            "srt_passphrase",
            "printable ASCII",
        ),
        (
            Method::POST,
            "/api/v1/channels",
            json!({"name": "enc-len", "srt_passphrase": PASS, "srt_pbkeylen": 20}),
            "srt_pbkeylen",
            "16, 24, 32",
        ),
        (
            Method::POST,
            "/api/v1/channels",
            json!({"name": "enc-alone", "srt_pbkeylen": 32}),
            "srt_pbkeylen",
            "needs srt_passphrase",
        ),
        (
            Method::PATCH,
            &path,
            json!({"srt_passphrase": "short"}),
            "srt_passphrase",
            "minimum of 10",
        ),
        (
            Method::PATCH,
            &path,
            json!({"srt_pbkeylen": 16}),
            "srt_pbkeylen",
            "needs srt_passphrase",
        ),
        (
            Method::PATCH,
            &path,
            json!({"srt_passphrase": null, "srt_pbkeylen": 16}),
            "srt_pbkeylen",
            "needs srt_passphrase",
        ),
    ];
    for (method, at, body, field, says) in cases {
        let (s, v) = fx.call(method.clone(), at, tok, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {at} {body}: {v}");
        assert_error_shape(&v, "validation");
        assert_eq!(v["error"]["field"], field, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
        // The refused value is not echoed.
        assert!(
            !message.contains("short") && !message.contains(PASS),
            "{message}"
        );
    }
    // Wrong JSON types are refused before any of that; create takes no null.
    for body in [
        json!({"name": "enc-num", "srt_passphrase": 1234567890}),
        json!({"name": "enc-null", "srt_passphrase": null}),
        json!({"name": "enc-str", "srt_passphrase": PASS, "srt_pbkeylen": "16"}),
    ] {
        let (s, v) = fx
            .call(Method::POST, "/api/v1/channels", tok, Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
    }
    let names: Vec<Value> = fx.channel_names(fx.a.admin.as_str()).await;
    assert!(
        names
            .iter()
            .all(|c| !c["name"].as_str().unwrap().starts_with("enc-")),
        "a refused create made a channel"
    );
    assert_eq!(stored(fx, &ch).await, None, "a refused update changed it");

    // Managers of the channel's organisation only: a viewer is refused, another
    // organisation's admin does not see the channel.
    let set = json!({"srt_passphrase": PASS});
    let (s, v) = fx
        .call(
            Method::PATCH,
            &path,
            Some(fx.a.viewer.as_str()),
            Some(set.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = fx
        .call(
            Method::PATCH,
            &path,
            Some(fx.b.admin.as_str()),
            Some(set.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = fx
        .call(
            Method::POST,
            "/api/v1/channels",
            Some(fx.a.viewer.as_str()),
            Some(json!({"name": "enc-viewer", "srt_passphrase": PASS})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(stored(fx, &ch).await, None);
    // The admin and the broadcaster may.
    for who in [fx.a.admin.as_str(), fx.a.bc.as_str()] {
        let (s, v) = fx
            .call(Method::PATCH, &path, Some(who), Some(set.clone()))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_channel(&v, true, Value::Null);
    }
}
