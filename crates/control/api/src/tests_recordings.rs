//! A channel's recordings over the API, against a fake [`RecordingStore`]: the shape
//! the OpenAPI document gives, and the channel's rules (another organisation's is 404,
//! deleting is for managers, a live recording is 409). SQLite and PostgreSQL.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::recordings::{
    RecordingItem, RecordingPage, RecordingStore, RecordingSummary, RecordingsError,
    RecordingsFuture,
};

suite!(recordings_follow_the_channel_rules);

/// Recordings by channel name, newest first.
#[derive(Debug, Default)]
pub(super) struct FakeRecordings {
    by_channel: Mutex<HashMap<String, Vec<RecordingItem>>>,
}

impl RecordingStore for FakeRecordings {
    fn list<'a>(
        &'a self,
        channel: &'a str,
        offset: usize,
        limit: usize,
    ) -> RecordingsFuture<'a, RecordingPage> {
        let all = self
            .by_channel
            .lock()
            .unwrap()
            .get(channel)
            .cloned()
            .unwrap_or_default();
        Box::pin(async move {
            Ok(RecordingPage {
                more: all.len() > offset + limit,
                items: all.into_iter().skip(offset).take(limit).collect(),
            })
        })
    }

    fn delete<'a>(&'a self, channel: &'a str, run: &'a str) -> RecordingsFuture<'a, ()> {
        let r = {
            let mut map = self.by_channel.lock().unwrap();
            let items = map.entry(channel.to_owned()).or_default();
            let at = items.iter().position(|i| match i {
                RecordingItem::Recording(r) => r.run == run,
                RecordingItem::Unreadable { run: r, .. } => r == run,
            });
            match at.map(|i| (i, &items[i])) {
                None => Err(RecordingsError::NotFound),
                Some((_, RecordingItem::Recording(r))) if r.live => {
                    Err(RecordingsError::Conflict("recording is live".into()))
                }
                Some((i, _)) => {
                    items.remove(i);
                    Ok(())
                }
            }
        };
        Box::pin(async move { r })
    }
}

fn recording(channel: &str, run: &str, live: bool) -> RecordingItem {
    RecordingItem::Recording(RecordingSummary {
        run: run.to_owned(),
        started_at: T0,
        duration_secs: 12.5,
        bytes: 4_000_000,
        segments: 14,
        renditions: vec!["source".into(), "audio".into()],
        sessions: vec![run.to_owned()],
        live,
        playback_url: format!("/vod/{channel}/{run}/index.m3u8"),
    })
}

async fn recordings_follow_the_channel_rules(fx: &Fx) {
    let doc = crate::openapi::document();
    let (ch, _, _) = fx.resources(&fx.a).await;
    let name = fx.db.get_channel(&fx.a.admin_p, &ch).await.unwrap().name;
    let (live, newer, older) = ("1a24c4674132c4ff", "1a24c466b3081a25", "1a24c46000000001");
    fx.recordings.by_channel.lock().unwrap().insert(
        name.clone(),
        vec![
            recording(&name, live, true),
            recording(&name, newer, false),
            RecordingItem::Unreadable {
                run: "1a24c46000000002".into(),
                error: "history line 2: bad session".into(),
            },
            recording(&name, older, false),
        ],
    );
    let path = format!("/api/v1/channels/{ch}/recordings");
    let bc = Some(fx.a.bc.as_str());

    // The listing, as documented.
    let (s, page) = fx.call(Method::GET, &path, bc, None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let template = "/api/v1/channels/{id}/recordings";
    check_schema(&doc, response_schema(&doc, template, "get", s), &page, "$").unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{page}");
    assert_eq!(
        (page["more"].clone(), page["limit"].clone()),
        (json!(false), json!(50))
    );
    for item in items {
        let schema = if item.get("error").is_some() {
            "UnreadableRecording"
        } else {
            "Recording"
        };
        let schema = json!({ "$ref": format!("#/components/schemas/{schema}") });
        check_schema(&doc, &schema, item, "item").unwrap();
    }
    assert_eq!(items[0]["live"], true);
    assert_eq!(items[1]["run"], newer);
    assert_eq!(
        items[1]["playback_url"],
        format!("/vod/{name}/{newer}/index.m3u8")
    );
    assert_eq!(items[2]["error"], "history line 2: bad session");
    let (s, page) = fx
        .call(Method::GET, &format!("{path}?limit=1&offset=1"), bc, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"][0]["run"], newer);
    assert_eq!(page["more"], true);
    let (s, v) = fx
        .call(Method::GET, &format!("{path}?limit=101"), bc, None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_error_shape(&v, "validation");

    // Reading them is reading the channel: the same answer for every role.
    for token in [&fx.a.admin, &fx.a.viewer] {
        let (want, _) = fx
            .call(
                Method::GET,
                &format!("/api/v1/channels/{ch}"),
                Some(token),
                None,
            )
            .await;
        let (s, _) = fx.call(Method::GET, &path, Some(token), None).await;
        assert_eq!(s, want);
    }
    let (s, v) = fx.call(Method::GET, &path, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error_shape(&v, "unauthenticated");

    // Another organisation's channel does not exist, for reading or deleting.
    let one = format!("{path}/{older}");
    for token in [&fx.b.admin, &fx.b.bc] {
        let (s, v) = fx.call(Method::GET, &path, Some(token), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        assert_error_shape(&v, "not_found");
        let (s, v) = fx.call(Method::DELETE, &one, Some(token), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    }
    // A viewer may not delete one.
    let (s, v) = fx
        .call(Method::DELETE, &one, Some(&fx.a.viewer), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_error_shape(&v, "forbidden");

    // A manager deletes an ended one; a live one is a conflict; an unknown one 404.
    let (s, v) = fx
        .call(Method::DELETE, &format!("{path}/{live}"), bc, None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_error_shape(&v, "conflict");
    let (s, _) = fx.call(Method::DELETE, &one, bc, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = fx.call(Method::DELETE, &one, bc, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = fx
        .call(Method::DELETE, &format!("{path}/..%2f"), bc, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (_, page) = fx.call(Method::GET, &path, bc, None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3, "{page}");
    assert!(!page.to_string().contains(older), "{page}");
}
