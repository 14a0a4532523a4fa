//! A channel's SRT passphrase: stored, changed, cleared, checked, and handed to publish
//! authorisation with the key. Part of the storage suite (SQLite and PostgreSQL).

use super::*;

suite!(
    srt_passphrase_lifecycle,
    srt_passphrase_reaches_publish_authorisation,
);

const PASS: &str = "correct-horse-srt";

fn is_invalid(r: &Result<impl std::fmt::Debug, ControlError>, field: &str) -> bool {
    matches!(r, Err(ControlError::Validation(v)) if v.field == field)
}

fn set_pass(p: &str) -> ChannelUpdate {
    ChannelUpdate {
        srt_passphrase: Some(Some(Secret::from_client(p))),
        ..ChannelUpdate::default()
    }
}

async fn srt_passphrase_lifecycle(t: &TestDb) {
    let db = &t.db;
    let w = world(db).await;
    // Created with one, key length 32.
    let mut new = NewChannel::named("enc");
    new.srt_passphrase = Some(Secret::from_client(PASS));
    new.srt_pbkeylen = Some(32);
    let ch = db.create_channel(&w.a_bc, &new, T0).await.unwrap();
    let want = Some(SrtPassphrase {
        passphrase: Secret::from_client(PASS),
        pbkeylen: Some(32),
    });
    assert_eq!(ch.srt_passphrase, want);
    assert_eq!(db.get_channel(&w.a_bc, &ch.id).await.unwrap(), ch);
    assert_eq!(db.channel_by_name("enc").await.unwrap(), Some(ch.clone()));
    assert!(
        !format!("{ch:?}").contains(PASS),
        "Debug shows the passphrase"
    );

    // Invalid values are refused by field, and change nothing.
    let mut bad = NewChannel::named("enc2");
    bad.srt_passphrase = Some(Secret::from_client("short"));
    assert!(is_invalid(
        &db.create_channel(&w.a_bc, &bad, T0).await,
        "srt_passphrase"
    ));
    bad.srt_passphrase = None;
    bad.srt_pbkeylen = Some(24);
    assert!(is_invalid(
        &db.create_channel(&w.a_bc, &bad, T0).await,
        "srt_pbkeylen"
    ));
    assert_eq!(db.channel_by_name("enc2").await.unwrap(), None);
    for up in [
        set_pass(&"p".repeat(80)),
        set_pass("ten chars\u{7}x"),
        ChannelUpdate {
            srt_pbkeylen: Some(Some(20)),
            ..ChannelUpdate::default()
        },
    ] {
        let field = if up.srt_pbkeylen.is_some() {
            "srt_pbkeylen"
        } else {
            "srt_passphrase"
        };
        assert!(is_invalid(
            &db.update_channel(&w.a_bc, &ch.id, &up, T0 + 1).await,
            field
        ));
    }
    assert_eq!(db.get_channel(&w.a_bc, &ch.id).await.unwrap(), ch);

    // Only managers of its own organisation may set it.
    assert!(matches!(
        db.update_channel(&w.a_viewer, &ch.id, &set_pass("viewer-pass-123"), T0 + 1)
            .await,
        Err(ControlError::Forbidden { .. })
    ));
    assert!(is_not_found(
        &db.update_channel(&w.b_bc, &ch.id, &set_pass("other-org-pass"), T0 + 1)
            .await
    ));

    // A new passphrase keeps the key length; the key length alone changes.
    let ch = db
        .update_channel(&w.a_bc, &ch.id, &set_pass("another passphrase"), T0 + 2)
        .await
        .unwrap();
    assert_eq!(
        ch.srt_passphrase
            .as_ref()
            .map(|s| (s.passphrase.expose(), s.pbkeylen)),
        Some(("another passphrase", Some(32)))
    );
    let node_len = ChannelUpdate {
        srt_pbkeylen: Some(None),
        ..ChannelUpdate::default()
    };
    let ch = db
        .update_channel(&w.a_bc, &ch.id, &node_len, T0 + 3)
        .await
        .unwrap();
    assert_eq!(ch.srt_passphrase.as_ref().map(|s| s.pbkeylen), Some(None));
    assert_eq!(db.get_channel(&w.a_bc, &ch.id).await.unwrap(), ch);
    // Other updates leave it alone.
    let retitled = ChannelUpdate {
        title: Some("Encrypted".into()),
        ..ChannelUpdate::default()
    };
    let ch = db
        .update_channel(&w.a_bc, &ch.id, &retitled, T0 + 4)
        .await
        .unwrap();
    assert!(ch.srt_passphrase.is_some());

    // Cleared: passphrase and key length go.
    let clear = ChannelUpdate {
        srt_passphrase: Some(None),
        ..ChannelUpdate::default()
    };
    let ch = db
        .update_channel(&w.a_bc, &ch.id, &clear, T0 + 5)
        .await
        .unwrap();
    assert_eq!(ch.srt_passphrase, None);
    assert_eq!(db.get_channel(&w.a_bc, &ch.id).await.unwrap(), ch);
    // The listing carries it too.
    let listed = db.list_channels(&w.a_bc, 10, 0).await.unwrap();
    assert_eq!(listed, vec![ch]);
}

async fn srt_passphrase_reaches_publish_authorisation(t: &TestDb) {
    let db = &t.db;
    let w = world(db).await;
    let ch = db
        .create_channel(&w.a_bc, &NewChannel::named("enc"), T0)
        .await
        .unwrap();
    let dev = db
        .create_device(&w.a_bc, "OBS", DeviceKind::Encoder, Some(&ch.id), T0)
        .await
        .unwrap();
    let (_, key) = db
        .create_stream_key(&w.a_bc, &dev.id, None, T0)
        .await
        .unwrap();
    let grant = db
        .authorize_publish(key.expose(), "192.0.2.7", T0)
        .await
        .unwrap();
    assert_eq!(grant.srt_passphrase, None);
    db.publish_ended(&grant, T0).await.unwrap();

    // Set: the next authorisation carries it (and its key length).
    let mut up = set_pass(PASS);
    up.srt_pbkeylen = Some(Some(24));
    db.update_channel(&w.a_bc, &ch.id, &up, T0 + 1)
        .await
        .unwrap();
    let grant = db
        .authorize_publish(key.expose(), "192.0.2.7", T0 + 2)
        .await
        .unwrap();
    assert_eq!(
        grant.srt_passphrase,
        Some(SrtPassphrase {
            passphrase: Secret::from_client(PASS),
            pbkeylen: Some(24),
        })
    );
    assert!(!format!("{grant:?}").contains(PASS));
    db.publish_ended(&grant, T0 + 2).await.unwrap();

    // Cleared: the next one has none.
    let clear = ChannelUpdate {
        srt_passphrase: Some(None),
        ..ChannelUpdate::default()
    };
    db.update_channel(&w.a_bc, &ch.id, &clear, T0 + 3)
        .await
        .unwrap();
    let grant = db
        .authorize_publish(key.expose(), "192.0.2.7", T0 + 4)
        .await
        .unwrap();
    assert_eq!(grant.srt_passphrase, None);
}
